"""voxgate's SIP user agent, sans-I/O: datagrams in, datagrams and call events out.

Theory of operation
-------------------
The adapter hands every datagram of the SIP socket to :meth:`SipAgent.receive`
with its source address and the time, calls :meth:`SipAgent.handle_timer`
when :meth:`SipAgent.next_due` says, and drains :attr:`SipAgent.outbox`
(datagrams to send) and :attr:`SipAgent.events` (what happened to calls,
:mod:`voxgate.bridge.sip.calls`). Below it the transaction layer
(:mod:`voxgate.bridge.sip.transaction`) absorbs retransmissions and runs the
RFC 3261 section 17 timers; this module is the transaction user.

Requests outside a dialog:

- anything that does not parse: 400 with the reason when enough of it parses
  to address a response (RFC 3261 8.2.2 leaves no choice: a request without
  Via/From/To/Call-ID/CSeq cannot be answered), else dropped; counted either way;
- a source outside ``sip.allow``: 403;
- OPTIONS: 200 with Allow and Accept, or 503 with Retry-After while the
  node drains or is full (a load balancer's probe, Kamailio's dispatcher);
- INVITE: 100 Trying at once (the transaction layer stops the peer's
  retransmissions with it), then in this order: 503 + Retry-After when busy,
  420 + Unsupported for ``Require: 100rel`` or any other extension (PRACK is
  not implemented, RFC 3262 / 3261 8.2.2.3), 401 digest challenge when
  ``sip.username`` is set (RFC 7616 MD5 or SHA-256), 488 when the offer has
  nothing in common with ``sip.codecs`` or no offer at all (late offer is not
  supported); else the adapter gets :class:`IncomingCall` and answers with
  :meth:`ring`, :meth:`answer` or :meth:`reject`;
- CANCEL of a pending INVITE: 200 to the CANCEL, 487 to the INVITE (9.2);
- BYE/INFO/UPDATE/NOTIFY for no dialog: 481; other methods: 405 with Allow.

Within a dialog: BYE -> 200 and :class:`CallEnded` ``bye``; re-INVITE or
UPDATE with an offer -> a new answer on the same RTP port (version + 1) and
:class:`MediaUpdated` (hold and resume); a re-INVITE while voxgate's 2xx is
unacknowledged -> 500 + Retry-After (14.2); INFO ``application/dtmf-relay``
-> 200 and :class:`DtmfInfo`; NOTIFY of a REFER's progress -> 200 and, on a
final sipfrag, :class:`TransferDone`. voxgate's 2xx is retransmitted (T1
doubling to T2) until the ACK; 64*T1 without it sends BYE and ends the call
``no_ack`` (13.3.1.4). Outbound calls (the UAC side) are in
:mod:`voxgate.bridge.sip.outbound`.
"""

from __future__ import annotations

import ipaddress
import itertools
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final

from voxgate.bridge.sip import auth, outbound
from voxgate.bridge.sip.calls import (
    AgentEvent,
    CallConfirmed,
    CallEnded,
    Direction,
    DtmfInfo,
    IncomingCall,
    MediaUpdated,
    Phase,
    SipCall,
    TransferDone,
)
from voxgate.bridge.sip.dialog import Dialog, new_tag
from voxgate.bridge.sip.message import (
    Request,
    Response,
    parse_message,
    parse_name_addr,
    parse_uri,
    parse_via,
    response_to,
)
from voxgate.bridge.sip.register import Registration
from voxgate.bridge.sip.rescue import bad_request_reply
from voxgate.bridge.sip.sdp import (
    SessionDescription,
    answer_sdp,
    negotiate,
    parse_sdp,
    serialize_sdp,
)
from voxgate.bridge.sip.timers import Address
from voxgate.bridge.sip.transaction import (
    AckOutsideTransaction,
    CancelReceived,
    RequestReceived,
    ResponseReceived,
    Retransmit2xx,
    Send,
    StrayResponse,
    TimedOut,
    TransactionLayer,
)
from voxgate.bridge.sip.uri import bracketed
from voxgate.errors import SdpParseError, SipParseError

log = logging.getLogger("voxgate.sip")

