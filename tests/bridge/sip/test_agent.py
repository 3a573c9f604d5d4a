"""voxgate.bridge.sip.agent: the UAS behaviour, sans-I/O, with stepped time."""

from __future__ import annotations

import pytest

from voxgate.bridge.sip import auth
from voxgate.bridge.sip.agent import AgentSettings, SipAgent
from voxgate.bridge.sip.calls import (
    CallConfirmed,
    CallEnded,
    DtmfInfo,
    IncomingCall,
    MediaUpdated,
    SipCall,
    TransferDone,
)
from voxgate.bridge.sip.message import Request, Response, parse_message
from voxgate.bridge.sip.sdp import parse_sdp

PEER = ("192.0.2.10", 5062)
OFFER = (
    "v=0\r\no=peer 1 1 IN IP4 192.0.2.10\r\ns=-\r\nc=IN IP4 192.0.2.10\r\nt=0 0\r\n"
    "m=audio 7000 RTP/AVP 8 0 101\r\na=rtpmap:8 PCMA/8000\r\na=rtpmap:0 PCMU/8000\r\n"
    "a=rtpmap:101 telephone-event/8000\r\na=fmtp:101 0-16\r\na=ptime:20\r\n"
)


def request(
    method: str,
    *,
    branch: str = "z9hG4bK-1",
    cseq: int = 1,
    to_tag: str | None = None,
    body: str = "",
    extra: str = "",
    call_id: str = "call-1@peer",
    content_type: str = "application/sdp",
) -> bytes:
    to = "<sip:+15557770000@voxgate.example>" + (f";tag={to_tag}" if to_tag else "")
    lines = [
        f"{method} sip:+15557770000@192.0.2.1:5060 SIP/2.0",
        f"Via: SIP/2.0/UDP 192.0.2.10:5062;branch={branch}",
        "From: <sip:+15550001111@peer.example>;tag=peer-tag",
        f"To: {to}",
        f"Call-ID: {call_id}",
        f"CSeq: {cseq} {'INVITE' if method == 'ACK' and cseq == 1 else method}",
        "Contact: <sip:peer@192.0.2.10:5062>",
        "Max-Forwards: 70",
    ]
    if extra:
        lines += extra.split("\n")
    if body:
        lines.append(f"Content-Type: {content_type}")
    lines.append(f"Content-Length: {len(body.encode())}")
    return ("\r\n".join(lines) + "\r\n\r\n" + body).encode()


def ack(to_tag: str, branch: str = "z9hG4bK-ack") -> bytes:
    return request("ACK", branch=branch, to_tag=to_tag).replace(b"1 INVITE", b"1 ACK")


def make_agent(*, busy: str | None = None, **settings: object) -> SipAgent:
    state = {"busy": busy}
    agent = SipAgent(
        AgentSettings(host="192.0.2.1", port=5060, advertised="192.0.2.1", **settings),  # type: ignore[arg-type]
        busy=lambda: state["busy"],
    )
    agent.test_state = state  # type: ignore[attr-defined]
    return agent


def sent(agent: SipAgent) -> list[Response | Request]:
    messages = [parse_message(send.data) for send in agent.outbox]
    agent.outbox.clear()
    return messages


def statuses(agent: SipAgent) -> list[int]:
    return [m.status for m in sent(agent) if isinstance(m, Response)]


def incoming(agent: SipAgent, now: float = 0.0) -> SipCall:
    agent.receive(request("INVITE", body=OFFER), PEER, now)
    assert statuses(agent) == [100]
    event = agent.events.pop()
    assert isinstance(event, IncomingCall)
    return event.call


def answered(agent: SipAgent) -> tuple[SipCall, Response]:
    call = incoming(agent)
    agent.ring(call)
    agent.answer(call, ("192.0.2.1", 20000))
    ringing, ok = sent(agent)
    assert isinstance(ringing, Response) and ringing.status == 180
    assert isinstance(ok, Response) and ok.status == 200
    return call, ok


