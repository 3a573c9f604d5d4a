"""CallerClock: the carrier's media clock followed while it behaves, never backwards,
never ahead of real time by more than the slack."""

from __future__ import annotations

import pytest

from voxgate.bridge.stamps import CLOCK_SLACK_MS, MAX_FIRST_STAMP_MS, CallerClock

# (carrier timestamp, wall time) per frame of 20 ms -> the stamp given
Frames = list[tuple[int | None, float]]
CASES: dict[str, tuple[Frames, list[int | None]]] = {
    "followed": ([(1000, 0.0), (1020, 0.02), (1040, 0.04)], [1000, 1020, 1040]),
    "a real gap shows": ([(0, 0.0), (20, 0.02), (2020, 2.02)], [0, 20, 2020]),
    "backwards is a fault": (
        [(500, 0.0), (520, 0.02), (100, 0.04), (120, 0.06)],
        [500, 520, 540, 560],
    ),
    "10**30 is a fault": ([(0, 0.0), (10**30, 0.02), (40, 0.04)], [0, 20, 40]),
    "ahead of real time is capped": (
        [(0, 0.0), (CLOCK_SLACK_MS + 5000, 0.02)],
        [0, 20],
    ),
    "absent continues": ([(0, 0.0), (None, 0.02), (None, 0.04)], [0, 20, 40]),
    "a first stamp out of range starts at 0": ([(MAX_FIRST_STAMP_MS + 1, 0.0)], [0]),
    "none before any": ([(None, 0.0), (60, 0.02)], [None, 60]),
}


@pytest.mark.parametrize("case", CASES)
def test_stamps(case: str) -> None:
    frames, expected = CASES[case]
    clock = CallerClock()
    assert [clock.stamp(carrier, 20, now) for carrier, now in frames] == expected
