from __future__ import annotations

import pytest

from voxgate.bridge.sip.client_transaction import (
    ClientInviteTransaction,
    ClientNonInviteTransaction,
    build_ack,
)
from voxgate.bridge.sip.message import Request, Response, parse_message
from voxgate.bridge.sip.timers import (
    ResponseReceived,
    Send,
    State,
    Terminated,
    TimedOut,
    Timers,
)

PEER = ("192.0.2.7", 5060)

INVITE = """\
INVITE sip:bob@biloxi.example.com SIP/2.0
Via: SIP/2.0/UDP pc33.atlanta.example.com;branch=z9hG4bKnashds8
Max-Forwards: 70
To: Bob <sip:bob@biloxi.example.com>
From: Alice <sip:alice@atlanta.example.com>;tag=1928301774
Call-ID: a84b4c76e66710
CSeq: 314159 INVITE
Contact: <sip:alice@pc33.atlanta.example.com>
Content-Length: 0

"""

OPTIONS = """\
OPTIONS sip:carol@chicago.example.com SIP/2.0
Via: SIP/2.0/UDP pc33.atlanta.example.com;branch=z9hG4bKhjhs8ass877
Max-Forwards: 70
To: <sip:carol@chicago.example.com>
From: Alice <sip:alice@atlanta.example.com>;tag=1928301774
Call-ID: a84b4c76e66711
CSeq: 63104 OPTIONS
Content-Length: 0

"""


def wire(text: str) -> bytes:
    return text.replace("\n", "\r\n").encode()


def request(text: str) -> Request:
    message = parse_message(wire(text))
    assert isinstance(message, Request)
    return message


def answer(to: Request, status: int, *, tag: str | None = "a6c85cf") -> Response:
    """A response to ``to`` built from bytes, like one off the wire."""
    lines = [f"SIP/2.0 {status} Whatever"]
    lines += [f"Via: {via}" for via in to.headers.get_all("Via")]
    to_header = to.headers.get("To")
    lines.append(f"To: {to_header}" + (f";tag={tag}" if tag else ""))
    lines += [f"{name}: {to.headers.get(name)}" for name in ("From", "Call-ID", "CSeq")]
    message = parse_message(wire("\n".join(lines) + "\nContent-Length: 0\n\n"))
    assert isinstance(message, Response)
    return message


Machine = ClientInviteTransaction | ClientNonInviteTransaction


def state(tx: Machine) -> State:
    """The machine's state, read afresh (mypy narrows ``tx.state`` after an assert)."""
    return tx.state


def fire_until(tx: Machine, end: float) -> list[tuple[float, list[Send]]]:
    """Step the clock from timer to timer up to ``end``: (time, what was sent) per firing."""
    fired = []
    while (due := tx.next_due()) is not None and due <= end:
        fired.append((due, tx.handle_timer(due)))
    return fired


def send_times(fired: list[tuple[float, list[Send]]]) -> list[float]:
    return [at for at, sends in fired if sends]


# --- build_ack (17.1.1.3) -------------------------------------------------------------------------

ACK_VECTORS = [
    pytest.param(
        INVITE.replace("Max-Forwards: 70\n", "Max-Forwards: 69\n").replace(
            "Contact:",
            "Via: SIP/2.0/UDP proxy.example.com;branch=z9hG4bKp1\n"
            "Route: <sip:p1.example.com;lr>, <sip:p2.example.com;lr>\nContact:",
        ),
        "ACK sip:bob@biloxi.example.com SIP/2.0\n"
        "Via: SIP/2.0/UDP pc33.atlanta.example.com;branch=z9hG4bKnashds8\n"
        "Route: <sip:p1.example.com;lr>\n"
        "Route: <sip:p2.example.com;lr>\n"
        "Max-Forwards: 69\n"
        "From: Alice <sip:alice@atlanta.example.com>;tag=1928301774\n"
        "To: Bob <sip:bob@biloxi.example.com>;tag=a6c85cf\n"
        "Call-ID: a84b4c76e66710\n"
        "CSeq: 314159 ACK\n"
        "Content-Length: 0\n\n",
        id="top-via-only-routes-kept",
    ),
    pytest.param(
        "INVITE sip:+15551234@gw.example.net;user=phone SIP/2.0\n"
        "v: SIP/2.0/UDP 10.0.0.1:5070;branch=z9hG4bK-77;rport\n"
        "t: <sip:+15551234@gw.example.net>\n"
        "f: <sip:alice@10.0.0.1>;tag=x1\n"
        "i: call-7@10.0.0.1\n"
        "CSeq: 2 INVITE\n"
        "l: 0\n\n",
        "ACK sip:+15551234@gw.example.net;user=phone SIP/2.0\n"
        "Via: SIP/2.0/UDP 10.0.0.1:5070;branch=z9hG4bK-77;rport\n"
        "Max-Forwards: 70\n"
        "From: <sip:alice@10.0.0.1>;tag=x1\n"
        "To: <sip:+15551234@gw.example.net>;tag=a6c85cf\n"
        "Call-ID: call-7@10.0.0.1\n"
        "CSeq: 2 ACK\n"
        "Content-Length: 0\n\n",
        id="compact-forms-no-max-forwards",
    ),
]