ALLOW: Final = "INVITE, ACK, CANCEL, BYE, OPTIONS, INFO, UPDATE, REFER, NOTIFY"
RETRY_AFTER: Final = "5"  # seconds, on 503 (RFC 3261 20.33)
DTMF_SIGNALS: Final = "0123456789*#ABCD"
MAX_CALLS_TRACKED: Final = 20_000  # calls the agent remembers at most (a flood is refused)


@dataclass(frozen=True, slots=True)
class AgentSettings:
    host: str  # the address voxgate's SIP socket is bound to
    port: int
    advertised: str  # the address in Contact headers
    codecs: tuple[str, ...] = ("PCMU", "PCMA", "L16")
    allow: tuple[str, ...] = ()  # networks requests may come from; empty: any
    realm: str = "voxgate"
    username: str = ""  # inbound digest authentication; empty: none
    password: str = ""
    nonce_secret: bytes = b""
    user_agent: str = "voxgate"


class SipAgent:
    """See the module docstring."""

    def __init__(
        self,
        settings: AgentSettings,
        *,
        busy: Callable[[], str | None],
        counted: Callable[[str], None] | None = None,
    ) -> None:
        self.settings = settings
        self.busy = busy  # "draining" or "full" when no call may start, else None
        self._counted = counted  # told of each count too (the adapter's metrics)
        self.layer = TransactionLayer()
        self.outbox: list[Send] = []
        self.events: list[AgentEvent] = []
        self.calls: dict[str, SipCall] = {}  # by key
        self._by_dialog: dict[tuple[str, str], SipCall] = {}  # (Call-ID, local tag)
        self._invites: dict[tuple[str, str], SipCall] = {}  # (Call-ID, INVITE branch)
        self._retransmits: dict[str, Retransmit2xx] = {}  # by call key
        self._requests_of: dict[str, str] = {}  # voxgate's requests in dialogs: branch -> key
        self._networks = [ipaddress.ip_network(n, strict=False) for n in settings.allow]
        self._nonces = auth.NonceSource(settings.nonce_secret or b"voxgate")
        self._keys = itertools.count(1)
        self.counters: dict[str, int] = {}
        self.registration: Registration | None = None  # to a trunk, when configured
        self._now = 0.0

    # --- what comes in -----------------------------------------------------------------------

    def receive(self, data: bytes, source: Address, now: float) -> None:
        self._now = now
        try:
            message = parse_message(data)
        except SipParseError as error:
            self._count("bad_message")
            reply = bad_request_reply(data, str(error))
            if reply is not None:
                self.outbox.append(Send(reply, source))
            return
        if isinstance(message, Request) and not self._allowed(source):
            self._count("forbidden")
            if message.method != "ACK":
                self.outbox.append(Send(response_to(message, 403).serialize(), source))
            return
        self.outbox += self.layer.receive(message, source, now)
        self._take_layer_events(now)

    def handle_timer(self, now: float) -> None:
        self._now = now
        self.outbox += self.layer.handle_timer(now)
        if self.registration is not None:
            register = self.registration.due(now)
            if register is not None:
                self.send_request(register, self.registration.target.registrar)
        for key, retransmit in list(self._retransmits.items()):
            self.outbox += retransmit.handle_timer(now)
            if retransmit.timed_out:
                del self._retransmits[key]
                self._no_ack(self.calls[key])
        self._take_layer_events(now)

    def next_due(self) -> float | None:
        registering = self.registration.next_due() if self.registration is not None else None
        dues = [d for d in (self.layer.next_due(), registering) if d is not None]
        dues += [d for r in self._retransmits.values() if (d := r.next_due()) is not None]
        return min(dues) if dues else None

    def at(self, now: float) -> SipAgent:
        """The time for what the adapter asks next (ring, answer, hang up, dial...)."""
        self._now = now
        return self

    # --- the adapter's answers to an IncomingCall ---------------------------------------------

    def ring(self, call: SipCall) -> None:
        """180 Ringing (the bot is being connected)."""
        if call.phase is Phase.OFFERED:
            self.outbox += self.layer.respond(call.invite, self._response(call, 180), self._now)

    def answer(self, call: SipCall, media: Address) -> None:
        """200 OK with the SDP answer for RTP at ``media``; retransmitted until the ACK."""
        if call.phase is not Phase.OFFERED or call.negotiated is None:
            return
        call.media_address = media
        response = self._response(call, 200)
        response.body = self._answer_body(call, None, media)
        response.headers.add("Content-Type", "application/sdp")
        call.phase = Phase.ANSWERED
        call.final_status = 200
        call.dialog = Dialog.as_uas(call.invite, call.local_tag, call.source)
        self._by_dialog[(call.dialog.call_id, call.local_tag)] = call
        self.outbox += self.layer.respond(call.invite, response, self._now)
        target = self.layer.response_target(call.invite)
        retransmit = Retransmit2xx(response.serialize(), target, self._now)
        self._retransmits[call.key] = retransmit

    def reject(self, call: SipCall, status: int, *, retry_after: bool = False) -> None:
        """A final failure to a call not yet answered (404 no route, 503 busy, 480...)."""
        if call.phase is not Phase.OFFERED:
            return
        response = self._response(call, status)
        if retry_after:
            response.headers.add("Retry-After", RETRY_AFTER)
        self.outbox += self.layer.respond(call.invite, response, self._now)
        self._ended(call, "local", status)

    def hangup(self, call: SipCall) -> None:
        """End the call from voxgate's side: BYE once answered, else 480 (or CANCEL, outbound)."""
        if call.phase is Phase.OFFERED:
            if call.direction is Direction.INBOUND:
                self.reject(call, 480)
            else:
                self.cancel(call)
            return
        if call.phase is Phase.ENDED or call.dialog is None:
            return
        self._send_in_dialog(call, call.dialog.request("BYE", *self._via(), self._contact()))
        self._ended(call, "local")

    def cancel(self, call: SipCall) -> None:
        """Outbound calls: CANCEL (see :mod:`voxgate.bridge.sip.outbound`)."""
        outbound.cancel_outbound(self, call)

    def refer(self, call: SipCall, target: str) -> None:
        """Blind transfer (RFC 3515): REFER the peer to ``target``; then :class:`TransferDone`."""
        if call.phase is not Phase.CONFIRMED or call.dialog is None:
            self.events.append(TransferDone(call, ok=False, reason="the call is not up"))
            return
        request = call.dialog.request("REFER", *self._via(), self._contact())
        request.headers.add("Refer-To", f"<{_target_uri(target, call)}>")
        request.headers.add("Referred-By", f"<{parse_name_addr(call.dialog.local_uri).uri}>")
        call.refer_pending = True
        self._send_in_dialog(call, request)

    # --- helpers shared with outbound ---------------------------------------------------------

    def new_key(self) -> str:
        return f"sip-{next(self._keys)}"

    def track(self, call: SipCall) -> None:
        self.calls[call.key] = call

    def contact(self) -> str:
        return self._contact()

    def via(self) -> tuple[str, int]:
        return self._via()

    def send_request(self, request: Request, destination: Address) -> None:
        self.outbox += self.layer.request(request, destination, self._now)

    def ended(self, call: SipCall, reason: str, status: int | None = None) -> None:
        self._ended(call, reason, status)

    def remember(self, request: Request, call: SipCall) -> None:
        """Responses to ``request`` (by its Via branch) belong to ``call``."""
        self._requests_of[_branch(request)] = call.key

    def send_raw(self, data: bytes, destination: Address) -> None:
        self.outbox.append(Send(data, destination))

    def hangup_confirmed(self, call: SipCall, reason: str, status: int | None = None) -> None:
        """End an answered outbound call that cannot go on (BYE at once)."""
        if call.dialog is not None:
            self._send_in_dialog(call, call.dialog.request("BYE", *self._via(), self._contact()))
        self._ended(call, reason, status)

    def add_dialog(self, call: SipCall) -> None:
        assert call.dialog is not None
        self._by_dialog[(call.dialog.call_id, call.dialog.local_tag)] = call

    # --- dispatch -----------------------------------------------------------------------------

    def _take_layer_events(self, now: float) -> None:
        for event in self.layer.drain_events():
            if isinstance(event, RequestReceived):
                self._request(event.request, event.addr)
            elif isinstance(event, AckOutsideTransaction):
                self._ack(event.request)
            elif isinstance(event, CancelReceived):
                self._cancel(event.request)
            elif isinstance(event, ResponseReceived | StrayResponse):
                self._response_in(event.response)
            elif isinstance(event, TimedOut):
                self._timed_out(event.request)

    def _request(self, request: Request, source: Address) -> None:
        method = request.method
        if method == "OPTIONS":
            self._options(request)
            return
        call = self._in_dialog(request)
        if call is not None:
            self._dialog_request(call, request)
        elif method == "INVITE" and not _to_tag(request):
            known = self._invites.get(_invite_key(request))
            if known is None:
                self._invite(request, source)
            else:  # a copy after the 2xx ended its transaction (RFC 3261 13.3.1.4)
                self._count("invite_retransmitted")
                retransmit = self._retransmits.get(known.key)
                if retransmit is not None:
                    self.outbox.append(Send(retransmit.response, retransmit.addr))
        elif method in ("BYE", "INFO", "UPDATE", "NOTIFY", "REFER", "INVITE", "PRACK"):
            self._reply(request, 481)
        else:
            self._reply(request, 405, allow=True)

    def _options(self, request: Request) -> None:
        busy = self.busy()
        if busy is not None:
            self._reply(request, 503, retry_after=True)
            return
        response = response_to(request, 200)
        self._decorate(response, allow=True)
        response.headers.add("Accept", "application/sdp")
        self.outbox += self.layer.respond(request, response, self._now)

    def _invite(self, invite: Request, source: Address) -> None:
        self._reply(invite, 100)
        if self.busy() is not None or len(self.calls) >= MAX_CALLS_TRACKED:
            self._count("busy")
            self._reply(invite, 503, retry_after=True)
            return
        unsupported = [x for x in invite.headers.get_all("Require") if x.strip()]
        if unsupported:  # RFC 3261 8.2.2.3; 100rel is RFC 3262 (PRACK), not implemented
            response = response_to(invite, 420)
            response.headers.add("Unsupported", ", ".join(unsupported))
            self.outbox += self.layer.respond(invite, response, self._now)
            return
        if self.settings.username and not self._authorized(invite):
            return
        offer = _offer(invite)
        negotiated = negotiate(offer, accept=self.settings.codecs) if offer else None
        if offer is None or negotiated is None:
            self._count("not_acceptable")
            self._reply(invite, 488)
            return
        call = SipCall(
            key=self.new_key(),
            direction=Direction.INBOUND,
            invite=invite,
            source=source,
            caller=_number(invite.headers.get("From")),
            called=_called(invite),
            local_tag=new_tag(),
            negotiated=negotiated,
        )
        call.remote_offer = offer
        self.track(call)
        self._invites[_invite_key(invite)] = call
        self.events.append(IncomingCall(call))

    def _authorized(self, invite: Request) -> bool:
        """Digest authentication of an inbound INVITE (RFC 3261 22.2, RFC 7616); a 401 if not."""
        stale = False
        value = invite.headers.get("Authorization")
        if value is not None:
            try:
                answer = auth.parse_authorization(value)
            except SipParseError:
                answer = None
            if answer is not None and answer.username == self.settings.username:
                verdict = self._nonces.check(answer.nonce, self._now)
                good = auth.verify(
                    answer,
                    password=self.settings.password,
                    method="INVITE",
                    realm=self.settings.realm,
                    body=invite.body,
                )
                if good and verdict == "ok":
                    return True
                stale = good and verdict == "stale"
        self._count("unauthorized")
        response = response_to(invite, 401)
        nonce = self._nonces.issue(self._now)
        for algorithm in ("SHA-256", "MD5"):  # RFC 8760 2.4: the preferred one first
            response.headers.add(
                "WWW-Authenticate",
                auth.challenge_value(
                    realm=self.settings.realm, nonce=nonce, algorithm=algorithm, stale=stale
                ),
            )
        self.outbox += self.layer.respond(invite, response, self._now)
        return False

    def _cancel(self, cancel: Request) -> None:
        call = self._invites.get(_invite_key(cancel))  # the INVITE it cancels (RFC 3261 9.2)
        if call is None or call.phase is not Phase.OFFERED:
            self._reply(cancel, 481)
            return
        self._reply(cancel, 200)
        self.outbox += self.layer.respond(call.invite, self._response(call, 487), self._now)
        self._ended(call, "cancel", 487)

    def _ack(self, ack: Request) -> None:
        call = self._in_dialog(ack)
        if call is None:
            return  # an ACK for nothing: no response to an ACK, ever (RFC 3261 17)
        retransmit = self._retransmits.pop(call.key, None)
        if retransmit is not None and call.phase is Phase.ANSWERED:
            call.phase = Phase.CONFIRMED
            self.events.append(CallConfirmed(call))

    # --- within a dialog ----------------------------------------------------------------------

    def _dialog_request(self, call: SipCall, request: Request) -> None:
        assert call.dialog is not None
        if not call.dialog.accepts_cseq(request):
            self._reply(request, 500)  # RFC 3261 12.2.2: out of order
            return
        method = request.method
        if method == "BYE":
            self._reply(request, 200)
            self._retransmits.pop(call.key, None)
            self._ended(call, "bye")
        elif method in ("INVITE", "UPDATE"):
            self._reoffer(call, request)
        elif method == "INFO":
            self._info(call, request)
        elif method == "NOTIFY":
            self._notify(call, request)
        elif method == "REFER":
            self._reply(request, 603)  # voxgate does not transfer on the peer's word
        else:
            self._reply(request, 405, allow=True)

    def _reoffer(self, call: SipCall, request: Request) -> None:
        """A re-INVITE or UPDATE (RFC 3311): hold, resume, new address (RFC 3264 8)."""
        if request.method == "INVITE" and call.phase is Phase.ANSWERED:
            self._reply(request, 500, retry_after=True)  # RFC 3261 14.2
            return
        offer = _offer(request)
        if offer is None:  # a session refresh without SDP: answer with the same session
            negotiated = call.negotiated
        elif call.negotiated is not None:  # the call's codec stays (its transcoder is made)
            negotiated = negotiate(offer, accept=(call.negotiated.codec.name,))
        else:
            negotiated = negotiate(offer, accept=self.settings.codecs)
        if negotiated is None or call.negotiated is None or call.media_address is None:
            self._reply(request, 488)
            return
        changed = negotiated != call.negotiated
        call.negotiated = negotiated  # the answer is built from the new negotiation
        if offer is not None:
            call.remote_offer = offer
        response = response_to(request, 200, to_tag=call.local_tag)
        self._decorate(response, contact=True)
        call.sdp_version += 1
        response.body = self._answer_body(call, offer, call.media_address)
        response.headers.add("Content-Type", "application/sdp")
        self.outbox += self.layer.respond(request, response, self._now)
        if changed:
            self.events.append(MediaUpdated(call, negotiated))

    def _info(self, call: SipCall, request: Request) -> None:
        kind = (request.headers.get("Content-Type") or "").split(";")[0].strip().lower()
        if kind not in ("application/dtmf-relay", "application/dtmf", ""):
            self._reply(request, 415)
            return
        self._reply(request, 200)
        digit, duration = _dtmf_relay(request.body, kind)
        if digit is not None:
            self.events.append(DtmfInfo(call, digit, duration))

    def _notify(self, call: SipCall, request: Request) -> None:
        self._reply(request, 200)
        event = (request.headers.get("Event") or "").split(";")[0].strip().lower()
        if event != "refer" or not call.refer_pending:
            return
        status = _sipfrag_status(request.body)
        if status is None or status < 200:
            return
        call.refer_pending = False
        ok = status < 300
        reason = "" if ok else f"the transfer target answered {status}"
        self.events.append(TransferDone(call, ok=ok, reason=reason))

    # --- responses to voxgate's requests ------------------------------------------------------

    def _response_in(self, response: Response) -> None:
        method = (response.headers.get("CSeq") or " ").split()[-1].upper()
        registration = self.registration
        if method == "REGISTER" and registration and registration.owns(_branch(response)):
            self._registered(registration, response)
            return
        call = self._for_response(response)
        if call is None:
            return
        if method == "INVITE" and call.direction is Direction.OUTBOUND:
            outbound.outbound_response(self, call, response)
        elif method == "REFER" and response.status >= 300 and call.refer_pending:
            call.refer_pending = False
            reason = f"the peer refused the transfer ({response.status})"
            self.events.append(TransferDone(call, ok=False, reason=reason))

    def _registered(self, registration: Registration, response: Response) -> None:
        was = registration.state
        again = registration.response(response, self._now)
        if again is not None:
            self.send_request(again, registration.target.registrar)
        elif registration.state == "registered" and was != "registered":
            log.info("registered with the trunk for %d s", registration.granted or 0)
        elif registration.state == "failed":
            self._count("register_failed")
            log.error("registration with the trunk failed (%d)", response.status)

    def _timed_out(self, request: Request) -> None:
        registration = self.registration
        if request.method == "REGISTER" and registration and registration.owns(_branch(request)):
            self._count("register_failed")
            log.error("registration with the trunk failed: no answer")
            registration.failed(self._now)
            return
        call = self._for_request(request)
        if call is None:
            return
        if request.method == "REFER" and call.refer_pending:
            call.refer_pending = False
            self.events.append(TransferDone(call, ok=False, reason="the peer did not answer"))
        elif request.method == "INVITE" and call.phase is Phase.OFFERED:
            self._ended(call, "unreachable")

    def _no_ack(self, call: SipCall) -> None:
        """RFC 3261 13.3.1.4: no ACK within 64*T1: end the dialog with BYE."""
        self._count("no_ack")
        if call.dialog is not None:
            self._send_in_dialog(call, call.dialog.request("BYE", *self._via(), self._contact()))
        self._ended(call, "no_ack")

    # --- building blocks ----------------------------------------------------------------------

    def _reply(
        self, request: Request, status: int, *, retry_after: bool = False, allow: bool = False
    ) -> None:
        response = response_to(request, status)
        self._decorate(response, allow=allow)
        if retry_after:
            response.headers.add("Retry-After", RETRY_AFTER)
        self.outbox += self.layer.respond(request, response, self._now)

    def _response(self, call: SipCall, status: int) -> Response:
        response = response_to(call.invite, status, to_tag=call.local_tag if status > 100 else None)
        if 100 < status < 300:  # RFC 3261 12.1.1: the dialog's route set goes back, in order
            for route in call.invite.headers.get_all("Record-Route"):
                response.headers.add("Record-Route", route)
        self._decorate(response, contact=100 < status < 300)
        return response

    def _decorate(self, response: Response, *, allow: bool = False, contact: bool = False) -> None:
        if contact:
            response.headers.add("Contact", self._contact())
        if allow or response.status == 405:
            response.headers.add("Allow", ALLOW)
        response.headers.add("Server", self.settings.user_agent)

    def _answer_body(
        self, call: SipCall, offer: SessionDescription | None, media: Address
    ) -> bytes:
        assert call.negotiated is not None
        if offer is None:
            offer = call.remote_offer
        assert offer is not None, "an answered call has the peer's offer"
        answer = answer_sdp(
            offer,
            call.negotiated,
            address=self.settings.advertised,
            port=media[1],
            session_id=abs(hash(call.key)) % 2**31,
            session_version=call.sdp_version,
        )
        return serialize_sdp(answer)

    def _send_in_dialog(self, call: SipCall, request: Request) -> None:
        assert call.dialog is not None
        self.send_request(request, call.dialog.next_hop)
        self._requests_of[_branch(request)] = call.key

    def _in_dialog(self, message: Request) -> SipCall | None:
        call_id = message.headers.get("Call-ID") or ""
        tag = _to_tag(message)
        if not tag:
            return None
        return self._by_dialog.get((call_id, tag))

    def _for_response(self, response: Response) -> SipCall | None:
        key = self._requests_of.get(_branch(response))
        return self.calls.get(key) if key is not None else None

    def _for_request(self, request: Request) -> SipCall | None:
        key = self._requests_of.pop(_branch(request), None)
        return self.calls.get(key) if key is not None else None

    def _ended(self, call: SipCall, reason: str, status: int | None = None) -> None:
        if call.phase is Phase.ENDED:
            return
        call.phase = Phase.ENDED
        self._retransmits.pop(call.key, None)
        self._invites.pop(_invite_key(call.invite), None)
        self.calls.pop(call.key, None)
        if call.dialog is not None:
            self._by_dialog.pop((call.dialog.call_id, call.dialog.local_tag), None)
        self.events.append(CallEnded(call, reason, status))

    def _allowed(self, source: Address) -> bool:
        if not self._networks:
            return True
        try:
            address = ipaddress.ip_address(source[0])
        except ValueError:
            return False
        return any(address in network for network in self._networks)

    def _via(self) -> tuple[str, int]:
        return self.settings.advertised, self.settings.port

    def _contact(self) -> str:
        return f"<sip:voxgate@{bracketed(self.settings.advertised)}:{self.settings.port}>"

    def _count(self, name: str) -> None:
        self.counters[name] = self.counters.get(name, 0) + 1
        if self._counted is not None:
            self._counted(name)