def confirmed(agent: SipAgent) -> SipCall:
    """A call answered and acknowledged, its events taken."""
    call, _ = answered(agent)
    agent.receive(ack(call.local_tag), PEER, 0.1)
    agent.events.clear()
    return call


def test_an_invite_gets_100_at_once_and_reaches_the_adapter() -> None:
    agent = make_agent()
    call = incoming(agent)
    assert (call.caller, call.called) == ("+15550001111", "+15557770000")
    assert call.negotiated is not None and call.negotiated.codec.name == "PCMA"


def test_the_answer_carries_sdp_contact_and_a_to_tag_and_is_repeated_until_the_ack() -> None:
    agent = make_agent()
    call, ok = answered(agent)
    to = ok.headers.get("To") or ""
    assert f"tag={call.local_tag}" in to
    assert ok.headers.get("Contact") == "<sip:voxgate@192.0.2.1:5060>"
    answer = parse_sdp(ok.body)
    audio = answer.audio()
    assert audio is not None and audio.port == 20000
    assert [c.name for c in audio.codecs] == ["PCMA", "telephone-event"]
    assert [c.payload_type for c in audio.codecs] == [8, 101]
    agent.handle_timer(0.5)  # T1
    assert statuses(agent) == [200]
    agent.handle_timer(1.5)  # 2*T1 later
    assert statuses(agent) == [200]
    agent.receive(ack(call.local_tag), PEER, 1.6)
    assert isinstance(agent.events.pop(), CallConfirmed)
    agent.handle_timer(10.0)
    assert sent(agent) == []


def test_a_copy_of_the_invite_after_the_answer_gets_the_2xx_again_not_a_new_call() -> None:
    agent = make_agent()
    answered(agent)
    agent.receive(request("INVITE", body=OFFER), PEER, 0.3)
    assert statuses(agent) == [200]
    assert agent.events == []


def test_no_ack_for_32_seconds_ends_the_call_with_bye() -> None:
    agent = make_agent()
    answered(agent)
    now = 0.0
    while (due := agent.next_due()) is not None and due <= 32.0:
        now = due
        agent.handle_timer(now)
    messages = sent(agent)
    assert any(isinstance(m, Request) and m.method == "BYE" for m in messages)
    ended = [e for e in agent.events if isinstance(e, CallEnded)]
    assert ended and ended[0].reason == "no_ack"
    assert 31.9 < now <= 32.0


def test_cancel_before_the_answer_gets_200_and_the_invite_487() -> None:
    agent = make_agent()
    call = incoming(agent)
    agent.ring(call)
    sent(agent)
    agent.receive(request("CANCEL").replace(b"1 CANCEL", b"1 CANCEL"), PEER, 0.2)
    assert statuses(agent) == [200, 487]
    event = agent.events.pop()
    assert isinstance(event, CallEnded) and event.reason == "cancel"


def test_bye_ends_the_call_and_a_bye_for_no_dialog_gets_481() -> None:
    agent = make_agent()
    call = confirmed(agent)
    agent.receive(request("BYE", branch="z9hG4bK-bye", cseq=2, to_tag=call.local_tag), PEER, 1.0)
    assert statuses(agent) == [200]
    event = agent.events.pop()
    assert isinstance(event, CallEnded) and event.reason == "bye"
    agent.receive(request("BYE", branch="z9hG4bK-bye2", cseq=3, to_tag="nope"), PEER, 1.1)
    assert statuses(agent) == [481]


def test_voxgate_hanging_up_sends_bye_within_the_dialog() -> None:
    agent = make_agent()
    call, _ = answered(agent)
    agent.receive(ack(call.local_tag), PEER, 0.1)
    agent.hangup(call)
    (bye,) = sent(agent)
    assert isinstance(bye, Request) and bye.method == "BYE"
    assert bye.uri == "sip:peer@192.0.2.10:5062"  # the peer's Contact
    assert "tag=peer-tag" in (bye.headers.get("To") or "")
    assert f"tag={call.local_tag}" in (bye.headers.get("From") or "")


