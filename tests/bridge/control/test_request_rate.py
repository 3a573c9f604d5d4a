"""The per-key token bucket, with time stepped by hand."""

from __future__ import annotations

from voxgate.bridge.control.ratelimit import RequestRate


def test_a_burst_of_the_rate_then_refusals_with_retry_after() -> None:
    rate = RequestRate(5.0)
    verdicts = [rate.take("k", 0.0) for _ in range(6)]
    assert [v.allowed for v in verdicts] == [True] * 5 + [False]
    assert [v.remaining for v in verdicts] == [4, 3, 2, 1, 0, 0]
    refused = verdicts[-1]
    assert refused.retry_after == 1
    assert refused.headers() == {
        "X-RateLimit-Limit": "5",
        "X-RateLimit-Remaining": "0",
        "X-RateLimit-Reset": "1",
        "Retry-After": "1",
    }
    assert "Retry-After" not in verdicts[0].headers()


def test_tokens_come_back_at_the_rate_and_keys_are_separate() -> None:
    rate = RequestRate(10.0)
    for _ in range(10):
        rate.take("a", 0.0)
    assert not rate.take("a", 0.0).allowed
    assert rate.take("b", 0.0).allowed  # another key: its own bucket
    assert rate.take("a", 0.1).allowed  # 0.1 s at 10/s: one token
    assert not rate.take("a", 0.1).allowed
    full = rate.take("a", 5.0)
    assert full.allowed and full.remaining == 9 and full.reset == 1


def test_a_sustained_rate_at_the_limit_is_never_refused() -> None:
    rate = RequestRate(100.0)
    allowed = [rate.take("k", i * 0.01).allowed for i in range(1000)]
    assert all(allowed)


def test_the_table_of_buckets_is_bounded() -> None:
    rate = RequestRate(1.0, max_keys=100)
    for i in range(1000):
        rate.take(f"key{i}", float(i))
    assert len(rate._buckets) <= 100
