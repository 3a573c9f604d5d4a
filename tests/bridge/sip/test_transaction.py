from __future__ import annotations

import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from voxgate.bridge.sip.message import Headers, Request, Response, parse_message, response_to
from voxgate.bridge.sip.transaction import (
    MAGIC_COOKIE,
    AckOutsideTransaction,
    CancelReceived,
    RequestReceived,
    ResponseReceived,
    Send,
    StrayResponse,
    TimedOut,
    TransactionLayer,
    build_ack,
    new_branch,
)

CARRIER = ("203.0.113.9", 40000)  # where the carrier's packets come from (behind NAT)
TARGET = ("203.0.113.9", 40000)  # where responses go: rport (RFC 3581)
GATEWAY = ("192.0.2.50", 5060)  # where voxgate sends its own requests


def wire(text: str) -> bytes:
    return text.replace("\n", "\r\n").encode()


def message(text: str) -> Request | Response:
    return parse_message(wire(text))


def incoming(
    method: str = "INVITE",
    *,
    branch: str = "z9hG4bK74bf9",
    cseq: int = 1,
    cseq_method: str | None = None,
    to_tag: str | None = None,
    via: str = "SIP/2.0/UDP 10.0.0.5:5060;rport;branch={branch}",
) -> Request:
    """A request from the carrier, from bytes."""
    to = "<sip:bot@voxgate.example>" + (f";tag={to_tag}" if to_tag else "")
    parsed = message(
        f"{method} sip:bot@voxgate.example SIP/2.0\n"
        f"Via: {via.format(branch=branch)}\n"
        "Max-Forwards: 70\n"
        f"To: {to}\n"
        "From: <sip:+15550100@carrier.example>;tag=9fxced76sl\n"
        "Call-ID: 3848276298220188511@carrier.example\n"
        f"CSeq: {cseq} {cseq_method or method}\n"
        "Content-Length: 0\n\n"
    )
    assert isinstance(parsed, Request)
    return parsed


def outgoing(method: str = "INVITE", branch: str = "z9hG4bKout1") -> Request:
    """A request of voxgate's, from bytes."""
    parsed = message(
        f"{method} sip:+15550199@gateway.example SIP/2.0\n"
        f"Via: SIP/2.0/UDP 192.0.2.1:5060;branch={branch};rport\n"
        "Max-Forwards: 70\n"
        "To: <sip:+15550199@gateway.example>\n"
        "From: <sip:bot@voxgate.example>;tag=vg1\n"
        "Call-ID: out-1@192.0.2.1\n"
        f"CSeq: 1 {method}\n"
        "Content-Length: 0\n\n"
    )
    assert isinstance(parsed, Request)
    return parsed


def reply(to: Request, status: int, *, tag: str | None = "gw9") -> Response:
    """A response from the peer to ``to``, serialized and parsed again."""
    parsed = parse_message(response_to(to, status, to_tag=tag).serialize())
    assert isinstance(parsed, Response)
    return parsed


def received_request(layer: TransactionLayer, request: Request, now: float = 0.0) -> Request:
    """Feed a new request; return the request as the TU gets it (Via stamped)."""
    assert layer.receive(request, CARRIER, now) == []
    [event] = layer.drain_events()
    assert isinstance(event, RequestReceived)
    assert event.addr == CARRIER
    return event.request


def run_until(layer: TransactionLayer, end: float) -> list[tuple[float, list[Send]]]:
    fired = []
    while (due := layer.next_due()) is not None and due <= end:
        fired.append((due, layer.handle_timer(due)))
    return fired


# --- server side --------------------------------------------------------------------------------


def test_a_new_request_is_reported_once_with_the_via_stamped() -> None:
    layer = TransactionLayer()
    request = received_request(layer, incoming())
    assert request.headers.get("Via") == (
        "SIP/2.0/UDP 10.0.0.5:5060;rport=40000;branch=z9hG4bK74bf9;received=203.0.113.9"
    )
    assert layer.response_target(request) == TARGET
    assert len(layer) == 1
    assert layer.receive(incoming(), CARRIER, 0.5) == []  # a retransmission: absorbed
    assert layer.drain_events() == []