@pytest.mark.parametrize(("busy", "status"), [(None, 200), ("draining", 503), ("full", 503)])
def test_options_is_200_or_503_with_retry_after(busy: str | None, status: int) -> None:
    agent = make_agent(busy=busy)
    agent.receive(request("OPTIONS"), PEER, 0.0)
    (response,) = sent(agent)
    assert isinstance(response, Response) and response.status == status
    if status == 503:
        assert response.headers.get("Retry-After")
    else:
        assert "INVITE" in (response.headers.get("Allow") or "")


def test_an_invite_while_draining_gets_503_with_retry_after() -> None:
    agent = make_agent(busy="draining")
    agent.receive(request("INVITE", body=OFFER), PEER, 0.0)
    messages = sent(agent)
    assert [m.status for m in messages if isinstance(m, Response)] == [100, 503]
    assert agent.events == []


def test_require_100rel_gets_420_with_unsupported() -> None:
    agent = make_agent()
    agent.receive(request("INVITE", body=OFFER, extra="Require: 100rel"), PEER, 0.0)
    _, refusal = sent(agent)
    assert isinstance(refusal, Response) and refusal.status == 420
    assert refusal.headers.get("Unsupported") == "100rel"


@pytest.mark.parametrize(
    "body",
    [
        "",  # no offer (late offer is not supported)
        OFFER.replace("RTP/AVP 8 0 101", "RTP/AVP 9").replace("a=rtpmap:8 PCMA/8000", ""),
        "not sdp at all",
    ],
    ids=["no-offer", "g722-only", "garbage"],
)
def test_nothing_in_common_gets_488(body: str) -> None:
    agent = make_agent()
    agent.receive(request("INVITE", body=body), PEER, 0.0)
    assert statuses(agent) == [100, 488]


def test_a_source_outside_the_allow_list_gets_403() -> None:
    agent = make_agent(allow=("198.51.100.0/24",))
    agent.receive(request("INVITE", body=OFFER), PEER, 0.0)
    assert statuses(agent) == [403]
    agent.receive(request("INVITE", body=OFFER, branch="z9hG4bK-2"), ("198.51.100.7", 5060), 0.1)
    assert statuses(agent) == [100]


def test_digest_challenge_then_the_authorized_invite_passes() -> None:
    agent = make_agent(username="trunk", password="s3cret", nonce_secret=b"k")
    agent.receive(request("INVITE", body=OFFER), PEER, 0.0)
    _, challenge = sent(agent)
    assert isinstance(challenge, Response) and challenge.status == 401
    values = challenge.headers.get_all("WWW-Authenticate")
    chosen = auth.choose_challenge(values)
    assert chosen is not None and chosen.algorithm == "SHA-256"
    value = auth.authorization(
        chosen,
        auth.Credentials("trunk", "s3cret"),
        method="INVITE",
        uri="sip:+15557770000@192.0.2.1:5060",
        cnonce="abc",
    )
    retry = request(
        "INVITE", body=OFFER, branch="z9hG4bK-2", cseq=2, extra=f"Authorization: {value}"
    )
    agent.receive(retry, PEER, 1.0)
    assert statuses(agent) == [100]
    assert isinstance(agent.events.pop(), IncomingCall)
    wrong = value.replace('username="trunk"', 'username="other"')
    agent.receive(
        request("INVITE", body=OFFER, branch="z9hG4bK-3", cseq=3, extra=f"Authorization: {wrong}"),
        PEER,
        1.0,
    )
    assert statuses(agent) == [100, 401]


def test_malformed_requests_get_400_with_the_reason_and_garbage_is_dropped() -> None:
    agent = make_agent()
    bad = request("INVITE", body=OFFER).replace(b"CSeq: 1 INVITE", b"CSeq: one INVITE")
    agent.receive(bad, PEER, 0.0)
    (reply,) = agent.outbox  # it copies the bad CSeq back, so it does not parse either
    agent.outbox.clear()
    first, _, rest = reply.data.partition(b"\r\n")
    assert first.startswith(b"SIP/2.0 400 Bad Request - ")
    assert b"CSeq" in first  # the parser's reason names what was wrong
    assert b"Call-ID: call-1@peer" in rest
    assert reply.addr == PEER
    agent.receive(b"\x00\xff garbage", PEER, 0.1)
    assert sent(agent) == []
    assert agent.counters["bad_message"] == 2


