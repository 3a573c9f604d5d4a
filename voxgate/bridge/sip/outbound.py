"""Outbound calls: voxgate as the UAC through a trunk (RFC 3261 sections 8.1, 13.2, 22).

Theory of operation
-------------------
:func:`start_outbound` sends an INVITE with voxgate's SDP offer to the trunk
(the outbound proxy: the Request-URI names the callee, the datagram goes to
the trunk's address). Then :func:`outbound_response` follows the answers the
transaction layer hands up:

- 1xx: :class:`Ringing` for 180/183; a 1xx with SDP is early media (the
  callee's ringback or announcements: :class:`EarlyMedia`, the RTP flows
  before the answer);
- 401/407 with a digest challenge: the INVITE is sent again once with
  ``Authorization``/``Proxy-Authorization`` (RFC 3261 22.2, RFC 7616; a new
  branch and CSeq + 1, same Call-ID and From tag); a second challenge fails
  the call (wrong credentials);
- 2xx: the dialog is made from it (12.1.2), ACK is sent (13.2.2.4: a new
  transaction-less request, CSeq number of the INVITE) and
  :class:`CallConfirmed` reports the answer; a retransmitted 2xx is ACKed
  again;
- 3xx-6xx: the call ends: 486/600 ``busy``, 408/480/487 ``no_answer``
  (487 is what voxgate's own CANCEL at the ring timeout brings), anything
  else ``rejected``; no response at all (timer B) ``unreachable``.

:func:`cancel_outbound` sends CANCEL (9.1) once a provisional response has
come; before that it is only remembered, and sent when one comes.
"""

from __future__ import annotations

import secrets
from typing import TYPE_CHECKING

from voxgate.bridge.sip import auth
from voxgate.bridge.sip.calls import (
    CallConfirmed,
    Direction,
    EarlyMedia,
    Phase,
    Ringing,
    SipCall,
)
from voxgate.bridge.sip.dialog import Dialog, new_call_id, new_tag
from voxgate.bridge.sip.message import Headers, Request, Response, parse_message
from voxgate.bridge.sip.sdp import (
    Negotiated,
    SessionDescription,
    accept_answer,
    parse_sdp,
    serialize_sdp,
)
from voxgate.bridge.sip.timers import Address
from voxgate.bridge.sip.transaction import new_via
from voxgate.bridge.sip.uri import bracketed
from voxgate.errors import SdpParseError

if TYPE_CHECKING:
    from voxgate.bridge.sip.agent import SipAgent

MAX_AUTH_TRIES = 1  # a second challenge means the credentials are wrong


def start_outbound(
    agent: SipAgent,
    *,
    request_uri: str,
    from_number: str,
    trunk: Address,
    offer: SessionDescription,
    media: Address,
    credentials: auth.Credentials | None,
) -> SipCall:
    """Send the INVITE; returns the call to follow (its events come from the agent)."""
    host, port = agent.via()
    local_tag = new_tag()
    caller = from_number or "voxgate"
    headers = Headers()
    headers.add("Via", new_via(host, port))
    headers.add("Max-Forwards", "70")
    headers.add("From", f"<sip:{caller}@{bracketed(host)}>;tag={local_tag}")
    headers.add("To", f"<{request_uri}>")
    headers.add("Call-ID", new_call_id(host))
    headers.add("CSeq", f"{secrets.randbelow(2**16) + 1} INVITE")
    headers.add("Contact", agent.contact())
    headers.add("Allow", "INVITE, ACK, CANCEL, BYE, OPTIONS, INFO, UPDATE, REFER, NOTIFY")
    headers.add("Content-Type", "application/sdp")
    invite = Request("INVITE", request_uri, headers, serialize_sdp(offer))
    call = SipCall(
        key=agent.new_key(),
        direction=Direction.OUTBOUND,
        invite=invite,
        source=trunk,
        caller=caller,
        called=_user_part(request_uri),
        local_tag=local_tag,
        offer=offer,
        media_address=media,
        credentials=credentials,
    )
    agent.track(call)
    _send_invite(agent, call)
    return call


def outbound_response(agent: SipAgent, call: SipCall, response: Response) -> None:
    status = response.status
    if call.phase is Phase.ENDED:
        if 200 <= status < 300:  # answered after voxgate gave up: ACK, then BYE
            _ack_and_bye(agent, call, response)
        return
    if status < 200:
        _provisional(agent, call, response)
    elif status < 300:
        _answered(agent, call, response)
    elif status in (401, 407) and call.auth_tries < MAX_AUTH_TRIES and call.credentials:
        _authenticate(agent, call, response)
    else:
        agent.ended(call, _failure(status), status)


