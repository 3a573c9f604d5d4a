"""SIP client transactions over UDP (RFC 3261 sections 17.1.1 and 17.1.2), sans-I/O.

Theory of operation
-------------------
A client transaction sends one request and delivers its responses to the TU.
The owner creates it with the request and the next hop's address, calls
:meth:`start` once, hands it each matching response (:meth:`receive`) and
calls ``handle_timer(now)`` when ``next_due()`` says. Every call returns the
datagrams to send now; events for the TU (:class:`ResponseReceived`,
:class:`TimedOut`, :class:`Terminated`) wait in ``drain_events()``.

INVITE (figure 5): *Calling* retransmits the request on timer A (T1,
doubling without bound) until a response arrives or timer B (64*T1) gives
up. A 1xx moves it to *Proceeding*, where it waits without retransmitting or
timing out (a UAC that waits too long sends CANCEL). A 2xx ends the
transaction at once: the TU builds the ACK of a 2xx itself and keeps
acknowledging the 2xx retransmissions, which arrive after the transaction is
gone (13.2.2.4). A 300-699 response is acknowledged by the transaction
(:func:`build_ack`) and *Completed* re-sends that ACK for each retransmission
of the final response during timer D (32 s), without bothering the TU.

Non-INVITE (figure 6): *Trying* retransmits on timer E (T1, doubling up to
T2) until timer F (64*T1) gives up; a 1xx moves it to *Proceeding*, where E
keeps firing every T2; a final response moves it to *Completed*, which
absorbs final-response retransmissions during timer K (T4).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from voxgate.bridge.sip.message import Headers, Request, parse_cseq
from voxgate.bridge.sip.timers import (
    Address,
    MachineBase,
    ResponseReceived,
    Send,
    State,
    TimedOut,
    Timers,
)

if TYPE_CHECKING:
    from voxgate.bridge.sip.message import Response


def build_ack(invite: Request, response: Response) -> Request:
    """The ACK for a 300-699 response to ``invite`` (RFC 3261 section 17.1.1.3).

    Same Request-URI, Call-ID and From; the To of the response (with the UAS's tag); the
    INVITE's top Via only (same branch: the ACK belongs to the INVITE's transaction); its
    Route headers; its CSeq number with method ACK.
    """
    fields: list[tuple[str, str | None]] = [("Via", invite.headers.get("Via"))]
    fields += [("Route", route) for route in invite.headers.get_all("Route")]
    fields += [
        ("Max-Forwards", invite.headers.get("Max-Forwards") or "70"),
        ("From", invite.headers.get("From")),
        ("To", response.headers.get("To")),
        ("Call-ID", invite.headers.get("Call-ID")),
    ]
    cseq = invite.headers.get("CSeq")
    if cseq is not None:
        fields.append(("CSeq", f"{parse_cseq(cseq)[0]} ACK"))
    return Request("ACK", invite.uri, Headers((n, v) for n, v in fields if v is not None))


def client_key(branch: str | None, method: str) -> tuple[object, ...]:
    """The key of a client transaction: top Via branch and CSeq method (17.1.3)."""
    return ("client", branch, method)


class ClientInviteTransaction(MachineBase):
    """RFC 3261 section 17.1.1, figure 5; see the module docstring."""

    def __init__(self, request: Request, addr: Address, timers: Timers | None = None) -> None:
        super().__init__(request, addr, timers or Timers(), State.CALLING)
        self._data = request.serialize()
        self._ack: bytes | None = None
        self._started = False

    def start(self, now: float) -> list[Send]:
        """Send the INVITE for the first time and arm timers A and B."""
        if self._started:
            raise ValueError("the transaction has already started")
        self._started = True
        self._clock.start("A", now + self._interval)
        self._clock.start("B", now + self.timers.timeout)
        return [Send(self._data, self.addr)]

    def receive(self, response: Response, now: float) -> list[Send]:
        """Take a response matched to this transaction (17.1.3)."""
        if self.state in (State.CALLING, State.PROCEEDING):
            self._events.append(ResponseReceived(response, self.request))
            if response.status < 200:
                self.state = State.PROCEEDING
                self._clock.stop("A", "B")
            elif response.status < 300:
                self._terminate()
            else:
                self._ack = build_ack(self.request, response).serialize()
                self.state = State.COMPLETED
                self._clock.clear()
                self._clock.start("D", now + self.timers.d)
                return [Send(self._ack, self.addr)]
        elif self.state is State.COMPLETED and response.status >= 300 and self._ack:
            return [Send(self._ack, self.addr)]  # a retransmitted final: ACK again
        return []

    def handle_timer(self, now: float) -> list[Send]:
        sends: list[Send] = []
        for name in self._clock.expired(now):
            if name == "A":
                sends.append(Send(self._data, self.addr))
                self._interval *= 2
                self._clock.start("A", now + self._interval)
            elif name == "B":
                self._events.append(TimedOut(self.request))
                self._terminate()
            else:  # D
                self._terminate()
        return sends


class ClientNonInviteTransaction(MachineBase):
    """RFC 3261 section 17.1.2, figure 6; see the module docstring."""

    def __init__(self, request: Request, addr: Address, timers: Timers | None = None) -> None:
        super().__init__(request, addr, timers or Timers(), State.TRYING)
        self._data = request.serialize()
        self._started = False

    def start(self, now: float) -> list[Send]:
        """Send the request for the first time and arm timers E and F."""
        if self._started:
            raise ValueError("the transaction has already started")
        self._started = True
        self._clock.start("E", now + self._interval)
        self._clock.start("F", now + self.timers.timeout)
        return [Send(self._data, self.addr)]

    def receive(self, response: Response, now: float) -> list[Send]:
        """Take a response matched to this transaction (17.1.3)."""
        if self.state not in (State.TRYING, State.PROCEEDING):
            return []  # Completed absorbs retransmissions of the final response
        self._events.append(ResponseReceived(response, self.request))
        if response.status < 200:
            self.state = State.PROCEEDING
        else:
            self.state = State.COMPLETED
            self._clock.clear()
            self._clock.start("K", now + self.timers.t4)
        return []

    def handle_timer(self, now: float) -> list[Send]:
        sends: list[Send] = []
        for name in self._clock.expired(now):
            if name == "E":
                sends.append(Send(self._data, self.addr))
                if self.state is State.PROCEEDING:
                    self._interval = self.timers.t2
                else:
                    self._interval = min(2 * self._interval, self.timers.t2)
                self._clock.start("E", now + self._interval)
            elif name == "F":
                self._events.append(TimedOut(self.request))
                self._terminate()
            else:  # K
                self._terminate()
        return sends