def test_responses_go_to_the_target_and_retransmissions_get_the_last_one() -> None:
    layer = TransactionLayer()
    invite = received_request(layer, incoming())
    trying = response_to(invite, 100)
    assert layer.respond(invite, trying, 0.0) == [Send(trying.serialize(), TARGET)]
    assert b"received=203.0.113.9" in trying.serialize()  # 18.2.1: the response carries it
    ringing = response_to(invite, 180, to_tag="vg7")
    assert layer.respond(invite, ringing, 0.2) == [Send(ringing.serialize(), TARGET)]
    assert layer.receive(incoming(), CARRIER, 0.5) == [Send(ringing.serialize(), TARGET)]
    assert layer.drain_events() == []
    assert layer.next_due() is None


def test_2xx_to_invite_ends_the_transaction_and_its_ack_goes_to_the_dialog() -> None:
    layer = TransactionLayer()
    invite = received_request(layer, incoming())
    ok = response_to(invite, 200, to_tag="vg7")
    assert layer.respond(invite, ok, 1.0) == [Send(ok.serialize(), TARGET)]
    assert len(layer) == 0  # forgotten at once (17.2.1)
    assert layer.drain_events() == []
    ack = incoming("ACK", branch="z9hG4bKack2", to_tag="vg7")  # an ACK of a 2xx: new branch
    assert layer.receive(ack, CARRIER, 1.2) == []
    assert layer.drain_events() == [AckOutsideTransaction(ack, CARRIER)]
    assert layer.respond(invite, ok, 1.5) == []  # no transaction left: the TU's job now


def test_failure_is_retransmitted_until_the_ack_which_is_absorbed() -> None:
    layer = TransactionLayer()
    invite = received_request(layer, incoming())
    busy = response_to(invite, 486, to_tag="vg7")
    assert layer.respond(invite, busy, 0.0) == [Send(busy.serialize(), TARGET)]
    fired = run_until(layer, 1.5)
    assert fired == [
        (0.5, [Send(busy.serialize(), TARGET)]),
        (1.5, [Send(busy.serialize(), TARGET)]),
    ]
    ack = incoming("ACK", to_tag="vg7")  # the same branch as the INVITE (17.1.1.3)
    assert layer.receive(ack, CARRIER, 2.0) == []
    assert layer.drain_events() == []  # absorbed: the TU never sees the ACK of a failure
    assert layer.next_due() == 7.0  # timer I
    assert run_until(layer, 100.0) == [(7.0, [])]
    assert len(layer) == 0


def test_no_ack_for_a_failure_times_out_with_the_invite() -> None:
    layer = TransactionLayer()
    invite = received_request(layer, incoming())
    layer.respond(invite, response_to(invite, 480, to_tag="vg7"), 0.0)
    fired = run_until(layer, 100.0)
    assert [at for at, sends in fired if sends][-1] == 31.5
    assert fired[-1] == (32.0, [])
    assert layer.drain_events() == [TimedOut(invite)]
    assert len(layer) == 0


def test_non_invite_lives_64_t1_after_its_final_response() -> None:
    layer = TransactionLayer(t1=0.1)
    bye = received_request(layer, incoming("BYE", to_tag="vg7", cseq=2))
    ok = response_to(bye, 200)
    assert layer.respond(bye, ok, 1.0) == [Send(ok.serialize(), TARGET)]
    retransmission = incoming("BYE", to_tag="vg7", cseq=2)
    assert layer.receive(retransmission, CARRIER, 2.0) == [Send(ok.serialize(), TARGET)]
    assert layer.next_due() == pytest.approx(7.4)  # timer J = 64*T1
    run_until(layer, 100.0)
    assert len(layer) == 0
    assert layer.drain_events() == []
    received_request(layer, retransmission, 8.0)  # after J it is new again


def test_same_branch_different_sent_by_or_method_are_different_transactions() -> None:
    layer = TransactionLayer()
    received_request(layer, incoming())
    received_request(layer, incoming(via="SIP/2.0/UDP 10.0.0.6:5060;branch={branch}"))
    received_request(layer, incoming("OPTIONS"))
    assert len(layer) == 3


# --- CANCEL (9.2) -------------------------------------------------------------------------------


