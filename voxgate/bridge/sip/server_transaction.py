"""SIP server transactions over UDP (RFC 3261 sections 17.2.1 and 17.2.2), sans-I/O.

Theory of operation
-------------------
A server transaction is created by the request that starts it (its owner,
the transaction layer, reports that request to the TU); it sends the TU's
responses to ``addr`` (chosen per RFC 3261 18.2.2) and absorbs the
retransmissions of the request. The owner hands it each matching request
(:meth:`receive`), each response of the TU (:meth:`respond`) and calls
``handle_timer(now)`` when ``next_due()`` says; every call returns the
datagrams to send now, and :class:`TimedOut` / :class:`Terminated` wait in
``drain_events()``.

INVITE (figure 7): in *Proceeding* the TU may send any number of 1xx; a
retransmitted INVITE is answered with the last of them. A 2xx ends the
transaction at once: the TU (the UAS core) retransmits the 2xx itself until
the ACK comes (13.3.1.4), and that ACK, having a branch of its own, matches
no transaction. A 300-699 moves it to *Completed*, which retransmits the
final response on timer G (T1, doubling up to T2) until the ACK arrives or
timer H (64*T1) gives up; the ACK moves it to *Confirmed*, which absorbs
ACK retransmissions during timer I (T4).

Non-INVITE (figure 8): *Trying* until the TU responds (a retransmission
there is dropped: there is nothing to answer with yet); *Proceeding* after a
1xx; a final response moves it to *Completed*, which answers retransmissions
of the request with that response during timer J (64*T1).

Responses the TU sends after the final one are discarded (17.2.1, 17.2.2).

The functions at the end find a request's transaction (:func:`server_key`,
17.2.3) and address its responses (:func:`stamp_via` on receipt, 18.2.1 and
RFC 3581; :func:`response_target`, 18.2.2).
"""

from __future__ import annotations

import dataclasses
from typing import Final

from voxgate.bridge.sip.headers import split_outside_quotes
from voxgate.bridge.sip.message import (
    Headers,
    Request,
    Response,
    Via,
    parse_cseq,
    parse_name_addr,
    parse_via,
)
from voxgate.bridge.sip.timers import Address, MachineBase, Send, State, TimedOut, Timers
from voxgate.errors import SipParseError

MAGIC_COOKIE: Final = "z9hG4bK"  # RFC 3261 section 8.1.1.7
SIP_PORT: Final = 5060  # the default sent-by port over UDP (18.2.2)

Key = tuple[object, ...]


class _ServerBase(MachineBase):
    """The last response sent, resent for each retransmission of the request."""

    def __init__(
        self, request: Request, addr: Address, timers: Timers | None, state: State
    ) -> None:
        super().__init__(request, addr, timers or Timers(), state)
        self.last_response: Response | None = None
        self._last: bytes | None = None

    def _send(self, response: Response) -> list[Send]:
        self.last_response = response
        self._last = response.serialize()
        return [Send(self._last, self.addr)]

    def _resend(self) -> list[Send]:
        return [] if self._last is None else [Send(self._last, self.addr)]


class ServerInviteTransaction(_ServerBase):
    """RFC 3261 section 17.2.1, figure 7; see the module docstring."""

    def __init__(self, request: Request, addr: Address, timers: Timers | None = None) -> None:
        super().__init__(request, addr, timers, State.PROCEEDING)

    def receive(self, request: Request, now: float) -> list[Send]:
        """Take a retransmission of the INVITE or the ACK of a 300-699 response."""
        if request.method == "ACK":
            if self.state is State.COMPLETED:
                self.state = State.CONFIRMED
                self._clock.clear()
                self._clock.start("I", now + self.timers.t4)
            return []
        if self.state in (State.PROCEEDING, State.COMPLETED):
            return self._resend()
        return []

    def respond(self, response: Response, now: float) -> list[Send]:
        """Send the TU's response; a final one moves the machine on."""
        if self.state is not State.PROCEEDING:
            return []
        sends = self._send(response)
        if 200 <= response.status < 300:
            self._terminate()
        elif response.status >= 300:
            self.state = State.COMPLETED
            self._clock.start("G", now + self._interval)
            self._clock.start("H", now + self.timers.timeout)
        return sends

    def handle_timer(self, now: float) -> list[Send]:
        sends: list[Send] = []
        for name in self._clock.expired(now):
            if name == "G":
                sends.extend(self._resend())
                self._interval = min(2 * self._interval, self.timers.t2)
                self._clock.start("G", now + self._interval)
            elif name == "H":
                self._events.append(TimedOut(self.request))  # the ACK never came
                self._terminate()
            else:  # I
                self._terminate()
        return sends


