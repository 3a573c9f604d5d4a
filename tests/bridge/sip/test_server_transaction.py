from __future__ import annotations

import pytest

from voxgate.bridge.sip.message import Headers, Request, parse_message, response_to
from voxgate.bridge.sip.server_transaction import (
    Key,
    ServerInviteTransaction,
    ServerNonInviteTransaction,
    response_target,
    server_key,
    stamp_via,
)
from voxgate.bridge.sip.timers import Send, State, Terminated, TimedOut, Timers
from voxgate.errors import SipParseError

PEER = ("198.51.100.4", 5060)

INVITE = """\
INVITE sip:bot@voxgate.example.com SIP/2.0
Via: SIP/2.0/UDP 198.51.100.4:5060;branch=z9hG4bK776asdhds
Max-Forwards: 70
To: <sip:bot@voxgate.example.com>
From: <sip:+15550100@carrier.example.net>;tag=1928301774
Call-ID: a84b4c76e66710@198.51.100.4
CSeq: 1 INVITE
Content-Length: 0

"""


def wire(text: str) -> bytes:
    return text.replace("\n", "\r\n").encode()


def request(text: str) -> Request:
    message = parse_message(wire(text))
    assert isinstance(message, Request)
    return message


def ack_for(invite: Request, to_tag: str = "srv1", branch: str | None = None) -> Request:
    """The ACK a UAC sends for a 300-699 (17.1.1.3), from bytes."""
    via = invite.headers.get("Via") or ""
    if branch is not None:
        via = via.replace("z9hG4bK776asdhds", branch)
    return request(
        f"ACK {invite.uri} SIP/2.0\nVia: {via}\nMax-Forwards: 70\n"
        f"To: {invite.headers.get('To')};tag={to_tag}\nFrom: {invite.headers.get('From')}\n"
        f"Call-ID: {invite.headers.get('Call-ID')}\nCSeq: 1 ACK\nContent-Length: 0\n\n"
    )


Machine = ServerInviteTransaction | ServerNonInviteTransaction


def state(tx: Machine) -> State:
    """The machine's state, read afresh (mypy narrows ``tx.state`` after an assert)."""
    return tx.state


def fire_until(tx: Machine, end: float) -> list[tuple[float, list[Send]]]:
    fired = []
    while (due := tx.next_due()) is not None and due <= end:
        fired.append((due, tx.handle_timer(due)))
    return fired


# --- INVITE server transaction (17.2.1, figure 7) -----------------------------------------------


def new_invite_tx(timers: Timers | None = None) -> ServerInviteTransaction:
    tx = ServerInviteTransaction(request(INVITE), PEER, timers)
    assert state(tx) is State.PROCEEDING
    assert tx.next_due() is None
    return tx


def test_invite_retransmission_before_any_response_sends_nothing() -> None:
    tx = new_invite_tx()
    assert tx.receive(request(INVITE), 0.3) == []


def test_invite_retransmission_is_answered_with_the_last_provisional() -> None:
    tx = new_invite_tx()
    trying = response_to(tx.request, 100)
    ringing = response_to(tx.request, 180, to_tag="srv1")
    assert tx.respond(trying, 0.0) == [Send(trying.serialize(), PEER)]
    assert tx.respond(ringing, 0.1) == [Send(ringing.serialize(), PEER)]
    assert tx.receive(request(INVITE), 0.5) == [Send(ringing.serialize(), PEER)]
    assert state(tx) is State.PROCEEDING
    assert tx.drain_events() == []


def test_invite_2xx_terminates_at_once() -> None:
    tx = new_invite_tx()
    tx.respond(response_to(tx.request, 180, to_tag="srv1"), 0.0)
    ok = response_to(tx.request, 200, to_tag="srv1")
    assert tx.respond(ok, 1.0) == [Send(ok.serialize(), PEER)]
    assert state(tx) is State.TERMINATED
    assert tx.drain_events() == [Terminated(tx.request)]
    assert tx.next_due() is None
    assert tx.respond(ok, 1.5) == []  # the 2xx retransmissions are the TU's (13.3.1.4)


def completed(timers: Timers | None = None, status: int = 486) -> ServerInviteTransaction:
    tx = new_invite_tx(timers)
    busy = response_to(tx.request, status, to_tag="srv1")
    assert tx.respond(busy, 0.0) == [Send(busy.serialize(), PEER)]
    assert state(tx) is State.COMPLETED
    return tx