def test_cancel_is_reported_with_the_invite_it_cancels() -> None:
    layer = TransactionLayer()
    invite = received_request(layer, incoming())
    layer.respond(invite, response_to(invite, 180, to_tag="vg7"), 0.0)
    cancel_in = incoming("CANCEL")
    assert layer.receive(cancel_in, CARRIER, 1.0) == []
    [event] = layer.drain_events()
    assert isinstance(event, CancelReceived)
    assert event.invite is invite
    assert event.addr == CARRIER
    cancel = event.request
    assert cancel.method == "CANCEL"
    ok = response_to(cancel, 200, to_tag="vg7")
    assert layer.respond(cancel, ok, 1.0) == [Send(ok.serialize(), TARGET)]
    terminated = response_to(invite, 487, to_tag="vg7")
    assert layer.respond(invite, terminated, 1.0) == [Send(terminated.serialize(), TARGET)]
    assert layer.receive(incoming("CANCEL"), CARRIER, 1.5) == [Send(ok.serialize(), TARGET)]
    assert layer.drain_events() == []


def test_cancel_of_nothing_is_reported_without_an_invite() -> None:
    layer = TransactionLayer()
    cancel = incoming("CANCEL", branch="z9hG4bKunknown")
    layer.receive(cancel, CARRIER, 0.0)
    [event] = layer.drain_events()
    assert isinstance(event, CancelReceived)
    assert event.invite is None
    assert len(layer) == 1  # the CANCEL's own transaction


# --- RFC 2543 fallback (17.2.3) -----------------------------------------------------------------

LEGACY = "SIP/2.0/UDP 10.0.0.5:5060;branch={branch}"


def test_rfc2543_retransmission_matches_by_headers() -> None:
    layer = TransactionLayer()
    invite = received_request(layer, incoming(branch="1234", via=LEGACY))
    ringing = response_to(invite, 180, to_tag="vg7")
    layer.respond(invite, ringing, 0.0)
    target = ("203.0.113.9", 5060)  # received, at the sent-by port: no rport
    again = incoming(branch="1234", via=LEGACY)
    assert layer.receive(again, CARRIER, 0.5) == [Send(ringing.serialize(), target)]
    assert layer.drain_events() == []
    received_request(layer, incoming(branch="1234", via=LEGACY, cseq=2))  # another CSeq
    received_request(layer, incoming(via="SIP/2.0/UDP 10.0.0.5:5060"))  # another Via
    assert len(layer) == 3


@pytest.mark.parametrize(
    ("invite_tag", "ack_tag", "absorbed"),
    [
        pytest.param(None, "vg7", True, id="initial-invite-ack-with-response-tag"),
        pytest.param("vg7", "vg7", True, id="reinvite-ack"),
        pytest.param(None, "other", False, id="ack-with-another-tag"),
    ],
)
def test_rfc2543_ack_matches_with_the_tag_of_the_response(
    invite_tag: str | None, ack_tag: str, absorbed: bool
) -> None:
    layer = TransactionLayer()
    invite = received_request(layer, incoming(branch="1234", via=LEGACY, to_tag=invite_tag))
    layer.respond(invite, response_to(invite, 486, to_tag="vg7"), 0.0)
    ack = incoming("ACK", branch="1234", via=LEGACY, to_tag=ack_tag)
    assert layer.receive(ack, CARRIER, 0.2) == []
    expected = [] if absorbed else [AckOutsideTransaction(ack, CARRIER)]
    assert layer.drain_events() == expected
    assert layer.next_due() == (5.2 if absorbed else 0.5)  # timer I, else still G


def test_rfc2543_cancel_matches_the_invite() -> None:
    layer = TransactionLayer()
    invite = received_request(layer, incoming(branch="1234", via=LEGACY))
    layer.receive(incoming("CANCEL", branch="1234", via=LEGACY), CARRIER, 1.0)
    [event] = layer.drain_events()
    assert isinstance(event, CancelReceived)
    assert event.invite is invite


# --- client side --------------------------------------------------------------------------------


def test_client_invite_responses_go_to_the_tu_with_the_request() -> None:
    layer = TransactionLayer()
    invite = outgoing()
    assert layer.request(invite, GATEWAY, 0.0) == [Send(invite.serialize(), GATEWAY)]
    assert run_until(layer, 0.5) == [(0.5, [Send(invite.serialize(), GATEWAY)])]
    ringing = reply(invite, 180)
    assert layer.receive(ringing, GATEWAY, 0.7) == []
    assert layer.drain_events() == [ResponseReceived(ringing, invite)]
    assert layer.next_due() is None
    ok = reply(invite, 200)
    assert layer.receive(ok, GATEWAY, 2.0) == []
    assert layer.drain_events() == [ResponseReceived(ok, invite)]
    assert len(layer) == 0
    assert layer.receive(ok, GATEWAY, 2.5) == []  # the 2xx again: the dialog must re-ACK
    assert layer.drain_events() == [StrayResponse(ok, GATEWAY)]


