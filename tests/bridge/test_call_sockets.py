"""The call core and its bot sockets: attempts, start retries, the reconnection budget and the
error boundary, in stepped time."""

from __future__ import annotations

import pytest
from test_call import Driver

from voxgate.bridge.attempts import PROVEN_AFTER
from voxgate.bridge.call_api import (
    CallEnded,
    CallPolicy,
    CallState,
    CloseBot,
    CloseCarrier,
    ConnectBot,
    ToBot,
    ToCarrier,
)
from voxgate.bridge.events import (
    AudioSent,
    MediaReceived,
    StreamStarted,
    StreamStopped,
)
from voxgate.errors import ProtocolError


def _talk(driver: Driver, seconds: float) -> None:
    """The caller talks for ``seconds`` (a frame each 20 ms) while the clock runs."""
    for _ in range(round(seconds / 0.020)):
        driver.carrier(MediaReceived(b"\xff" * 160))
        driver.run(driver.now + 0.020)


def _ended(driver: Driver) -> CallEnded:
    (ended,) = driver.of(CallEnded)
    assert isinstance(ended, CallEnded)
    return ended


# --- attempts ---------------------------------------------------------------------------


def test_a_late_close_of_an_old_socket_does_not_touch_the_new_one() -> None:
    driver = Driver()
    driver.connect()
    driver.drop()
    driver.run(0.5)
    assert driver.attempt == 2
    driver.connect()
    before = len(driver.log)
    driver.drop("the old socket's close finally timed out", attempt=1)
    driver.bot(AudioSent(b"\x01" * 160), attempt=1)
    driver.bot_error(ProtocolError("message_too_large", "big", fatal=True), attempt=1)
    driver.fail_connect("late", attempt=1)
    assert driver.state() is CallState.ACTIVE
    assert len(driver.log) == before
    driver.bot(AudioSent(b"\x01" * 160))  # the new socket still works
    assert [e for e in driver.sent_to(ToCarrier) if isinstance(e, AudioSent)]


def test_an_attempt_that_hangs_is_abandoned_and_its_late_success_ignored() -> None:
    driver = Driver(CallPolicy(connect_timeout=1.0, reconnect_for=10.0))
    driver.connect()
    driver.drop()
    driver.run(0.1)
    assert driver.of(ConnectBot)[-1] == ConnectBot(2, 1.0)
    out = driver.run(1.1)
    assert CloseBot(2, 1000, "connect_timeout") in out  # abandoned
    driver.run(1.3)
    assert driver.attempt == 3
    driver.connect(attempt=2)  # the abandoned socket opened after all
    assert driver.state() is CallState.RECONNECTING
    assert driver.call.stats.bot_connects == 1
    start = driver.sent_to(ToBot, driver.connect())[-1]
    assert isinstance(start, StreamStarted)
    assert start.reconnected
    assert start.stream_id == "vx-1-2"


def test_close_bot_names_the_socket_it_closes() -> None:
    driver = Driver()
    driver.connect()
    driver.drop()
    driver.run(0.5)
    driver.connect()
    out = driver.carrier(StreamStopped())
    assert driver.of(CloseBot, out) == [CloseBot(2, 1000, "caller_hangup")]


# --- the start ----------------------------------------------------------------------------


def test_a_failed_first_connection_is_retried() -> None:
    driver = Driver()
    driver.fail_connect("connection refused")
    assert driver.state() is CallState.CONNECTING
    out = driver.run(0.1)
    (retry,) = driver.of(ConnectBot, out)
    assert isinstance(retry, ConnectBot)
    assert retry.attempt == 2
    assert retry.timeout == pytest.approx(4.9)
    driver.connect()
    assert driver.state() is CallState.ACTIVE
    start = driver.sent_to(ToBot)[-1]
    assert isinstance(start, StreamStarted)
    assert not start.reconnected


def test_the_start_is_bounded_by_connect_timeout_with_backoff() -> None:
    driver = Driver(CallPolicy(connect_timeout=2.0))
    attempts: list[tuple[float, object]] = []
    while driver.state() is CallState.CONNECTING:
        attempts.append((driver.now, driver.of(ConnectBot)[-1]))
        driver.fail_connect("connection refused")
        driver.run(driver.call.next_due() or driver.now)
    times = [when for when, _ in attempts]
    assert times == pytest.approx([0.0, 0.1, 0.3, 0.7, 1.5])  # 0.1 s doubling
    for when, attempt in attempts:
        assert isinstance(attempt, ConnectBot)
        assert attempt.timeout == pytest.approx(2.0 - when)  # what is left of the start
    assert _ended(driver).reason == "bot_unreachable"
    assert driver.now <= 2.0