def cancel_outbound(agent: SipAgent, call: SipCall) -> None:
    if call.phase is not Phase.OFFERED:
        return
    if not call.provisional:
        call.cancel_wanted = True  # RFC 3261 9.1: not before a provisional response
        return
    invite = call.invite
    headers = Headers()
    for name in ("Via", "Route"):
        values = invite.headers.get_all(name)
        for value in values[:1] if name == "Via" else values:
            headers.add(name, value)
    headers.add("Max-Forwards", "70")
    for name in ("From", "To", "Call-ID"):
        headers.add(name, invite.headers.get(name) or "")
    number = (invite.headers.get("CSeq") or "1").split()[0]
    headers.add("CSeq", f"{number} CANCEL")
    agent.send_request(Request("CANCEL", invite.uri, headers), call.source)


def _send_invite(agent: SipAgent, call: SipCall) -> None:
    agent.send_request(call.invite, call.source)
    agent.remember(call.invite, call)


def _provisional(agent: SipAgent, call: SipCall, response: Response) -> None:
    if response.status == 100:
        return
    first = not call.provisional
    call.provisional = True
    if call.cancel_wanted:
        cancel_outbound(agent, call)
        return
    negotiated = _answer(call, response)
    if negotiated is not None and not call.early_media:
        call.early_media = True
        call.negotiated = negotiated
        agent.events.append(EarlyMedia(call))
    if first or response.status in (180, 183):
        agent.events.append(Ringing(call, response.status))


def _answered(agent: SipAgent, call: SipCall, response: Response) -> None:
    negotiated = _answer(call, response) or call.negotiated
    dialog = Dialog.as_uac(call.invite, response, call.source)
    call.dialog = dialog
    agent.add_dialog(call)
    _ack(agent, call, dialog)
    if negotiated is None:  # nothing usable in the answer: end it politely
        agent.hangup_confirmed(call, "rejected", 488)
        return
    call.negotiated = negotiated
    call.phase = Phase.CONFIRMED
    call.final_status = response.status
    agent.events.append(CallConfirmed(call))


def _ack(agent: SipAgent, call: SipCall, dialog: Dialog) -> None:
    """RFC 3261 13.2.2.4: the ACK for a 2xx, sent straight (no transaction)."""
    number = (call.invite.headers.get("CSeq") or "1").split()[0]
    ack = dialog.request("ACK", *agent.via(), agent.contact())
    ack.headers.set("CSeq", f"{number} ACK")
    auth_value = call.invite.headers.get("Proxy-Authorization")
    if auth_value is not None:  # RFC 3261 22.3: the ACK carries the same credentials
        ack.headers.add("Proxy-Authorization", auth_value)
    agent.send_raw(ack.serialize(), dialog.next_hop)


def _ack_and_bye(agent: SipAgent, call: SipCall, response: Response) -> None:
    dialog = Dialog.as_uac(call.invite, response, call.source)
    _ack(agent, call, dialog)
    agent.send_request(dialog.request("BYE", *agent.via(), agent.contact()), dialog.next_hop)


def _authenticate(agent: SipAgent, call: SipCall, response: Response) -> None:
    """RFC 3261 22.2: the INVITE again, with credentials for the challenge."""
    assert call.credentials is not None
    proxy = response.status == 407
    values = response.headers.get_all("Proxy-Authenticate" if proxy else "WWW-Authenticate")
    challenge = auth.choose_challenge(values)
    if challenge is None:
        agent.ended(call, "rejected", response.status)
        return
    call.auth_tries += 1
    invite = parse_message(call.invite.serialize())  # a copy to change
    assert isinstance(invite, Request)
    number = int((invite.headers.get("CSeq") or "1").split()[0]) + 1
    invite.headers.set("CSeq", f"{number} INVITE")
    host, port = agent.via()
    invite.headers.set("Via", new_via(host, port))
    value = auth.authorization(
        challenge,
        call.credentials,
        method="INVITE",
        uri=invite.uri,
        cnonce=secrets.token_hex(8),
        body=invite.body,
    )
    invite.headers.set("Proxy-Authorization" if proxy else "Authorization", value)
    call.invite = invite
    call.provisional = False
    _send_invite(agent, call)


def _answer(call: SipCall, response: Response) -> Negotiated | None:
    """The callee's SDP answer in ``response``, negotiated against voxgate's offer."""
    kind = (response.headers.get("Content-Type") or "").split(";")[0].strip().lower()
    if not response.body or kind != "application/sdp" or call.offer is None:
        return None
    try:
        return accept_answer(call.offer, parse_sdp(response.body))
    except SdpParseError:
        return None


def _user_part(uri: str) -> str:
    """The number in ``sip:+1555...@host`` (what routes match), else the URI itself."""
    user = uri.split(":", 1)[-1].split("@", 1)[0] if "@" in uri else ""
    return user.split(";", 1)[0] or uri


def _failure(status: int) -> str:
    if status in (486, 600):
        return "busy"
    if status in (408, 480, 487):
        return "no_answer"
    return "rejected"