def test_invite_failure_is_retransmitted_on_timer_g_until_timer_h() -> None:
    tx = completed()
    final = response_to(tx.request, 486, to_tag="srv1").serialize()
    fired = fire_until(tx, 100.0)
    resent = [at for at, sends in fired if sends == [Send(final, PEER)]]
    assert resent == [0.5, 1.5, 3.5, 7.5, 11.5, 15.5, 19.5, 23.5, 27.5, 31.5]
    assert fired[-1] == (32.0, [])  # timer H: the ACK never came
    assert state(tx) is State.TERMINATED
    assert tx.drain_events() == [TimedOut(tx.request), Terminated(tx.request)]


def test_timer_g_is_capped_at_a_configured_t2() -> None:
    tx = completed(Timers(t1=0.25, t2=1.0))
    resent = [at for at, sends in fire_until(tx, 4.0) if sends]
    assert resent == [0.25, 0.75, 1.75, 2.75, 3.75]


def test_invite_retransmission_in_completed_gets_the_final_again() -> None:
    tx = completed(status=603)
    final = response_to(tx.request, 603, to_tag="srv1").serialize()
    assert tx.receive(request(INVITE), 0.2) == [Send(final, PEER)]
    assert tx.respond(response_to(tx.request, 500), 0.3) == []  # a second final: discarded
    assert tx.receive(request(INVITE), 0.4) == [Send(final, PEER)]


def test_ack_confirms_stops_g_and_h_and_timer_i_ends_it() -> None:
    tx = completed()
    fire_until(tx, 1.5)
    assert tx.receive(ack_for(tx.request), 2.0) == []
    assert state(tx) is State.CONFIRMED
    assert tx.drain_events() == []  # the ACK of a failure stays in the transaction
    assert tx.receive(ack_for(tx.request), 2.5) == []  # ACK retransmission absorbed
    assert tx.receive(request(INVITE), 3.0) == []  # and a late INVITE copy too
    assert tx.next_due() == 7.0  # timer I = T4
    assert fire_until(tx, 100.0) == [(7.0, [])]
    assert state(tx) is State.TERMINATED
    assert tx.drain_events() == [Terminated(tx.request)]


def test_ack_before_a_final_response_is_ignored() -> None:
    tx = new_invite_tx()
    assert tx.receive(ack_for(tx.request), 0.1) == []
    assert state(tx) is State.PROCEEDING


# --- non-INVITE server transaction (17.2.2, figure 8) -------------------------------------------

BYE = """\
BYE sip:bot@10.0.0.2:5060 SIP/2.0
Via: SIP/2.0/UDP 198.51.100.4:5060;branch=z9hG4bKbye1
Max-Forwards: 70
To: <sip:bot@voxgate.example.com>;tag=srv1
From: <sip:+15550100@carrier.example.net>;tag=1928301774
Call-ID: a84b4c76e66710@198.51.100.4
CSeq: 2 BYE
Content-Length: 0

"""


def test_non_invite_trying_drops_retransmissions() -> None:
    tx = ServerNonInviteTransaction(request(BYE), PEER)
    assert state(tx) is State.TRYING
    assert tx.receive(request(BYE), 0.5) == []


def test_non_invite_proceeding_answers_with_the_provisional() -> None:
    tx = ServerNonInviteTransaction(request(BYE), PEER)
    trying = response_to(tx.request, 100)
    assert tx.respond(trying, 0.0) == [Send(trying.serialize(), PEER)]
    assert state(tx) is State.PROCEEDING
    assert tx.receive(request(BYE), 0.5) == [Send(trying.serialize(), PEER)]


@pytest.mark.parametrize("status", [200, 481, 500])
@pytest.mark.parametrize("provisional", [False, True], ids=["from-trying", "from-proceeding"])
def test_non_invite_final_is_resent_until_timer_j(provisional: bool, status: int) -> None:
    tx = ServerNonInviteTransaction(request(BYE), PEER)
    if provisional:
        tx.respond(response_to(tx.request, 100), 0.0)
    final = response_to(tx.request, status)
    assert tx.respond(final, 1.0) == [Send(final.serialize(), PEER)]
    assert state(tx) is State.COMPLETED
    assert tx.receive(request(BYE), 2.0) == [Send(final.serialize(), PEER)]
    assert tx.respond(response_to(tx.request, 503), 2.5) == []  # discarded in Completed
    assert tx.next_due() == 33.0  # timer J = 64*T1
    assert fire_until(tx, 100.0) == [(33.0, [])]
    assert state(tx) is State.TERMINATED
    assert tx.drain_events() == [Terminated(tx.request)]
    assert tx.receive(request(BYE), 34.0) == []


# --- matching (17.2.3) --------------------------------------------------------------------------


def via_request(method: str, via: str, *, to_tag: str = "", uri: str = "sip:bot@vg") -> Request:
    to = "<sip:bot@vg>" + (f";tag={to_tag}" if to_tag else "")
    return request(
        f"{method} {uri} SIP/2.0\nVia: {via}\nTo: {to}\nFrom: <sip:a@b>;tag=f1\n"
        f"Call-ID: c1\nCSeq: 7 {method}\nMax-Forwards: 70\n\n"
    )