def test_client_invite_failure_is_acked_by_the_layer() -> None:
    layer = TransactionLayer()
    invite = outgoing()
    layer.request(invite, GATEWAY, 0.0)
    busy = reply(invite, 486)
    ack = Send(build_ack(invite, busy).serialize(), GATEWAY)
    assert layer.receive(busy, GATEWAY, 0.2) == [ack]
    assert layer.receive(busy, GATEWAY, 0.7) == [ack]
    assert layer.drain_events() == [ResponseReceived(busy, invite)]
    assert run_until(layer, 100.0) == [(32.2, [])]  # timer D
    assert len(layer) == 0


def test_client_non_invite_times_out_with_its_request() -> None:
    layer = TransactionLayer()
    options = outgoing("OPTIONS")
    layer.request(options, GATEWAY, 0.0)
    fired = run_until(layer, 100.0)
    assert len([at for at, sends in fired if sends]) == 10  # timer E, 0.5 ... 31.5
    assert fired[-1] == (32.0, [])
    assert layer.drain_events() == [TimedOut(options)]
    assert len(layer) == 0


def test_responses_match_on_branch_and_cseq_method() -> None:
    layer = TransactionLayer()
    invite = outgoing()
    layer.request(invite, GATEWAY, 0.0)
    cancel = outgoing("CANCEL")  # the same branch as the INVITE (9.1)
    layer.request(cancel, GATEWAY, 0.1)
    cancel_ok = reply(cancel, 200)
    layer.receive(cancel_ok, GATEWAY, 0.2)
    assert layer.drain_events() == [ResponseReceived(cancel_ok, cancel)]
    other = reply(outgoing(branch="z9hG4bKother"), 200)
    layer.receive(other, GATEWAY, 0.3)
    assert layer.drain_events() == [StrayResponse(other, GATEWAY)]


def test_an_ack_is_sent_without_a_transaction() -> None:
    layer = TransactionLayer()
    ack = outgoing("ACK")
    assert layer.request(ack, GATEWAY, 0.0) == [Send(ack.serialize(), GATEWAY)]
    assert len(layer) == 0
    assert layer.next_due() is None


@pytest.mark.parametrize(
    "branch",
    [pytest.param("1234", id="no-magic-cookie"), pytest.param("z9hG4bKout1", id="in-use")],
)
def test_a_request_needs_a_fresh_rfc3261_branch(branch: str) -> None:
    layer = TransactionLayer()
    layer.request(outgoing(), GATEWAY, 0.0)
    with pytest.raises(ValueError, match="branch"):
        layer.request(outgoing(branch=branch), GATEWAY, 0.0)


def test_new_branch_has_the_magic_cookie_and_is_fresh() -> None:
    branches = {new_branch() for _ in range(100)}
    assert len(branches) == 100
    assert all(re.fullmatch(MAGIC_COOKIE + "[0-9a-f]{24}", branch) for branch in branches)


# --- bounds, timers, malformed input ------------------------------------------------------------


def test_requests_beyond_the_bound_get_a_stateless_503() -> None:
    layer = TransactionLayer(max_transactions=2)
    first = received_request(layer, incoming(branch="z9hG4bK1"))
    received_request(layer, incoming(branch="z9hG4bK2"))
    layer.request(outgoing(), GATEWAY, 0.0)  # voxgate's own requests do not count
    third = incoming(branch="z9hG4bK3")
    [send] = layer.receive(third, CARRIER, 0.0)
    assert send.addr == TARGET
    refusal = parse_message(send.data)
    assert isinstance(refusal, Response)
    assert refusal.status == 503
    assert layer.drain_events() == []
    assert layer.rejected == 1
    assert len(layer) == 3
    assert layer.receive(incoming(branch="z9hG4bK1"), CARRIER, 0.1) == []  # known: absorbed
    layer.respond(first, response_to(first, 200, to_tag="x"), 0.2)  # ends the first
    received_request(layer, third, 0.3)


