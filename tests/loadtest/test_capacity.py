"""The capacity search: one step judged from hand-made timeline points, and the stepping
logic driven over an in-memory transport whose quality falls past a given concurrency.

The in-memory transport (:class:`FakeNode`) returns every frame the pacing grid sends
after a delay, as a node and an echo bot would; past ``healthy_up_to`` concurrent calls
it turns slow, lossy or refusing, so the search must stop on the matching threshold.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from typing import Any, Final

import numpy as np
import pytest
from scenario import run

from voxgate.loadtest.capacity import (
    Steps,
    Thresholds,
    find_capacity,
    judge,
    settle_seconds,
    verdict,
)
from voxgate.loadtest.node import NodeWatch
from voxgate.loadtest.probe import CallProbe, Samples
from voxgate.loadtest.runner import LoadSession, Point
from voxgate.loadtest.signal_probe import marker_kind

BRIDGE: dict[str, dict[str, float | None]] = {
    "inbound_ms": {"p50": 1.0, "p99": 3.0},
    "outbound_ms": {"p50": 1.0, "p99": 4.0},
}


def _point(
    latencies: list[float] | None = None,
    *,
    frames: int = 1000,
    lost: int = 0,
    cpu: float | None = None,
    failed: int = 0,
    active: int = 10,
) -> Point:
    return Point(
        t=1.0, active=active, answered=active, failed=failed, calls_per_s=0.0,
        latencies_ms=[5.0] * 50 if latencies is None else latencies, frames=frames, lost=lost,
        late=0, cpu_percent=cpu, rss_mib=None,
    )  # fmt: skip


JUDGED = [
    ("passes", [_point(), _point()], 0, Thresholds(), None, None),
    ("p99 over", [_point([5.0] * 90 + [50.0] * 10)], 0, Thresholds(), None, "p99"),
    ("p99 before loss", [_point([50.0], lost=500)], 0, Thresholds(), None, "p99"),
    ("loss over", [_point(lost=2)], 0, Thresholds(), None, "loss"),
    ("no frames: loss unknown", [_point(frames=0)], 0, Thresholds(), None, "loss"),
    ("cpu over", [_point(cpu=70.0), _point(cpu=95.0)], 0, Thresholds(cpu_percent=80), None, "cpu"),
    ("cpu unknown", [_point(cpu=None)], 0, Thresholds(cpu_percent=80), None, "cpu"),
    ("cpu not a threshold", [_point(cpu=900.0)], 0, Thresholds(), None, None),
    ("added under", [_point()], 0, Thresholds(added_ms=10), BRIDGE, None),
    ("added over", [_point()], 0, Thresholds(added_ms=5), BRIDGE, "added"),
    ("added missing", [_point()], 0, Thresholds(added_ms=5), None, "added"),
    ("added not asked", [_point()], 0, Thresholds(), None, None),
    ("failures in step", [_point(failed=1), _point(failed=3)], 1, Thresholds(), None, "failures"),
    ("failures before step", [_point(failed=3)], 3, Thresholds(), None, None),
    ("empty window", [], 2, Thresholds(), None, "p99"),
]


@pytest.mark.parametrize(
    ("points", "failed_before", "thresholds", "bridge", "broke_on"),
    [case[1:] for case in JUDGED],
    ids=[case[0] for case in JUDGED],
)
def test_judge_says_what_broke_first(
    points: list[Point],
    failed_before: int,
    thresholds: Thresholds,
    bridge: dict[str, dict[str, float | None]] | None,
    broke_on: str | None,
) -> None:
    step = judge(points, failed_before, thresholds, bridge)
    assert step["broke_on"] == broke_on
    assert step["passed"] is (broke_on is None)


def test_judge_reports_the_windows_figures() -> None:
    points = [_point([float(v) for v in range(1, 101)], lost=1, cpu=40.0, failed=2, active=8)]
    points.append(_point([], frames=1000, lost=0, cpu=60.0, failed=2, active=9))
    step = judge(points, 2, Thresholds(p99_ms=200, added_ms=10), BRIDGE)
    assert step == {
        "calls": 9, "p50_ms": 50.5, "p99_ms": 99.01, "loss_ratio": 0.0005, "cpu_percent": 50.0,
        "failed": 0, "bridge_in_p99_ms": 3.0, "bridge_out_p99_ms": 4.0, "added_p99_ms": 7.0,
        "passed": True, "broke_on": None,
    }  # fmt: skip


def test_an_empty_window_has_no_figures() -> None:
    step = judge([], 2, Thresholds())
    assert step["calls"] == 0 and step["failed"] == 0
    assert step["p50_ms"] is step["p99_ms"] is step["loss_ratio"] is step["cpu_percent"] is None


# --- the stepping logic over an in-memory transport -------------------------------------


@dataclass
class FakeNode:
    """Calls that return each frame after ``delay``; past ``healthy_up_to`` live calls the
    node turns ``slow`` (0.3 s), ``lossy`` (a quarter of the frames silent) or ``refusing``
    (new calls fail as busy)."""

    healthy_up_to: int = 1000
    trouble: str = ""
    delay: float = 0.005
    calls: list[FakeCall] = field(default_factory=list)

    @property
    def live(self) -> int:
        return sum(1 for call in self.calls if call.probe.live)

    @property
    def troubled(self) -> bool:
        return self.live > self.healthy_up_to

    async def dial(self, probe: CallProbe) -> FakeCall | None:
        probe.placed(time.monotonic())
        await asyncio.sleep(0.001)
        if self.trouble == "refusing" and self.live >= self.healthy_up_to:
            probe.failed("busy", time.monotonic())
            return None
        probe.answered(time.monotonic())
        call = FakeCall(probe, self)
        self.calls.append(call)
        return call


class FakeCall:
    def __init__(self, probe: CallProbe, node: FakeNode) -> None:
        self.probe = probe
        self.node = node
        self.sent = 0
        self.ended = asyncio.Event()
        self._loop = asyncio.get_running_loop()

    def send_audio(self, samples: Samples) -> None:
        number, self.sent = self.sent, self.sent + 1
        node = self.node
        delay = 0.3 if node.troubled and node.trouble == "slow" else node.delay
        lossy = node.troubled and node.trouble == "lossy"
        if lossy and marker_kind(number) is None and number % 4 == 1:
            samples = np.zeros_like(samples)
        self._loop.call_later(delay, self._returned, samples.copy())

    def _returned(self, samples: Samples) -> None:
        if self.probe.live:
            self.probe.audio_received(samples, time.monotonic())

    def send_dtmf(self, digit: str) -> None:
        return None

    def hangup(self) -> None:
        self.probe.ended("local_hangup", time.monotonic())
        self.ended.set()

    async def wait_ended(self, timeout: float) -> bool:
        try:
            await asyncio.wait_for(self.ended.wait(), timeout)
        except TimeoutError:
            return False
        return True


# Timeline points come once a second: a window of 1.05 s holds at least one, and each
# point covers a second, in which every call returns two of its markers (one per 0.5 s).
STEPS = Steps(start=2, step=2, limit=6, settle=0.3, window=1.05)
LENIENT = Thresholds(p99_ms=150.0, loss_ratio=0.05)


async def _search(node: FakeNode, steps: Steps = STEPS) -> dict[str, Any]:
    session = LoadSession(node.dial, NodeWatch())
    try:
        result = await find_capacity(session, ramp=50.0, steps=steps, thresholds=LENIENT)
    finally:
        await session.stop()
    for point in session.timeline:  # each second says which step it belongs to
        if point.phase.startswith("step"):
            assert point.phase.endswith(f": {point.target_calls} calls"), point
    return result


SEARCHES = {  # trouble past 2 calls -> knee, broke_on, the steps' target calls
    "": (6, None, [2, 4, 6]),
    "slow": (2, "p99", [2, 4]),
    "lossy": (2, "loss", [2, 4]),
    "refusing": (2, "failures", [2, 4]),
}


def test_the_search_steps_up_to_the_first_broken_threshold() -> None:
    """The four searches run side by side (each its own session and grid) to save time."""

    async def scenario() -> None:
        nodes = {trouble: FakeNode(healthy_up_to=2, trouble=trouble) for trouble in SEARCHES}
        results = await asyncio.gather(*(_search(node) for node in nodes.values()))
        for (trouble, (knee, broke_on, targets)), result in zip(
            SEARCHES.items(), results, strict=True
        ):
            steps = result["steps"]
            assert result["knee_calls"] == knee, (trouble, steps)
            assert result["broke_on"] == broke_on, (trouble, steps)
            assert [step["target_calls"] for step in steps] == targets, trouble
            assert [step["passed"] for step in steps] == [target <= knee for target in targets], (
                trouble
            )
            first = steps[0]
            assert first["calls"] == 2 and 2.0 < first["p99_ms"] < 150.0, (trouble, first)
            assert first["loss_ratio"] == 0.0 and first["failed"] == 0, (trouble, first)
            assert first["cpu_percent"] is None and first["added_p99_ms"] is None
            assert result["thresholds"] == {
                "p99_ms": 150.0, "loss_ratio": 0.05, "cpu_percent": None, "added_ms": None
            }  # fmt: skip
            assert not any(call.probe.live for call in nodes[trouble].calls), "all hung up"

    run(scenario())


def test_a_window_shorter_than_a_snapshot_still_judges_a_healthy_node() -> None:
    """--step-seconds takes any positive number, but a step's figures are the timeline
    points (one a second) that fall in its window: a shorter window may hold none, and
    the step is then judged broken on p99 though nothing was wrong."""

    async def scenario() -> None:
        steps = Steps(start=1, step=1, limit=4, settle=1.0, window=0.4)
        result = await _search(FakeNode(), steps)
        assert result["knee_calls"] == 4, (
            "BUG: a healthy node's step was judged on an empty window "
            f"(window 0.4 s < one timeline point a second): {result['steps']}"
        )

    run(scenario())


_LIMITS: Final = {"p99_ms": 50.0, "loss_ratio": 0.001, "cpu_percent": None, "added_ms": 5.0}


@pytest.mark.parametrize(
    ("knee", "broke", "targets", "sentence"),
    [
        (150, "p99", [150, 200], "Knee at 150 calls: at 200, p99 broke its threshold (50.0)."),
        (150, "added", [150, 200], "Knee at 150 calls: at 200, added broke its threshold (5.0)."),
        (100, "failures", [100, 150], "Knee at 100 calls: at 150, failures broke."),
        (None, "loss", [50],
         "No knee: at the first step (50 calls), loss broke its threshold (0.001)."),
        (300, None, [250, 300],
         "No threshold broke up to 300 calls (the last step): the knee is beyond."),
        (None, None, [], "No step was measured."),
    ],
)  # fmt: skip
def test_the_verdict_says_where_the_search_ended(
    knee: int | None, broke: str | None, targets: list[int], sentence: str
) -> None:
    steps = [{"target_calls": target} for target in targets]
    capacity = {"knee_calls": knee, "broke_on": broke, "thresholds": _LIMITS, "steps": steps}
    assert verdict(capacity) == sentence


@pytest.mark.parametrize(
    ("calls", "judges_added", "settle"),
    [
        (50, False, 3.0),  # the node's figure is no threshold: the plain settle
        (50, True, 10.0),  # 50,000 frames at 2,500 a second: 20 s, of which 10 in the window
        (100, True, 3.0),  # 10 s of frames: the window alone turns them over
        (20, True, 30.0),  # 40 s wanted: capped
        (0, True, 3.0),
    ],
)
def test_a_step_settles_until_the_nodes_summaries_hold_only_its_own_frames(
    calls: int, judges_added: bool, settle: float
) -> None:
    steps = Steps(start=50, step=50, limit=300, settle=3.0, window=10.0)
    assert settle_seconds(steps, calls, judges_added=judges_added) == pytest.approx(settle)
