"""The SIP transaction layer of one UDP endpoint (RFC 3261 section 17), sans-I/O.

Theory of operation
-------------------
:class:`TransactionLayer` owns every transaction of one UDP socket: the
four machines of :mod:`~voxgate.bridge.sip.client_transaction` and
:mod:`~voxgate.bridge.sip.server_transaction`, found by key. Its owner hands
it each parsed message with its source address (:meth:`~TransactionLayer.receive`),
the TU's responses (:meth:`~TransactionLayer.respond`) and new requests
(:meth:`~TransactionLayer.request`), and calls
:meth:`~TransactionLayer.handle_timer` when :meth:`~TransactionLayer.next_due`
says. Every call returns the datagrams to send now; what the TU must know
waits in :meth:`~TransactionLayer.drain_events`.

Requests are matched to server transactions per 17.2.3: by the top Via's
branch (when it starts with the magic cookie ``z9hG4bK``), sent-by and
method, an ACK standing for the INVITE it acknowledges; else by the RFC 2543
fallback (Request-URI, tags, Call-ID, CSeq, top Via). A retransmission is
absorbed by its transaction, which resends its last response. A new request
makes a server transaction and is reported as :class:`RequestReceived`,
except:

- an ACK that matches nothing (the ACK of a 2xx, whose transaction ended at
  the 2xx): :class:`AckOutsideTransaction`, for the dialog layer;
- a CANCEL: its own non-INVITE transaction, reported as
  :class:`CancelReceived` with the INVITE it cancels while that INVITE's
  transaction exists (9.2: the CANCEL matched as if it were the INVITE). The
  TU answers the CANCEL 200 then (and the INVITE 487 unless it already sent
  a final response), else 481.

On receipt the top Via gets ``received`` (the source IP, 18.2.1) and, when it
holds a bare ``rport``, ``rport=<source port>`` (RFC 3581 section 4);
responses go back where those say (:meth:`~TransactionLayer.response_target`,
18.2.2). The Via's ``maddr`` is ignored: a response only ever goes back to
the address the request came from.

Responses are matched to client transactions per 17.1.3: the top Via's branch
and the CSeq method. One that matches none is a :class:`StrayResponse`: most
often a retransmitted 2xx to an INVITE, which the dialog must ACK again
(13.2.2.4).

The layer sends no 100 Trying of its own: the TU answers a new INVITE at
once (17.2.1 wants a provisional within 200 ms), which also gives the
transaction something to resend. A 2xx to an INVITE ends its transaction
(RFC 3261, not RFC 6026's Accepted state): the TU retransmits the 2xx
(:class:`~voxgate.bridge.sip.reliable.Retransmit2xx`, sending to
:meth:`~TransactionLayer.response_target`), and a copy of the INVITE that
arrives after it is reported again as new.

Ended transactions are forgotten. Every table a peer can grow has a bound:
at most ``max_transactions`` server transactions live at once; a request
beyond it is answered 503 without a transaction.
"""

from __future__ import annotations

import heapq
import itertools
import secrets
from dataclasses import dataclass
from typing import Final

from voxgate.bridge.sip.client_transaction import (
    ClientInviteTransaction,
    ClientNonInviteTransaction,
    build_ack,
    client_key,
)
from voxgate.bridge.sip.message import Request, Response, parse_cseq, response_to
from voxgate.bridge.sip.reliable import Retransmit2xx
from voxgate.bridge.sip.server_transaction import (
    MAGIC_COOKIE,
    Key,
    ServerInviteTransaction,
    ServerNonInviteTransaction,
    has_cookie,
    legacy_key,
    response_target,
    server_key,
    stamp_via,
    tag_of,
    top_via,
)
from voxgate.bridge.sip.timers import (
    Address,
    ResponseReceived,
    Send,
    State,
    Terminated,
    TimedOut,
    Timers,
)
from voxgate.bridge.sip.uri import bracketed
from voxgate.errors import SipParseError

__all__ = [
    "MAGIC_COOKIE",
    "AckOutsideTransaction",
    "Address",
    "CancelReceived",
    "ClientInviteTransaction",
    "ClientNonInviteTransaction",
    "LayerEvent",
    "RequestReceived",
    "ResponseReceived",
    "Retransmit2xx",
    "Send",
    "ServerInviteTransaction",
    "ServerNonInviteTransaction",
    "State",
    "StrayResponse",
    "TimedOut",
    "Timers",
    "TransactionLayer",
    "build_ack",
    "new_branch",
    "new_via",
    "response_target",
    "server_key",
]

MAX_TRANSACTIONS: Final = 10_000
Machine = (
    ClientInviteTransaction
    | ClientNonInviteTransaction
    | ServerInviteTransaction
    | ServerNonInviteTransaction
)
ServerMachine = ServerInviteTransaction | ServerNonInviteTransaction


