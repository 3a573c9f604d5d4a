"""voxgate.bridge.sip.outbound: the UAC side of an outbound call, sans-I/O."""

from __future__ import annotations

from voxgate.bridge.sip.agent import AgentSettings, SipAgent
from voxgate.bridge.sip.calls import CallConfirmed, CallEnded, EarlyMedia, Ringing, SipCall
from voxgate.bridge.sip.message import Request, parse_message, response_to
from voxgate.bridge.sip.outbound import start_outbound
from voxgate.bridge.sip.sdp import offer_sdp

TRUNK = ("192.0.2.50", 5060)
ANSWER = (
    "v=0\r\no=callee 1 1 IN IP4 192.0.2.60\r\ns=-\r\nc=IN IP4 192.0.2.60\r\nt=0 0\r\n"
    "m=audio 30000 RTP/AVP 0 101\r\na=rtpmap:0 PCMU/8000\r\na=rtpmap:101 telephone-event/8000\r\n"
)


def dialled() -> tuple[SipAgent, SipCall, Request]:
    agent = SipAgent(AgentSettings("192.0.2.1", 5060, "192.0.2.1"), busy=lambda: None)
    offer = offer_sdp(address="192.0.2.1", port=20000, session_id=1, session_version=1)
    call = start_outbound(
        agent.at(0.0),
        request_uri="sip:+15557770000@192.0.2.50",
        from_number="+15550001111",
        trunk=TRUNK,
        offer=offer,
        media=("192.0.2.1", 20000),
        credentials=None,
    )
    (send,) = agent.outbox
    agent.outbox.clear()
    invite = parse_message(send.data)
    assert isinstance(invite, Request) and invite.method == "INVITE" and send.addr == TRUNK
    assert call.called == "+15557770000"  # what routes match
    return agent, call, invite


def reply(invite: Request, status: int, *, sdp: bool = False) -> bytes:
    response = response_to(invite, status, to_tag="callee-tag")
    if status == 200:
        response.headers.add("Contact", "<sip:callee@192.0.2.60:5060>")
    if sdp:
        response.headers.add("Content-Type", "application/sdp")
        response.body = ANSWER.encode()
    return response.serialize()


def test_a_183_with_sdp_is_early_media_then_the_200_is_acked_and_confirmed() -> None:
    agent, call, invite = dialled()
    agent.receive(reply(invite, 183, sdp=True), TRUNK, 0.2)
    assert [type(e) for e in agent.events] == [EarlyMedia, Ringing]
    assert call.negotiated is not None and call.negotiated.remote_port == 30000
    agent.events.clear()
    agent.receive(reply(invite, 200, sdp=True), TRUNK, 1.0)
    (ack_send,) = agent.outbox
    agent.outbox.clear()
    ack = parse_message(ack_send.data)
    assert isinstance(ack, Request) and ack.method == "ACK"
    assert ack.uri == "sip:callee@192.0.2.60:5060"  # the 2xx's Contact (RFC 3261 13.2.2.4)
    assert ack.headers.get("CSeq") == f"{(invite.headers.get('CSeq') or '').split()[0]} ACK"
    assert agent.events == [CallConfirmed(call)]
    agent.receive(reply(invite, 200, sdp=True), TRUNK, 1.5)  # a retransmitted 2xx
    (again,) = agent.outbox
    assert parse_message(again.data).method == "ACK"  # type: ignore[union-attr]


def test_a_180_without_sdp_rings_and_a_486_ends_the_call_busy() -> None:
    agent, call, invite = dialled()
    agent.receive(reply(invite, 180), TRUNK, 0.2)
    assert agent.events == [Ringing(call, 180)]
    agent.events.clear()
    agent.receive(reply(invite, 486), TRUNK, 0.5)
    (ack_send,) = agent.outbox  # the transaction's own ACK for a failure (17.1.1.3)
    assert parse_message(ack_send.data).method == "ACK"  # type: ignore[union-attr]
    assert agent.events == [CallEnded(call, "busy", 486)]


def test_cancel_waits_for_a_provisional_response() -> None:
    agent, call, invite = dialled()
    agent.at(0.1).cancel(call)
    assert agent.outbox == []  # RFC 3261 9.1: not before a 1xx
    agent.receive(reply(invite, 180), TRUNK, 0.2)
    (cancel_send,) = agent.outbox
    cancel = parse_message(cancel_send.data)
    assert isinstance(cancel, Request) and cancel.method == "CANCEL"
    assert cancel.headers.get("Via") == invite.headers.get("Via")  # the same branch (9.1)


def test_no_response_at_all_is_unreachable() -> None:
    agent, call, _ = dialled()
    now = 0.0
    while (due := agent.next_due()) is not None and due <= 40.0:
        now = due
        agent.handle_timer(now)
    assert CallEnded(call, "unreachable") in agent.events