def test_info_dtmf_relay_reaches_the_call() -> None:
    agent = make_agent()
    call = confirmed(agent)
    info = request(
        "INFO",
        branch="z9hG4bK-info",
        cseq=2,
        to_tag=call.local_tag,
        body="Signal=5\r\nDuration=160\r\n",
        content_type="application/dtmf-relay",
    )
    agent.receive(info, PEER, 1.0)
    assert statuses(agent) == [200]
    assert agent.events == [DtmfInfo(call, "5", 160)]


@pytest.mark.parametrize("method", ["INVITE", "UPDATE"])
def test_a_hold_reinvite_or_update_is_answered_recvonly_and_reported(method: str) -> None:
    agent = make_agent()
    call = confirmed(agent)
    hold = OFFER.replace("a=ptime:20", "a=ptime:20\r\na=sendonly")
    agent.receive(
        request(method, branch="z9hG4bK-hold", cseq=2, to_tag=call.local_tag, body=hold),
        PEER,
        1.0,
    )
    messages = sent(agent)
    ok = messages[-1]
    assert isinstance(ok, Response) and ok.status == 200
    assert "a=recvonly" in ok.body.decode()
    assert "o=voxgate" in ok.body.decode() and " 2 IN IP4" in ok.body.decode()  # version 2
    (event,) = agent.events
    assert isinstance(event, MediaUpdated) and event.negotiated.on_hold


def test_a_reinvite_keeps_the_calls_codec_or_gets_488() -> None:
    agent = make_agent()
    call, _ = answered(agent)  # PCMA, the offer's first
    agent.receive(ack(call.local_tag), PEER, 0.1)
    swapped = OFFER.replace("RTP/AVP 8 0 101", "RTP/AVP 0 8 101")
    agent.receive(
        request("INVITE", branch="z9hG4bK-r1", cseq=2, to_tag=call.local_tag, body=swapped),
        PEER,
        1.0,
    )
    ok = sent(agent)[-1]
    assert isinstance(ok, Response) and ok.status == 200
    assert "m=audio 20000 RTP/AVP 8 101" in ok.body.decode()
    pcmu_only = OFFER.replace("RTP/AVP 8 0 101", "RTP/AVP 0 101")
    agent.receive(
        request("INVITE", branch="z9hG4bK-r2", cseq=3, to_tag=call.local_tag, body=pcmu_only),
        PEER,
        2.0,
    )
    assert statuses(agent)[-1] == 488


def test_bye_while_a_reinvites_200_awaits_its_ack_ends_the_call_cleanly() -> None:
    agent = make_agent()
    call = confirmed(agent)
    hold = OFFER.replace("a=ptime:20", "a=ptime:20\r\na=sendonly")
    agent.receive(
        request("INVITE", branch="z9hG4bK-h", cseq=2, to_tag=call.local_tag, body=hold), PEER, 1.0
    )
    assert statuses(agent)[-1] == 200
    agent.receive(request("BYE", branch="z9hG4bK-b", cseq=3, to_tag=call.local_tag), PEER, 1.1)
    assert statuses(agent) == [200]
    assert isinstance(agent.events[-1], CallEnded)
    agent.receive(ack(call.local_tag, branch="z9hG4bK-late"), PEER, 1.2)  # the late ACK
    agent.handle_timer(40.0)
    assert sent(agent) == []  # nothing more: no retransmission, no second BYE
    assert not agent.calls


def test_a_reinvite_before_the_ack_gets_500_with_retry_after() -> None:
    agent = make_agent()
    call, _ = answered(agent)
    agent.receive(
        request("INVITE", branch="z9hG4bK-re", cseq=2, to_tag=call.local_tag, body=OFFER),
        PEER,
        0.1,
    )
    assert statuses(agent)[-1] == 500