@dataclass(frozen=True, slots=True)
class RequestReceived:
    """A new request for the TU, from ``addr``; answer it with ``TransactionLayer.respond``."""

    request: Request
    addr: Address


@dataclass(frozen=True, slots=True)
class CancelReceived:
    """A CANCEL (``request``) and the INVITE whose transaction it matches, else None (9.2)."""

    request: Request
    invite: Request | None
    addr: Address


@dataclass(frozen=True, slots=True)
class AckOutsideTransaction:
    """An ACK no transaction takes: the ACK of a 2xx, for the dialog (13.3.1.4)."""

    request: Request
    addr: Address


@dataclass(frozen=True, slots=True)
class StrayResponse:
    """A response that matches no client transaction (a 2xx retransmission: ACK it again)."""

    response: Response
    addr: Address


LayerEvent = (
    RequestReceived
    | CancelReceived
    | AckOutsideTransaction
    | ResponseReceived
    | StrayResponse
    | TimedOut
)


def new_branch() -> str:
    """A fresh Via branch with the magic cookie (RFC 3261 section 8.1.1.7)."""
    return MAGIC_COOKIE + secrets.token_hex(12)


def new_via(host: str, port: int, branch: str | None = None) -> str:
    """The Via of a new request voxgate sends: a fresh branch unless one is given, rport
    asked (RFC 3581)."""
    return f"SIP/2.0/UDP {bracketed(host)}:{port};branch={branch or new_branch()};rport"


