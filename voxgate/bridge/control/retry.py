"""When a webhook delivery is tried again, and which outcomes end it, sans I/O.

Theory of operation
-------------------
A delivery lives in the outbox until it is delivered or dead::

    pending --POST answered 2xx--------------------------------> delivered
       |  --410 Gone, or a URL that can never be sent to--------> dead
       |  --anything else (see below)--> next_attempt(...) --None--> dead
       |                                        | a time
       +<---------------- pending, due then ----+
    dead --replay--> pending (due now; one more failure makes it dead again, since
                     the 24 h budget counts from the event's creation)

Which outcomes retry. Like Stripe and the Standard Webhooks guidance, every answer that
is not 2xx counts as a failure and is retried: network errors, timeouts, 408, 429, 5xx,
but also 3xx (redirects are not followed: a receiver must give its final URL) and the
other 4xx, because a 401/404 is most often a receiver mid-deploy or misconfigured for a
while, and the retry budget bounds the cost. The one exception is **410 Gone**: the
receiver says this URL is gone for good (RFC 9110 section 15.5.11), so the delivery is
dead at once instead of knocking for 24 hours.

The schedule. After the n-th failed attempt the wait is drawn from
``[d/2, d]`` with ``d = min(BASE * FACTOR**(n-1), CAP)`` ("equal jitter": 10 s, 20 s,
40 s ... up to an hour). Equal rather than full jitter (``[0, d]``): full jitter can
draw a wait near zero, which spends an attempt on a receiver that has had no time to
recover and makes the number of attempts per day unpredictable; half of ``d`` kept
fixed still spreads a burst of deliveries that failed together (a receiver's outage)
over half the interval, which is what jitter is for. The waits grow over the first hour
or so, then an attempt comes every 30-60 minutes: about 40 attempts in 24 hours.

``Retry-After`` (RFC 9110 section 10.2.3), in seconds or as an HTTP-date, is honoured
when a failed answer carries one (429, 503...): the wait is at least that long, but
never past :data:`CAP`, so a receiver cannot park a delivery for longer than an hour.

The budget: :data:`BUDGET` seconds (24 h) from the delivery's creation. An attempt
that would fall past it is moved to the deadline itself, so the last try happens at the
end of the budget; a failure at or after the deadline makes the delivery dead.
"""

from __future__ import annotations

import math
import random
from email.utils import parsedate_to_datetime
from typing import Final, Literal

BASE: Final = 10.0  # seconds: the first wait is 5-10 s
FACTOR: Final = 2.0
CAP: Final = 3600.0  # the longest wait between two attempts
BUDGET: Final = 24 * 3600.0  # seconds from creation after which a delivery is dead
_MAX_EXPONENT: Final = 32  # FACTOR**32 * BASE is far past CAP: no need to compute more

Outcome = Literal["delivered", "retry", "dead"]


def outcome_of(status: int | None) -> Outcome:
    """What an attempt's result means; ``status`` None is a network error or a timeout."""
    if status is not None and 200 <= status < 300:
        return "delivered"
    if status == 410:
        return "dead"
    return "retry"


def backoff(attempts: int, rng: random.Random) -> float:
    """The wait after the ``attempts``-th failed attempt (1 for the first), jittered."""
    exponent = min(max(attempts, 1) - 1, _MAX_EXPONENT)
    ceiling = min(BASE * FACTOR**exponent, CAP)
    return ceiling / 2 + rng.uniform(0.0, ceiling / 2)


def next_attempt(
    created_at: float,
    attempts: int,
    now: float,
    rng: random.Random,
    *,
    retry_after: float | None = None,
) -> float | None:
    """When to try again after the ``attempts``-th failed attempt, failed at ``now``;
    None when the budget is spent (dead-letter). ``retry_after`` is the receiver's
    ``Retry-After`` in seconds, if it gave one."""
    deadline = created_at + BUDGET
    if now >= deadline:
        return None
    wait = backoff(attempts, rng)
    if retry_after is not None and math.isfinite(retry_after):
        wait = max(wait, min(retry_after, CAP))
    return min(now + wait, deadline)


def parse_retry_after(value: str | None, *, now: float) -> float | None:
    """Seconds to wait from a ``Retry-After`` value (RFC 9110 section 10.2.3):
    ``delay-seconds`` or an ``HTTP-date``; None when absent or unreadable."""
    if value is None:
        return None
    text = value.strip()
    if text.isascii() and text.isdigit():
        return float(min(int(text[:12]), 10**9))
    try:
        moment = parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    if moment.tzinfo is None:  # RFC 9110 section 5.6.7: an HTTP-date is in GMT
        return None
    return max(moment.timestamp() - now, 0.0)