@pytest.mark.parametrize(("invite_text", "ack_text"), ACK_VECTORS)
def test_build_ack_serializes_to_the_vector(invite_text: str, ack_text: str) -> None:
    invite = request(invite_text)
    assert build_ack(invite, answer(invite, 486)).serialize() == wire(ack_text)


@pytest.mark.parametrize(("invite_text", "ack_text"), ACK_VECTORS)
def test_build_ack_equals_the_parsed_vector(invite_text: str, ack_text: str) -> None:
    invite = request(invite_text)
    ack = build_ack(invite, answer(invite, 486))
    expected = request(ack_text)
    assert (ack.method, ack.uri, ack.body) == (expected.method, expected.uri, expected.body)
    assert ack.headers.items() == [
        (n, v) for n, v in expected.headers.items() if n != "Content-Length"
    ]


# --- INVITE client transaction (17.1.1, figure 5) -----------------------------------------------


def started_invite(timers: Timers | None = None) -> ClientInviteTransaction:
    tx = ClientInviteTransaction(request(INVITE), PEER, timers)
    assert tx.start(0.0) == [Send(wire(INVITE), PEER)]
    assert state(tx) is State.CALLING
    return tx


def test_invite_timer_a_doubles_without_bound_until_timer_b() -> None:
    tx = started_invite()
    fired = fire_until(tx, 100.0)
    assert send_times(fired) == [0.5, 1.5, 3.5, 7.5, 15.5, 31.5]
    assert all(sends == [Send(wire(INVITE), PEER)] for _, sends in fired if sends)
    assert fired[-1][0] == 32.0  # timer B = 64*T1
    assert state(tx) is State.TERMINATED
    assert tx.drain_events() == [TimedOut(tx.request), Terminated(tx.request)]
    assert tx.next_due() is None


def test_invite_timers_follow_t1() -> None:
    tx = started_invite(Timers(t1=0.1))
    fired = fire_until(tx, 100.0)
    assert send_times(fired) == pytest.approx([0.1, 0.3, 0.7, 1.5, 3.1, 6.3])
    assert fired[-1][0] == pytest.approx(6.4)
    assert state(tx) is State.TERMINATED


def test_invite_provisional_stops_retransmission_and_timeout() -> None:
    tx = started_invite()
    fire_until(tx, 0.5)
    ringing = answer(tx.request, 180)
    assert tx.receive(ringing, 0.7) == []
    assert state(tx) is State.PROCEEDING
    assert tx.next_due() is None  # neither A nor B: the UAC decides when to CANCEL
    assert tx.drain_events() == [ResponseReceived(ringing, tx.request)]
    again = answer(tx.request, 183)
    assert tx.receive(again, 5.0) == []
    assert tx.drain_events() == [ResponseReceived(again, tx.request)]


@pytest.mark.parametrize("provisional", [False, True], ids=["from-calling", "from-proceeding"])
def test_invite_2xx_terminates_at_once_and_goes_to_the_tu(provisional: bool) -> None:
    tx = started_invite()
    if provisional:
        tx.receive(answer(tx.request, 100, tag=None), 0.1)
        tx.drain_events()
    ok = answer(tx.request, 200)
    assert tx.receive(ok, 1.0) == []  # the TU ACKs a 2xx itself
    assert state(tx) is State.TERMINATED
    assert tx.drain_events() == [ResponseReceived(ok, tx.request), Terminated(tx.request)]
    assert tx.next_due() is None
    assert tx.receive(ok, 1.5) == []  # a retransmission is no longer this machine's
    assert tx.drain_events() == []