class ServerNonInviteTransaction(_ServerBase):
    """RFC 3261 section 17.2.2, figure 8; see the module docstring."""

    def __init__(self, request: Request, addr: Address, timers: Timers | None = None) -> None:
        super().__init__(request, addr, timers, State.TRYING)

    def receive(self, request: Request, now: float) -> list[Send]:
        """Take a retransmission of the request."""
        if self.state in (State.PROCEEDING, State.COMPLETED):
            return self._resend()
        return []

    def respond(self, response: Response, now: float) -> list[Send]:
        """Send the TU's response; a final one moves the machine to Completed."""
        if self.state not in (State.TRYING, State.PROCEEDING):
            return []
        sends = self._send(response)
        if response.status < 200:
            self.state = State.PROCEEDING
        else:
            self.state = State.COMPLETED
            self._clock.start("J", now + self.timers.timeout)
        return sends

    def handle_timer(self, now: float) -> list[Send]:
        for _name in self._clock.expired(now):  # only J
            self._terminate()
        return []


# --- matching requests (17.2.3) and addressing responses (18.2) ---------------------------------


def server_key(request: Request, method: str | None = None) -> Key:
    """The key of the server transaction ``request`` belongs to (17.2.3).

    ``method`` stands in for the request's own (9.2 matches a CANCEL as an INVITE); an ACK
    belongs to its INVITE's transaction. Raises :class:`SipParseError` when the headers that
    make the key are missing or malformed.
    """
    via = top_via(request)
    method = method or ("INVITE" if request.method == "ACK" else request.method)
    if has_cookie(via):
        return ("3261", via.branch, via.host.lower(), via.port or SIP_PORT, method)
    return legacy_key(request, via, method, tag_of(request, "To"))


def legacy_key(request: Request, via: Via, method: str, to_tag: str | None) -> Key:
    """RFC 2543 matching (17.2.3): Request-URI, To tag, From tag, Call-ID, CSeq, top Via."""
    call_id = request.headers.get("Call-ID")
    cseq = request.headers.get("CSeq")
    if call_id is None or cseq is None:
        raise SipParseError("a request without Call-ID or CSeq")
    number = parse_cseq(cseq)[0]
    from_tag = tag_of(request, "From")
    return ("2543", request.uri, to_tag, from_tag, call_id, number, method, _via_identity(via))


def _via_identity(via: Via) -> Key:
    """The top Via as compared (20.42), less what the receiving side adds (18.2.1)."""
    params = sorted(
        (name, value) for name, value in via.params.items() if name not in ("received", "rport")
    )
    return (via.transport, via.host.lower(), via.port or SIP_PORT, tuple(params))


def has_cookie(via: Via) -> bool:
    """True for an RFC 3261 branch (8.1.1.7); else RFC 2543 matching applies."""
    return via.branch is not None and via.branch.startswith(MAGIC_COOKIE)


def top_via(message: Request | Response) -> Via:
    text = message.headers.get("Via")
    if text is None:
        raise SipParseError("a message without Via")
    return parse_via(text)


def tag_of(message: Request | Response, name: str) -> str | None:
    """The tag of the From or To header."""
    text = message.headers.get(name)
    if text is None:
        raise SipParseError(f"a message without {name}")
    return parse_name_addr(text).tag


def _unbracket(host: str) -> str:
    """An IPv6 reference without its brackets, as socket addresses spell it."""
    return host[1:-1] if host.startswith("[") and host.endswith("]") else host


def stamp_via(request: Request, addr: Address) -> Request:
    """``request`` with ``received`` (and a bare ``rport`` filled in) on its top Via.

    18.2.1: ``received`` when the sent-by host is not the source IP; RFC 3581 section 4: a
    bare ``rport`` gets the source port, and ``received`` is then added in any case.
    """
    via = top_via(request)
    host, port = addr
    bare_rport = "rport" in via.params and via.params["rport"] is None
    if via.host == host and not bare_rport:
        return request
    params = {**via.params, "received": host}
    if bare_rport:
        params["rport"] = str(port)
    stamped = dataclasses.replace(via, params=params)
    return dataclasses.replace(request, headers=_replace_top_via(request.headers, str(stamped)))


def _replace_top_via(headers: Headers, top: str) -> Headers:
    items = headers.items()
    for index, (name, value) in enumerate(items):
        if name == "Via":
            parts = [part.strip(" \t") for part in split_outside_quotes(value, ",")]
            parts = [part for part in parts if part]
            if parts:
                items[index] = ("Via", ", ".join([top, *parts[1:]]))
                break
    return Headers(items)


def response_target(request: Request) -> Address:
    """Where responses to ``request`` go over UDP (18.2.2; RFC 3581 section 4).

    The ``received`` address when there is one, at the ``rport`` port if it has a value, else
    at the sent-by port (5060 by default); else the sent-by host itself. ``maddr`` is ignored:
    responses go back to where the request came from, never to a third party.
    """
    via = top_via(request)
    port = via.port or SIP_PORT
    received = via.params.get("received")
    if not received:
        return via.host, port
    rport = via.params.get("rport")
    if rport is not None and rport.isascii() and rport.isdigit() and 0 < int(rport) < 65536:
        port = int(rport)
    return _unbracket(received), port
