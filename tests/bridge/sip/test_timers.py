from __future__ import annotations

import pytest

from voxgate.bridge.sip.timers import Timers, TimerSet


@pytest.mark.parametrize(
    ("timers", "timeout"),
    [
        pytest.param(Timers(), 32.0, id="default-T1-0.5"),
        pytest.param(Timers(t1=0.1), 6.4, id="T1-0.1"),
        pytest.param(Timers(t1=1.0, t2=8.0, t4=10.0), 64.0, id="T1-1"),
    ],
)
def test_the_transaction_timeout_is_64_t1(timers: Timers, timeout: float) -> None:
    assert timers.timeout == pytest.approx(timeout)
    assert timers.d == 32.0  # timer D does not follow T1 (RFC 3261 17.1.1.2)


def test_the_defaults_are_rfc_3261_table_4() -> None:
    assert (Timers().t1, Timers().t2, Timers().t4) == (0.5, 4.0, 5.0)


def test_an_empty_set_is_never_due() -> None:
    clock = TimerSet()
    assert clock.next_due() is None
    assert list(clock.expired(1e9)) == []


def test_expired_timers_come_out_earliest_first_and_disarmed() -> None:
    clock = TimerSet()
    clock.start("B", 32.0)
    clock.start("A", 0.5)
    clock.start("K", 5.0)
    assert clock.next_due() == 0.5
    assert list(clock.expired(5.0)) == ["A", "K"]
    assert "A" not in clock
    assert "B" in clock
    assert clock.next_due() == 32.0


def test_a_timer_rearmed_while_expiring_fires_again_only_if_still_due() -> None:
    clock = TimerSet()
    clock.start("A", 1.0)
    fired = []
    for name in clock.expired(2.5):
        fired.append(name)
        if len(fired) < 5:
            clock.start(name, 1.0 + len(fired))  # 2.0, then 3.0 (not due)
    assert fired == ["A", "A"]
    assert clock.next_due() == 3.0


def test_stop_and_clear() -> None:
    clock = TimerSet()
    clock.start("E", 0.5)
    clock.start("F", 32.0)
    clock.stop("E", "unknown")
    assert clock.next_due() == 32.0
    clock.clear()
    assert clock.next_due() is None


@pytest.mark.parametrize(
    "values",
    [
        pytest.param({"t1": 0.0}, id="t1-zero"),
        pytest.param({"t1": -1.0}, id="t1-negative"),
        pytest.param({"t1": 5.0, "t2": 4.0}, id="t2-below-t1"),
        pytest.param({"t4": 0.0}, id="t4-zero"),
        pytest.param({"d": 0.0}, id="d-zero"),
    ],
)
def test_timers_that_would_spin_are_refused(values: dict[str, float]) -> None:
    with pytest.raises(ValueError, match="T1"):
        Timers(**values)
