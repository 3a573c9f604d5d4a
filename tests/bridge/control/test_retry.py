"""The retry schedule: bounds of every wait, the 24 h budget, Retry-After, the outcomes."""

from __future__ import annotations

import itertools
import random
from email.utils import formatdate

import pytest
from hypothesis import given
from hypothesis import strategies as st

from voxgate.bridge.control.retry import (
    BASE,
    BUDGET,
    CAP,
    FACTOR,
    backoff,
    next_attempt,
    outcome_of,
    parse_retry_after,
)

CREATED = 1_760_000_000.0


def test_the_constants_are_the_documented_ones() -> None:
    assert (BASE, FACTOR, CAP, BUDGET) == (10.0, 2.0, 3600.0, 86_400.0)


@pytest.mark.parametrize(
    ("attempts", "low", "high"),
    [
        (1, 5, 10),
        (2, 10, 20),
        (3, 20, 40),
        (4, 40, 80),
        (9, 1280, 2560),
        (10, 1800, 3600),  # 5120 s capped to an hour
        (11, 1800, 3600),
        (40, 1800, 3600),
        (10**6, 1800, 3600),  # no overflow, no time spent on a huge power
        (0, 5, 10),  # read as the first
    ],
)
def test_each_wait_is_within_equal_jitter_bounds(attempts: int, low: float, high: float) -> None:
    rng = random.Random(attempts)
    waits = [backoff(attempts, rng) for _ in range(2000)]
    assert all(low <= wait <= high for wait in waits)
    # Jitter spreads them over the upper half of the interval, not into one point.
    assert max(waits) - min(waits) > 0.8 * (high - low)


def test_the_extremes_of_the_random_draw() -> None:
    class Fixed(random.Random):
        def __init__(self, value: float) -> None:
            super().__init__(0)
            self.value = value

        def uniform(self, a: float, b: float) -> float:
            return a + (b - a) * self.value

    assert backoff(3, Fixed(0.0)) == 20.0
    assert backoff(3, Fixed(1.0)) == 40.0
    assert backoff(50, Fixed(1.0)) == CAP


def test_deterministic_with_a_seeded_rng() -> None:
    first = [next_attempt(CREATED, n, CREATED, random.Random(7)) for n in range(1, 20)]
    again = [next_attempt(CREATED, n, CREATED, random.Random(7)) for n in range(1, 20)]
    assert first == again


def schedule(seed: int) -> list[float]:
    """Attempt times of a delivery that always fails, starting at its creation."""
    rng = random.Random(seed)
    times = [CREATED]
    while (at := next_attempt(CREATED, len(times), times[-1], rng)) is not None:
        times.append(at)
    return times


@pytest.mark.parametrize("seed", range(20))
def test_a_whole_day_of_failures(seed: int) -> None:
    times = schedule(seed)
    waits = [b - a for a, b in itertools.pairwise(times)]
    assert all(0 < wait <= CAP for wait in waits)
    assert times == sorted(times)
    # The last try is at the end of the budget, not an hour short of it.
    assert times[-1] == CREATED + BUDGET
    assert 30 <= len(times) <= 50
    # The first waits grow: each within [d/2, d] for d = 10, 20, 40 ...
    for n, wait in enumerate(waits[:6], start=1):
        d = BASE * FACTOR ** (n - 1)
        assert d / 2 <= wait <= d


def test_the_budget_cut_off() -> None:
    rng = random.Random(1)
    deadline = CREATED + BUDGET
    assert next_attempt(CREATED, 30, deadline - 1, rng) == deadline  # moved to the deadline
    assert next_attempt(CREATED, 30, deadline, rng) is None
    assert next_attempt(CREATED, 30, deadline + 5, rng) is None
    assert next_attempt(CREATED, 1, deadline + 5, rng) is None  # a replay long after
    at = next_attempt(CREATED, 30, deadline - CAP - 1, rng)
    assert at is not None and at < deadline


def test_retry_after_is_honoured_within_the_cap() -> None:
    now = CREATED + 100
    assert next_attempt(CREATED, 1, now, random.Random(1), retry_after=120) == now + 120
    # A shorter Retry-After than the backoff does not shorten it.
    plain = next_attempt(CREATED, 5, now, random.Random(2))
    assert next_attempt(CREATED, 5, now, random.Random(2), retry_after=1) == plain
    # A receiver cannot park a delivery for more than the cap ...
    assert next_attempt(CREATED, 1, now, random.Random(1), retry_after=10**9) == now + CAP
    # ... nor past the budget.
    late = CREATED + BUDGET - 60
    assert next_attempt(CREATED, 1, late, random.Random(1), retry_after=600) == CREATED + BUDGET
    assert next_attempt(CREATED, 1, now, random.Random(1), retry_after=float("nan")) is not None


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        (None, None),
        ("", None),
        ("120", 120.0),
        (" 7 ", 7.0),
        ("0", 0.0),
        ("-5", None),
        ("1.5", None),
        ("soon", None),
        ("\u0661\u0662", None),  # digits, but not ASCII ones
        ("9" * 40, 1e9),
        (formatdate(CREATED + 90, usegmt=True), 90.0),
        (formatdate(CREATED - 90, usegmt=True), 0.0),  # in the past: at once
        ("Wed, 21 Oct 2015 07:28:00", None),  # no zone: not an HTTP-date
        ("Wed, 99 Oct 2015 07:28:00 GMT", None),
    ],
)
def test_parse_retry_after(value: str | None, seconds: float | None) -> None:
    assert parse_retry_after(value, now=CREATED) == seconds


@pytest.mark.parametrize(
    ("status", "outcome"),
    [
        (200, "delivered"),
        (201, "delivered"),
        (204, "delivered"),
        (299, "delivered"),
        (None, "retry"),  # network error or timeout
        (408, "retry"),
        (429, "retry"),
        (500, "retry"),
        (502, "retry"),
        (503, "retry"),
        (504, "retry"),
        (301, "retry"),  # redirects are not followed: not delivered
        (302, "retry"),
        (400, "retry"),  # like Stripe: every other answer is retried within the budget
        (401, "retry"),
        (404, "retry"),
        (410, "dead"),  # Gone: the receiver asks to stop
        (100, "retry"),
    ],
)
def test_outcomes(status: int | None, outcome: str) -> None:
    assert outcome_of(status) == outcome


@given(
    st.integers(1, 200),
    st.floats(0, BUDGET * 2),
    st.integers(0, 2**32),
    st.one_of(st.none(), st.floats(allow_nan=True, allow_infinity=True)),
)
def test_never_before_now_nor_past_the_budget(
    attempts: int, elapsed: float, seed: int, retry_after: float | None
) -> None:
    now = CREATED + elapsed
    at = next_attempt(CREATED, attempts, now, random.Random(seed), retry_after=retry_after)
    if now >= CREATED + BUDGET:
        assert at is None
    else:
        assert at is not None
        assert now < at <= min(now + CAP, CREATED + BUDGET)