def test_a_bot_that_never_answers_is_given_up_after_connect_timeout() -> None:
    driver = Driver(CallPolicy(connect_timeout=3.0, carrier_rest=False))
    driver.run(10.0)
    assert CloseBot(1, 1000, "connect_timeout") in driver.of(CloseBot)
    (when,) = [t for t, o in driver.log if isinstance(o, CallEnded)]
    assert when == pytest.approx(3.0)
    assert _ended(driver).reason == "bot_unreachable"


def test_a_refusal_at_start_ends_the_call_at_once() -> None:
    driver = Driver()
    out = driver.fail_connect("HTTP 401", refused=True)
    assert CallEnded("bot_unreachable") in out
    assert CloseCarrier(1000, "bot_unreachable") in out
    assert driver.of(ConnectBot) == [ConnectBot(1, 5.0)]


# --- the reconnection budget -------------------------------------------------------------


@pytest.mark.parametrize("code", [1001, 1011, 3000, 4999, None])
def test_a_bot_that_accepts_then_closes_is_given_up_when_the_budget_is_spent(
    code: int | None,
) -> None:
    driver = Driver(CallPolicy(reconnect_for=10.0))
    driver.connect()
    sockets = 1
    while driver.state() is not CallState.ENDED and driver.now < 60.0:
        driver.drop(f"closed {code}", code=code)  # the bot closes each socket at once
        attempt = driver.attempt
        while driver.state() is CallState.RECONNECTING and driver.attempt == attempt:
            driver.run(driver.call.next_due() or driver.now)
        if driver.state() is CallState.RECONNECTING:
            driver.connect()
            sockets += 1
    assert _ended(driver).reason == "bot_unreachable"
    assert driver.now <= 10.0
    assert sockets <= 10  # the backoff grows across sockets that prove nothing


def test_a_socket_that_carried_audio_for_a_while_refills_the_budget() -> None:
    driver = Driver(CallPolicy(reconnect_for=3.0))
    driver.connect()
    for _ in range(5):  # 5 drops in 30 s, each after PROVEN_AFTER seconds of audio
        _talk(driver, PROVEN_AFTER + 0.5)
        driver.drop()
        driver.run(driver.now + 0.1)
        driver.connect()
        assert driver.state() is CallState.ACTIVE
    assert driver.call.stats.bot_connects == 6


def test_a_socket_that_drops_before_proving_itself_gives_nothing_back() -> None:
    driver = Driver(CallPolicy(reconnect_for=3.0))
    driver.connect()
    driver.drop()
    driver.run(0.1)
    driver.connect()
    _talk(driver, PROVEN_AFTER - 1.0)  # audio, but not for long enough
    driver.drop()
    assert _ended(driver).reason == "bot_unreachable"


def test_reconnect_for_zero_means_no_reconnection() -> None:
    driver = Driver(CallPolicy(reconnect_for=0.0))
    driver.connect()
    out = driver.drop()
    assert CallEnded("bot_unreachable") in out
    assert driver.of(ConnectBot) == [ConnectBot(1, 5.0)]


# --- the error boundary ---------------------------------------------------------------------


def test_fail_ends_the_call_with_internal_error_and_1011_both_ways() -> None:
    driver = Driver()
    driver.connect()
    driver.bot(AudioSent(b"\x01" * 8000))
    driver.call.fail(driver.now)
    out = driver.collect()
    assert driver.sent_to(ToBot, out) == [StreamStopped("internal_error")]
    assert CloseBot(1, 1011, "internal_error") in out
    assert CloseCarrier(1011, "internal_error") in out
    assert isinstance(out[-1], CallEnded)
    assert out[-1].reason == "internal_error"
    assert out[-1].summary["ended_by"] == "voxgate"
    assert driver.call.next_due() is None
    driver.call.fail(driver.now)
    driver.call.carrier_closed(driver.now)
    assert driver.collect() == []


def test_fail_while_connecting_abandons_the_attempt() -> None:
    driver = Driver()
    driver.call.fail(0.0)
    out = driver.collect()
    assert driver.of(CloseBot, out) == [CloseBot(1, 1011, "internal_error")]
    assert driver.sent_to(ToBot, out) == []
    assert CallEnded("internal_error") in out