def test_refer_then_a_notify_with_200_reports_the_transfer_done() -> None:
    agent = make_agent()
    call = confirmed(agent)
    agent.refer(call, "+15559990000")
    (refer,) = sent(agent)
    assert isinstance(refer, Request) and refer.method == "REFER"
    assert refer.headers.get("Refer-To") == "<sip:+15559990000@peer.example>"
    notify = request(
        "NOTIFY",
        branch="z9hG4bK-n1",
        cseq=2,
        to_tag=call.local_tag,
        body="SIP/2.0 200 OK\r\n",
        content_type="message/sipfrag",
        extra="Event: refer\nSubscription-State: terminated",
    )
    agent.receive(notify, PEER, 0.5)
    assert statuses(agent) == [200]
    assert agent.events == [TransferDone(call, ok=True)]


def test_an_unknown_method_gets_405_with_allow() -> None:
    agent = make_agent()
    agent.receive(request("MESSAGE"), PEER, 0.0)
    (response,) = sent(agent)
    assert isinstance(response, Response) and response.status == 405
    assert response.headers.get("Allow")


def test_a_compact_form_invite_with_a_large_identity_header_is_taken() -> None:
    """Telnyx sends compact headers by default; STIR/SHAKEN Identity headers are large."""
    agent = make_agent()
    identity = "eyJhbGciOiJFUzI1NiJ9." + "A" * 12_000 + ";info=<https://cert.example/x.pem>"
    body = OFFER
    compact = (
        "INVITE sip:+15557770000@192.0.2.1:5060 SIP/2.0\r\n"
        "v: SIP/2.0/UDP 192.0.2.10:5062;branch=z9hG4bK-c1\r\n"
        "f: <sip:+15550001111@peer.example>;tag=t1\r\n"
        "t: <sip:+15557770000@voxgate.example>\r\n"
        "i: compact-1@peer\r\n"
        "CSeq: 1 INVITE\r\n"
        "m: <sip:peer@192.0.2.10:5062>\r\n"
        f"y: {identity}\r\n"
        "c: application/sdp\r\n"
        f"l: {len(body)}\r\n\r\n{body}"
    ).encode()
    assert len(compact) > 12_000
    agent.receive(compact, PEER, 0.0)
    assert statuses(agent) == [100]
    (event,) = agent.events
    assert isinstance(event, IncomingCall) and event.call.called == "+15557770000"


def test_the_external_address_is_what_contact_and_sdp_advertise() -> None:
    agent = SipAgent(
        AgentSettings(host="10.0.0.5", port=5060, advertised="203.0.113.10"), busy=lambda: None
    )
    call = incoming(agent)
    agent.answer(call, ("10.0.0.5", 20000))
    (ok,) = sent(agent)
    assert isinstance(ok, Response)
    assert ok.headers.get("Contact") == "<sip:voxgate@203.0.113.10:5060>"
    assert "c=IN IP4 203.0.113.10" in ok.body.decode()


def test_the_answer_copies_the_record_route_set_in_order() -> None:
    """RFC 3261 12.1.1: a proxy in front (Kamailio) stays on the dialog's path."""
    agent = make_agent()
    routes = "Record-Route: <sip:192.0.2.5;lr>\nRecord-Route: <sip:192.0.2.6;lr;ftag=x>"
    agent.receive(request("INVITE", body=OFFER, extra=routes), PEER, 0.0)
    sent(agent)
    (event,) = agent.events
    assert isinstance(event, IncomingCall)
    agent.ring(event.call)
    agent.answer(event.call, ("192.0.2.1", 20000))
    for response in sent(agent):
        assert response.headers.get_all("Record-Route") == [
            "<sip:192.0.2.5;lr>",
            "<sip:192.0.2.6;lr;ftag=x>",
        ]
    agent.receive(ack(event.call.local_tag), PEER, 0.1)
    agent.hangup(event.call)
    (bye,) = sent(agent)
    assert isinstance(bye, Request)
    assert bye.headers.get_all("Route") == ["<sip:192.0.2.5;lr>", "<sip:192.0.2.6;lr;ftag=x>"]