def rfc3261(host: str, port: int, method: str) -> Key:
    return ("3261", "z9hG4bK1", host, port, method)


def rfc2543(*via_params: tuple[str, str]) -> Key:
    via = ("UDP", "10.0.0.9", 5060, via_params)
    return ("2543", "sip:bot@vg", None, "f1", "c1", 7, "INVITE", via)


KEY_VECTORS = [
    pytest.param(
        "INVITE",
        "SIP/2.0/UDP 10.0.0.9;branch=z9hG4bK1",
        rfc3261("10.0.0.9", 5060, "INVITE"),
        id="rfc3261-default-port",
    ),
    pytest.param(
        "INVITE",
        "SIP/2.0/UDP Host.Example:5070;branch=z9hG4bK1",
        rfc3261("host.example", 5070, "INVITE"),
        id="rfc3261-host-case",
    ),
    pytest.param(
        "ACK",
        "SIP/2.0/UDP 10.0.0.9;branch=z9hG4bK1",
        rfc3261("10.0.0.9", 5060, "INVITE"),
        id="rfc3261-ack-is-its-invite",
    ),
    pytest.param(
        "CANCEL",
        "SIP/2.0/UDP 10.0.0.9;branch=z9hG4bK1",
        rfc3261("10.0.0.9", 5060, "CANCEL"),
        id="rfc3261-cancel-own-tx",
    ),
    pytest.param(
        "INVITE",
        "SIP/2.0/UDP 10.0.0.9;branch=1234",
        rfc2543(("branch", "1234")),
        id="rfc2543-no-cookie",
    ),
    pytest.param("INVITE", "SIP/2.0/UDP 10.0.0.9", rfc2543(), id="rfc2543-no-branch"),
    pytest.param(
        "INVITE",
        "SIP/2.0/UDP 10.0.0.9;rport=5062;received=192.0.2.1",
        rfc2543(),
        id="rfc2543-ignores-what-we-add",
    ),
]


@pytest.mark.parametrize(("method", "via", "key"), KEY_VECTORS)
def test_server_key(method: str, via: str, key: Key) -> None:
    assert server_key(via_request(method, via)) == key


def test_legacy_key_holds_the_to_tag_and_cancel_matches_as_invite() -> None:
    cancel = via_request("CANCEL", "SIP/2.0/UDP 10.0.0.9", to_tag="t9")
    invite = via_request("INVITE", "SIP/2.0/UDP 10.0.0.9", to_tag="t9")
    assert server_key(cancel, "INVITE") == server_key(invite)
    assert server_key(cancel) != server_key(invite)
    assert server_key(invite)[2] == "t9"


VIA = ("Via", "SIP/2.0/UDP h")
TO = ("To", "<sip:a@b>")
FROM = ("From", "<sip:a@b>")


@pytest.mark.parametrize(
    "headers",
    [
        pytest.param([TO, FROM, ("CSeq", "1 INVITE")], id="no-via"),
        pytest.param([("Via", "SIP/2.0/UDP"), ("CSeq", "1 INVITE")], id="bad-via"),
        pytest.param([VIA, FROM, ("Call-ID", "c")], id="no-to"),
        pytest.param([VIA, TO, FROM], id="no-cseq"),
        pytest.param([VIA, TO, FROM, ("Call-ID", "c"), ("CSeq", "x")], id="bad-cseq"),
    ],
)
def test_server_key_of_an_incomplete_request_is_a_parse_error(
    headers: list[tuple[str, str]],
) -> None:
    with pytest.raises(SipParseError):
        server_key(Request("INVITE", "sip:bot@vg", Headers(headers)))


# --- received / rport (18.2.1, RFC 3581) and the response address (18.2.2) ------------------------