def _offer(request: Request) -> SessionDescription | None:
    kind = (request.headers.get("Content-Type") or "").split(";")[0].strip().lower()
    if not request.body or kind != "application/sdp":
        return None
    try:
        return parse_sdp(request.body)
    except SdpParseError:
        return None


def _invite_key(request: Request) -> tuple[str, str]:
    return request.headers.get("Call-ID") or "", _branch(request)


def _branch(message: Request | Response) -> str:
    try:
        return parse_via(message.headers.get("Via") or "").branch or ""
    except SipParseError:
        return ""


def _to_tag(message: Request | Response) -> str | None:
    try:
        return parse_name_addr(message.headers.get("To") or "").tag
    except SipParseError:
        return None


def _number(value: str | None) -> str:
    """The user part of a From/To (the phone number), else the whole URI."""
    try:
        uri = parse_uri(parse_name_addr(value or "").uri)
    except SipParseError:
        return ""
    return uri.user or uri.host


def _called(invite: Request) -> str:
    """The called number: the Request-URI's user part (what a trunk routes on), else To's."""
    try:
        uri = parse_uri(invite.uri)
    except SipParseError:
        uri = None
    if uri is not None and uri.user:
        return uri.user
    return _number(invite.headers.get("To"))


def _target_uri(target: str, call: SipCall) -> str:
    """A REFER target: a SIP URI as given, a number as a URI at the peer's host."""
    if target.startswith(("sip:", "sips:", "tel:")):
        return target
    assert call.dialog is not None
    try:
        host = parse_uri(parse_name_addr(call.dialog.remote_uri).uri).host
    except SipParseError:
        host = call.source[0]
    return f"sip:{target}@{bracketed(host)}"


def _dtmf_relay(body: bytes, kind: str) -> tuple[str | None, int | None]:
    """``Signal=5`` / ``Duration=160`` lines (application/dtmf-relay) or a bare digit."""
    text = body.decode("ascii", "replace")
    if kind == "application/dtmf":
        signal = text.strip()[:1]
        return (signal.upper() if signal and signal.upper() in DTMF_SIGNALS else None), None
    fields = {}
    for line in text.splitlines():
        name, _, value = line.partition("=")
        fields[name.strip().lower()] = value.strip()
    signal = fields.get("signal", "")[:1].upper()
    if not signal or signal not in DTMF_SIGNALS:
        return None, None
    duration = fields.get("duration", "")
    return signal, int(duration) if duration.isdigit() and len(duration) < 7 else None


def _sipfrag_status(body: bytes) -> int | None:
    """The status of a message/sipfrag body's status line (RFC 3420): ``SIP/2.0 200 OK``."""
    first = body.split(b"\n", 1)[0].decode("ascii", "replace").split()
    if len(first) >= 2 and first[0].upper() == "SIP/2.0" and first[1].isdigit():
        return int(first[1])
    return None