class TransactionLayer:
    """All transactions of one UDP endpoint; see the module docstring."""

    def __init__(
        self,
        *,
        t1: float = 0.5,
        t2: float = 4.0,
        t4: float = 5.0,
        max_transactions: int = MAX_TRANSACTIONS,
    ) -> None:
        self.timers = Timers(t1, t2, t4)
        self.max_transactions = max_transactions
        self.rejected = 0  # requests answered 503 for want of room
        self.dropped = 0  # messages whose Via, CSeq, From or To could not be read
        self._txs: dict[Key, Machine] = {}
        self._servers = 0
        self._events: list[LayerEvent] = []
        self._heap: list[tuple[float, int, Key]] = []  # (due, tie-breaker, key), some stale
        self._scheduled: dict[Key, float] = {}  # the live entry of each key in the heap
        self._counter = itertools.count()

    def __len__(self) -> int:
        """The number of live transactions."""
        return len(self._txs)

    # --- the owner's calls ----------------------------------------------------------------------

    def receive(self, message: Request | Response, addr: Address, now: float) -> list[Send]:
        """A message that arrived from ``addr``: match it, absorb it or report it."""
        try:
            if isinstance(message, Response):
                return self._receive_response(message, addr, now)
            return self._receive_request(message, addr, now)
        except SipParseError:  # raised before any state changed: nothing to match it with
            self.dropped += 1
            return []

    def respond(self, request: Request, response: Response, now: float) -> list[Send]:
        """Send ``response`` within the server transaction of ``request`` (none: discarded)."""
        key = server_key(request)
        tx = self._txs.get(key)
        if not isinstance(tx, ServerInviteTransaction | ServerNonInviteTransaction):
            return []
        return self._after(key, tx, tx.respond(response, now))

    def request(self, request: Request, addr: Address, now: float) -> list[Send]:
        """Start a client transaction for ``request`` (its top Via holds a fresh branch).

        An ACK has no transaction (17.1.1.3, 13.2.2.4): it is just sent.
        """
        if request.method == "ACK":
            return [Send(request.serialize(), addr)]
        branch = top_via(request).branch
        if branch is None or not branch.startswith(MAGIC_COOKIE):
            raise ValueError(f"the top Via needs a branch starting with {MAGIC_COOKIE}")
        key = client_key(branch, request.method)
        if key in self._txs:
            raise ValueError(f"branch {branch} is already in use by a transaction")
        tx: ClientInviteTransaction | ClientNonInviteTransaction
        if request.method == "INVITE":
            tx = ClientInviteTransaction(request, addr, self.timers)
        else:
            tx = ClientNonInviteTransaction(request, addr, self.timers)
        self._txs[key] = tx
        return self._after(key, tx, tx.start(now))

    def response_target(self, request: Request) -> Address:
        """Where responses to ``request`` go (18.2.2, RFC 3581 section 4)."""
        return response_target(request)

    def next_due(self) -> float | None:
        while self._heap:
            due, _, key = self._heap[0]
            if self._scheduled.get(key) == due:
                return due
            heapq.heappop(self._heap)  # stale: the transaction moved on or ended
        return None

    def handle_timer(self, now: float) -> list[Send]:
        sends: list[Send] = []
        while (due := self.next_due()) is not None and due <= now:
            _, _, key = heapq.heappop(self._heap)
            del self._scheduled[key]
            tx = self._txs[key]
            sends += self._after(key, tx, tx.handle_timer(now))
        return sends

    def drain_events(self) -> list[LayerEvent]:
        events, self._events = self._events, []
        return events

    # --- matching -------------------------------------------------------------------------------

    def _receive_response(self, response: Response, addr: Address, now: float) -> list[Send]:
        cseq = response.headers.get("CSeq")
        if cseq is None:
            raise SipParseError("a response without CSeq")
        key = client_key(top_via(response).branch, parse_cseq(cseq)[1])
        tx = self._txs.get(key)
        if not isinstance(tx, ClientInviteTransaction | ClientNonInviteTransaction):
            self._events.append(StrayResponse(response, addr))
            return []
        return self._after(key, tx, tx.receive(response, now))

    def _receive_request(self, request: Request, addr: Address, now: float) -> list[Send]:
        if request.method == "ACK":
            return self._receive_ack(request, addr, now)
        key = server_key(request)
        tx = self._txs.get(key)
        if isinstance(tx, ServerInviteTransaction | ServerNonInviteTransaction):
            return self._after(key, tx, tx.receive(request, now))  # a retransmission
        request = stamp_via(request, addr)
        if self._servers >= self.max_transactions:
            self.rejected += 1
            return [Send(response_to(request, 503).serialize(), response_target(request))]
        invite = self._cancelled_invite(request) if request.method == "CANCEL" else None
        new: ServerMachine
        if request.method == "INVITE":
            new = ServerInviteTransaction(request, response_target(request), self.timers)
        else:
            new = ServerNonInviteTransaction(request, response_target(request), self.timers)
        self._txs[key] = new
        self._servers += 1
        if request.method == "CANCEL":
            self._events.append(CancelReceived(request, invite, addr))
        else:
            self._events.append(RequestReceived(request, addr))
        return []

    def _cancelled_invite(self, cancel: Request) -> Request | None:
        """9.2: the INVITE whose transaction the CANCEL matches, taken as an INVITE."""
        tx = self._txs.get(server_key(cancel, "INVITE"))
        return tx.request if isinstance(tx, ServerInviteTransaction) else None

    def _receive_ack(self, ack: Request, addr: Address, now: float) -> list[Send]:
        via = top_via(ack)
        if has_cookie(via):
            key = server_key(ack)
            tx = self._txs.get(key)
            if isinstance(tx, ServerInviteTransaction):
                return self._after(key, tx, tx.receive(ack, now))
        else:
            # 17.2.3, RFC 2543: the INVITE's keys with the ACK's To tag (a re-INVITE had it) or
            # none (an initial INVITE); the ACK's tag must be the one of the response sent.
            ack_tag = tag_of(ack, "To")
            for to_tag in dict.fromkeys((ack_tag, None)):
                key = legacy_key(ack, via, "INVITE", to_tag)
                tx = self._txs.get(key)
                if isinstance(tx, ServerInviteTransaction) and _answered_with(tx, ack_tag):
                    return self._after(key, tx, tx.receive(ack, now))
        self._events.append(AckOutsideTransaction(ack, addr))
        return []

    # --- bookkeeping ----------------------------------------------------------------------------

    def _after(self, key: Key, tx: Machine, sends: list[Send]) -> list[Send]:
        """Take ``tx``'s events, forget it if it ended, else re-schedule it; pass ``sends`` on."""
        for event in tx.drain_events():
            if isinstance(event, Terminated):
                self._forget(key, tx)
            else:
                self._events.append(event)
        if key in self._txs:
            self._schedule(key, tx)
        return sends

    def _forget(self, key: Key, tx: Machine) -> None:
        del self._txs[key]
        self._scheduled.pop(key, None)
        if isinstance(tx, ServerInviteTransaction | ServerNonInviteTransaction):
            self._servers -= 1

    def _schedule(self, key: Key, tx: Machine) -> None:
        due = tx.next_due()
        if due is None:
            self._scheduled.pop(key, None)
        elif self._scheduled.get(key) != due:
            self._scheduled[key] = due
            heapq.heappush(self._heap, (due, next(self._counter), key))
            if len(self._heap) > 2 * len(self._scheduled) + 64:  # too many stale entries
                self._heap = [(d, next(self._counter), k) for k, d in self._scheduled.items()]
                heapq.heapify(self._heap)


def _answered_with(tx: ServerInviteTransaction, to_tag: str | None) -> bool:
    """True if ``tx`` sent a final response whose To tag is ``to_tag``."""
    last = tx.last_response
    return last is not None and last.status >= 300 and tag_of(last, "To") == to_tag