STAMP_VECTORS = [
    pytest.param(
        "SIP/2.0/UDP 198.51.100.4:5060;branch=z9hG4bK1",
        ("198.51.100.4", 5060),
        "SIP/2.0/UDP 198.51.100.4:5060;branch=z9hG4bK1",
        ("198.51.100.4", 5060),
        id="same-host-untouched",
    ),
    pytest.param(
        "SIP/2.0/UDP pbx.example.net;branch=z9hG4bK1",
        ("198.51.100.4", 5060),
        "SIP/2.0/UDP pbx.example.net;branch=z9hG4bK1;received=198.51.100.4",
        ("198.51.100.4", 5060),
        id="name-gets-received",
    ),
    pytest.param(
        "SIP/2.0/UDP 10.0.0.5:5070;branch=z9hG4bK1",
        ("203.0.113.9", 40000),
        "SIP/2.0/UDP 10.0.0.5:5070;branch=z9hG4bK1;received=203.0.113.9",
        ("203.0.113.9", 5070),
        id="nat-without-rport-keeps-port",
    ),
    pytest.param(
        "SIP/2.0/UDP 10.0.0.5:5070;rport;branch=z9hG4bK1",
        ("203.0.113.9", 40000),
        "SIP/2.0/UDP 10.0.0.5:5070;rport=40000;branch=z9hG4bK1;received=203.0.113.9",
        ("203.0.113.9", 40000),
        id="nat-with-rport",
    ),
    pytest.param(
        "SIP/2.0/UDP 198.51.100.4;branch=z9hG4bK1;rport",
        ("198.51.100.4", 5060),
        "SIP/2.0/UDP 198.51.100.4;branch=z9hG4bK1;rport=5060;received=198.51.100.4",
        ("198.51.100.4", 5060),
        id="rport-received-even-if-same",
    ),
    pytest.param(
        "SIP/2.0/UDP [2001:db8::1]:5060;branch=z9hG4bK1",
        ("2001:db8::1", 5060),
        "SIP/2.0/UDP [2001:db8::1]:5060;branch=z9hG4bK1",
        ("2001:db8::1", 5060),
        id="ipv6-same-host",
    ),
    pytest.param(
        "SIP/2.0/UDP [2001:db8::1];branch=z9hG4bK1;rport",
        ("2001:db8::2", 6000),
        "SIP/2.0/UDP [2001:db8::1];branch=z9hG4bK1;rport=6000;received=2001:db8::2",
        ("2001:db8::2", 6000),
        id="ipv6-rport",
    ),
    pytest.param(
        "SIP/2.0/UDP 10.0.0.5;branch=z9hG4bK1;received=10.9.9.9;maddr=192.0.2.99",
        ("10.0.0.5", 5060),
        "SIP/2.0/UDP 10.0.0.5;branch=z9hG4bK1;received=10.9.9.9;maddr=192.0.2.99",
        ("10.9.9.9", 5060),
        id="received-kept-maddr-ignored",
    ),
]


@pytest.mark.parametrize(("via", "source", "stamped", "target"), STAMP_VECTORS)
def test_stamp_via_and_response_target(
    via: str, source: tuple[str, int], stamped: str, target: tuple[str, int]
) -> None:
    incoming = via_request("OPTIONS", via)
    result = stamp_via(incoming, source)
    assert result.headers.get("Via") == stamped
    assert response_target(result) == target
    assert incoming.headers.get("Via") == via  # the parsed message itself is left alone
    assert server_key(result) == server_key(incoming)  # stamping keeps the transaction


def test_stamp_via_changes_only_the_top_value_and_keeps_field_order() -> None:
    incoming = request(
        "OPTIONS sip:bot@vg SIP/2.0\n"
        "Via: SIP/2.0/UDP 10.0.0.5;rport;branch=z9hG4bK1, "
        "SIP/2.0/UDP proxy.example;branch=z9hG4bKp\n"
        "Via: SIP/2.0/UDP origin.example;branch=z9hG4bKo\n"
        "To: <sip:bot@vg>\nFrom: <sip:a@b>;tag=f1\nCall-ID: c1\nCSeq: 7 OPTIONS\n\n"
    )
    stamped = stamp_via(incoming, ("203.0.113.9", 40000))
    assert stamped.headers.items()[0] == (
        "Via",
        "SIP/2.0/UDP 10.0.0.5;rport=40000;branch=z9hG4bK1;received=203.0.113.9, "
        "SIP/2.0/UDP proxy.example;branch=z9hG4bKp",
    )
    assert stamped.headers.items()[1:] == incoming.headers.items()[1:]


@pytest.mark.parametrize(
    ("via", "target"),
    [
        pytest.param("SIP/2.0/UDP 10.0.0.5", ("10.0.0.5", 5060), id="sent-by-default-port"),
        pytest.param("SIP/2.0/UDP 10.0.0.5:5080", ("10.0.0.5", 5080), id="sent-by-port"),
        pytest.param(
            "SIP/2.0/UDP h;received=10.1.1.1;rport=70000",
            ("10.1.1.1", 5060),
            id="bad-rport-ignored",
        ),
        pytest.param(
            "SIP/2.0/UDP h:5070;received=10.1.1.1;rport",
            ("10.1.1.1", 5070),
            id="bare-rport-ignored",
        ),
        pytest.param(
            "SIP/2.0/UDP h;received=[2001:db8::5];rport=7",
            ("2001:db8::5", 7),
            id="bracketed-received",
        ),
    ],
)
def test_response_target(via: str, target: tuple[str, int]) -> None:
    assert response_target(via_request("OPTIONS", via)) == target
