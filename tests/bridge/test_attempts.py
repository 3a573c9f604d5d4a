"""BotAttempts in stepped time: numbering, stale reports, backoff, the give-up instant,
and the reconnection budget that only a proven socket refills."""

from __future__ import annotations

import pytest

from voxgate.bridge.attempts import BACKOFF_FIRST, BACKOFF_MAX, PROVEN_AFTER, BotAttempts


def _attempts(now: float = 0.0) -> BotAttempts:
    return BotAttempts(connect_timeout=5.0, reconnect_for=10.0, now=now)


def test_attempts_are_numbered_and_only_the_current_one_counts() -> None:
    bot = _attempts()
    assert bot.begin(0.0) == 5.0
    assert bot.attempt == 1 and bot.is_connecting(1) and not bot.is_up(1)
    bot.failed()
    assert not bot.is_connecting(1)
    assert bot.retry_later(0.0)
    assert bot.begin(BACKOFF_FIRST) == pytest.approx(5.0 - BACKOFF_FIRST)  # what is left
    bot.connected(0.2)
    assert bot.is_up(2) and not bot.is_up(1) and not bot.is_connecting(2)


def test_the_backoff_doubles_up_to_its_ceiling_then_gives_up_at_the_timeout() -> None:
    bot = BotAttempts(connect_timeout=10.0, reconnect_for=10.0, now=0.0)
    now, delays = 0.0, []
    while True:
        assert bot.begin(now) is not None
        bot.failed()
        if not bot.retry_later(now):
            break
        assert bot.retry_at is not None
        delays.append(round(bot.retry_at - now, 3))
        now = bot.retry_at
    assert delays[:6] == [0.1, 0.2, 0.4, 0.8, 1.6, BACKOFF_MAX]
    assert now < 10.0 <= now + BACKOFF_MAX
    assert bot.begin(10.0) is None  # a late wake-up past the give-up instant


def test_a_socket_that_drops_at_once_gives_the_budget_nothing_back() -> None:
    bot = _attempts()
    bot.begin(0.0)
    bot.connected(0.0)
    now = 0.0
    for _ in range(100):  # accepts, then closes at once, again and again
        bot.carried_audio()
        bot.dropped(now)
        if not bot.retry_later(now):
            break
        assert bot.retry_at is not None
        now = bot.retry_at
        assert bot.begin(now) is not None
        bot.connected(now)
    else:
        raise AssertionError("never gave up")
    assert 10.0 - BACKOFF_MAX <= now <= 10.0  # the budget, from the first drop


@pytest.mark.parametrize(
    ("up_for", "audio", "refilled"),
    [
        (PROVEN_AFTER + 0.1, True, True),
        (PROVEN_AFTER - 0.1, True, False),
        (PROVEN_AFTER + 0.1, False, False),
    ],
)
def test_only_a_proven_socket_refills_the_budget(
    up_for: float, audio: bool, refilled: bool
) -> None:
    bot = _attempts()
    bot.begin(0.0)
    bot.connected(0.0)
    bot.dropped(1.0)  # the budget runs from 1.0
    assert bot.retry_later(1.0)
    bot.begin(1.1)
    bot.connected(1.1)
    if audio:
        bot.carried_audio()
    now = 1.1 + up_for
    bot.dropped(now)
    budget_end = (now if refilled else 1.0) + 10.0
    while bot.retry_later(now):  # every attempt from now on fails
        assert bot.retry_at is not None
        now = bot.retry_at
        assert bot.begin(now) is not None
        bot.failed()
    assert budget_end - BACKOFF_MAX <= now < budget_end


def test_close_says_whether_a_socket_was_current() -> None:
    bot = _attempts()
    assert not bot.close()
    bot.begin(0.0)
    assert bot.close()  # abandons the attempt under way
    assert not bot.is_connecting(1)
    bot.begin(0.1)
    bot.connected(0.2)
    assert bot.close() and not bot.up
    bot.stop_retrying()
    assert bot.retry_at is None