@pytest.mark.parametrize("status", [300, 404, 486, 503, 603])
def test_invite_failure_is_acked_and_completed_absorbs_retransmissions(status: int) -> None:
    tx = started_invite()
    tx.receive(answer(tx.request, 180), 0.2)
    tx.drain_events()
    failure = answer(tx.request, status)
    ack = Send(build_ack(tx.request, failure).serialize(), PEER)
    assert tx.receive(failure, 1.0) == [ack]
    assert state(tx) is State.COMPLETED
    assert tx.drain_events() == [ResponseReceived(failure, tx.request)]
    assert tx.receive(failure, 2.0) == [ack]  # each retransmission is ACKed again...
    assert tx.drain_events() == []  # ...and not passed up
    assert tx.receive(answer(tx.request, 180), 2.5) == []
    assert tx.next_due() == 33.0  # timer D: 32 s
    assert fire_until(tx, 33.0) == [(33.0, [])]
    assert state(tx) is State.TERMINATED
    assert tx.drain_events() == [Terminated(tx.request)]


def test_invite_failure_in_calling_stops_timer_a() -> None:
    tx = started_invite()
    tx.receive(answer(tx.request, 486), 0.2)
    assert state(tx) is State.COMPLETED
    assert send_times(fire_until(tx, 40.0)) == []


def test_a_transaction_starts_once() -> None:
    tx = started_invite()
    with pytest.raises(ValueError, match="already started"):
        tx.start(1.0)
    options = ClientNonInviteTransaction(request(OPTIONS), PEER)
    options.start(0.0)
    with pytest.raises(ValueError, match="already started"):
        options.start(1.0)


# --- non-INVITE client transaction (17.1.2, figure 6) -------------------------------------------


def started_options(timers: Timers | None = None) -> ClientNonInviteTransaction:
    tx = ClientNonInviteTransaction(request(OPTIONS), PEER, timers)
    assert tx.start(0.0) == [Send(wire(OPTIONS), PEER)]
    assert state(tx) is State.TRYING
    return tx


def test_non_invite_timer_e_doubles_up_to_t2_until_timer_f() -> None:
    tx = started_options()
    fired = fire_until(tx, 100.0)
    times = [0.5, 1.5, 3.5, 7.5, 11.5, 15.5, 19.5, 23.5, 27.5, 31.5]
    assert send_times(fired) == times
    assert fired[-1] == (32.0, [])
    assert state(tx) is State.TERMINATED
    assert tx.drain_events() == [TimedOut(tx.request), Terminated(tx.request)]


def test_non_invite_e_is_capped_at_a_configured_t2() -> None:
    tx = started_options(Timers(t1=0.25, t2=1.0))
    times = send_times(fire_until(tx, 4.0))
    assert times == [0.25, 0.75, 1.75, 2.75, 3.75]


def test_non_invite_proceeding_retransmits_every_t2_and_still_times_out() -> None:
    tx = started_options()
    fire_until(tx, 0.5)
    trying = answer(tx.request, 100, tag=None)
    assert tx.receive(trying, 0.7) == []
    assert state(tx) is State.PROCEEDING
    assert tx.drain_events() == [ResponseReceived(trying, tx.request)]
    fired = fire_until(tx, 100.0)
    assert send_times(fired) == [1.5, 5.5, 9.5, 13.5, 17.5, 21.5, 25.5, 29.5]
    assert fired[-1] == (32.0, [])  # timer F fires in Proceeding too
    assert tx.drain_events() == [TimedOut(tx.request), Terminated(tx.request)]


@pytest.mark.parametrize("status", [200, 202, 404, 481, 500])
@pytest.mark.parametrize("provisional", [False, True], ids=["from-trying", "from-proceeding"])
def test_non_invite_final_completes_and_timer_k_ends_it(provisional: bool, status: int) -> None:
    tx = started_options()
    if provisional:
        tx.receive(answer(tx.request, 180), 0.2)
        tx.drain_events()
    final = answer(tx.request, status)
    assert tx.receive(final, 1.0) == []
    assert state(tx) is State.COMPLETED
    assert tx.drain_events() == [ResponseReceived(final, tx.request)]
    assert tx.receive(final, 2.0) == []  # retransmissions absorbed
    assert tx.drain_events() == []
    assert tx.next_due() == 6.0  # timer K = T4
    assert fire_until(tx, 6.0) == [(6.0, [])]  # no retransmission in Completed
    assert state(tx) is State.TERMINATED
    assert tx.drain_events() == [Terminated(tx.request)]