def test_timers_of_many_transactions_fire_in_order() -> None:
    layer = TransactionLayer()
    invites = [outgoing(branch=f"z9hG4bK{n}") for n in range(3)]
    for n, invite in enumerate(invites):
        layer.request(invite, GATEWAY, n * 0.1)
    fired = run_until(layer, 1.0)
    assert [(at, sends[0].data) for at, sends in fired] == [
        (0.5, invites[0].serialize()),
        (0.6, invites[1].serialize()),
        (0.7, invites[2].serialize()),
    ]
    layer.receive(reply(invites[1], 180), GATEWAY, 1.0)  # stops its timers
    fired = run_until(layer, 2.0)
    assert [(at, sends[0].data) for at, sends in fired] == [
        (1.5, invites[0].serialize()),
        (1.7, invites[2].serialize()),
    ]
    assert layer.handle_timer(1.8) == []  # nothing due


def test_stale_timer_entries_stay_bounded() -> None:
    layer = TransactionLayer()
    for n in range(200):  # the ACK replaces G and H by I: a stale heap entry each
        invite = received_request(layer, incoming(branch=f"z9hG4bK{n}"), 0.0)
        layer.respond(invite, response_to(invite, 486, to_tag="t"), 0.0)
        layer.receive(incoming("ACK", branch=f"z9hG4bK{n}", to_tag="t"), CARRIER, 0.0)
    assert len(layer._heap) <= 2 * len(layer) + 64 + 1
    run_until(layer, 10.0)
    assert len(layer) == 0
    assert layer.next_due() is None


@pytest.mark.parametrize(
    "headers",
    [
        pytest.param([("To", "<sip:a@b>"), ("From", "<sip:a@b>;tag=1")], id="no-via"),
        pytest.param(
            [("Via", "SIP/2.0/UDP 10.0.0.5;branch=x"), ("To", "<sip:a@b>")], id="legacy-no-from"
        ),
        pytest.param([("Via", "garbage"), ("CSeq", "1 INVITE")], id="bad-via"),
    ],
)
@pytest.mark.parametrize("kind", ["request", "ack", "response"])
def test_a_message_that_cannot_be_matched_is_dropped(
    headers: list[tuple[str, str]], kind: str
) -> None:
    layer = TransactionLayer()
    bad: Request | Response
    if kind == "response":
        bad = Response(200, "OK", Headers(headers))
    else:
        bad = Request("INVITE" if kind == "request" else "ACK", "sip:a@b", Headers(headers))
    assert layer.receive(bad, CARRIER, 0.0) == []
    assert layer.drain_events() == []
    assert layer.dropped == 1
    assert len(layer) == 0


_VALUES = st.one_of(
    st.sampled_from(
        [
            "SIP/2.0/UDP 10.0.0.5;branch=z9hG4bK1;rport",
            "SIP/2.0/UDP 10.0.0.5",
            "<sip:a@b>;tag=1",
            "<sip:a@b>",
            "1 INVITE",
            "1 ACK",
            "c1",
        ]
    ),
    st.text(alphabet=st.characters(exclude_characters="\r\n"), max_size=30),
)
_FIELDS = st.lists(
    st.tuples(st.sampled_from(["Via", "To", "From", "Call-ID", "CSeq", "v", "t"]), _VALUES),
    max_size=7,
)


@given(
    fields=_FIELDS,
    method=st.sampled_from(["INVITE", "ACK", "CANCEL", "BYE", None]),
    status=st.integers(100, 699),
)
def test_receive_never_raises(
    fields: list[tuple[str, str]], method: str | None, status: int
) -> None:
    layer = TransactionLayer()
    invite = received_request(layer, incoming(branch="1", via="SIP/2.0/UDP 10.0.0.5"))
    layer.respond(invite, response_to(invite, 486, to_tag="t"), 0.0)
    layer.request(outgoing(), GATEWAY, 0.0)
    headers = Headers(fields)
    odd: Request | Response
    odd = Response(status, "X", headers) if method is None else Request(method, "sip:a@b", headers)
    assert isinstance(layer.receive(odd, CARRIER, 1.0), list)
    layer.drain_events()
    assert isinstance(layer.handle_timer(100.0), list)
