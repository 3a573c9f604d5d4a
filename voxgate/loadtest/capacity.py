"""``--find-capacity``: concurrency raised step by step until a threshold breaks.

Each step brings the session up to the next level of concurrent calls (at the ramp
rate), lets it settle, then measures a window: p99 of the markers' round trips, the
share of frames lost, the node's mean CPU, calls that failed or dropped during the
step and, when the node's /metrics can be read, the latency the bridge itself says it
added (p99 inbound plus p99 outbound, over its most recent frames: its summaries keep
the last 50,000 observations each way, 10 s at 100 calls, 20 s at 50; when that figure
is a threshold, a step settles long enough that they hold none of the frames from
before it, so the first, smallest steps do not carry the ramp's start-up). The first
step past any threshold ends the search; the *knee* is the last level that kept all of
them. Calls stay up from step to step, so a step costs only its settle and window time.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any, Final

from voxgate.loadtest.node import bridge_latency
from voxgate.loadtest.runner import LoadSession, Point, percentiles
from voxgate.loadtest.signal_probe import FRAME_SECONDS
from voxgate.obs import RESERVOIR


@dataclass(frozen=True, slots=True)
class Thresholds:
    p99_ms: float = 20.0  # round trip through the node and the bot
    loss_ratio: float = 0.001
    cpu_percent: float | None = None  # of one core; None: not a threshold
    added_ms: float | None = None  # the bridge's own p99 in + p99 out; None: not a threshold


@dataclass(frozen=True, slots=True)
class Steps:
    start: int = 50
    step: int = 50
    limit: int = 1000
    settle: float = 3.0
    window: float = 10.0


MAX_SETTLE: Final = 30.0  # seconds: below 40 calls the summaries are not wholly the step's
THRESHOLD_OF: Final = {
    "p99": "p99_ms",
    "loss": "loss_ratio",
    "cpu": "cpu_percent",
    "added": "added_ms",
}


def settle_seconds(steps: Steps, calls: int, *, judges_added: bool) -> float:
    """How long a step at ``calls`` waits before its window: ``steps.settle``, or, when
    the node's own added latency is a threshold, long enough that at the window's end its
    summaries hold only frames from after the settle began (none from the ramp or a
    previous step), up to MAX_SETTLE."""
    if not judges_added or calls <= 0:
        return steps.settle
    turned_over = RESERVOIR * FRAME_SECONDS / calls - steps.window  # a frame per call each way
    return max(steps.settle, min(turned_over, MAX_SETTLE))


def verdict(capacity: Mapping[str, Any]) -> str:
    """One sentence on where the search ended: the knee, or why there is none.

    ``capacity`` is a result's ``capacity`` whose ``steps`` are mappings.
    """
    knee, broke, steps = capacity.get("knee_calls"), capacity.get("broke_on"), capacity["steps"]
    if not steps:
        return "No step was measured."
    last = steps[-1].get("target_calls")
    if broke is None:
        return f"No threshold broke up to {last} calls (the last step): the knee is beyond."
    thresholds = capacity.get("thresholds")
    limit = (
        thresholds.get(THRESHOLD_OF.get(str(broke), ""))
        if isinstance(thresholds, Mapping)
        else None
    )
    what = f"{broke} broke its threshold ({limit})" if limit is not None else f"{broke} broke"
    if knee is None:
        return f"No knee: at the first step ({last} calls), {what}."
    return f"Knee at {knee} calls: at {last}, {what}."


def judge(
    points: list[Point],
    failed_before: int,
    thresholds: Thresholds,
    bridge: dict[str, dict[str, float | None]] | None = None,
) -> dict[str, Any]:
    """One step's figures from its window's timeline points, and what (if anything) broke."""
    latencies = [value for point in points for value in point.latencies_ms]
    frames = sum(point.frames for point in points)
    lost = sum(point.lost for point in points)
    cpus = [point.cpu_percent for point in points if point.cpu_percent is not None]
    p50, p99 = percentiles(latencies, 50, 99)
    loss = lost / frames if frames else None
    cpu = round(sum(cpus) / len(cpus), 2) if cpus else None
    failed = (points[-1].failed if points else failed_before) - failed_before
    added = _added(bridge)
    broke = None
    if p99 is None or p99 > thresholds.p99_ms:
        broke = "p99"
    elif loss is None or loss > thresholds.loss_ratio:
        broke = "loss"
    elif thresholds.cpu_percent is not None and (cpu is None or cpu > thresholds.cpu_percent):
        broke = "cpu"
    elif thresholds.added_ms is not None and (added is None or added > thresholds.added_ms):
        broke = "added"
    elif failed > 0:
        broke = "failures"
    return {
        "calls": points[-1].active if points else 0,
        "p50_ms": p50,
        "p99_ms": p99,
        "loss_ratio": None if loss is None else round(loss, 6),
        "cpu_percent": cpu,
        "failed": failed,
        "bridge_in_p99_ms": _p99(bridge, "inbound_ms"),
        "bridge_out_p99_ms": _p99(bridge, "outbound_ms"),
        "added_p99_ms": added,
        "passed": broke is None,
        "broke_on": broke,
    }


def _p99(bridge: dict[str, dict[str, float | None]] | None, direction: str) -> float | None:
    value = (bridge or {}).get(direction, {}).get("p99")
    return None if value is None else round(value, 3)


def _added(bridge: dict[str, dict[str, float | None]] | None) -> float | None:
    inbound, outbound = _p99(bridge, "inbound_ms"), _p99(bridge, "outbound_ms")
    return None if inbound is None or outbound is None else round(inbound + outbound, 3)


async def find_capacity(
    session: LoadSession, *, ramp: float, steps: Steps, thresholds: Thresholds
) -> dict[str, Any]:
    session.start()
    results: list[dict[str, Any]] = []
    knee: int | None = None
    broke: str | None = None
    level = steps.start
    judges_added = thresholds.added_ms is not None
    while level <= steps.limit:
        session.phase = f"step {len(results) + 1}: {level} calls"
        session.target_calls = level
        failed_before = session.timeline[-1].failed if session.timeline else 0
        await session.add_calls(level - len(session.probes), ramp)
        await asyncio.sleep(settle_seconds(steps, level, judges_added=judges_added))
        await session.snapshot()  # the window starts here, whatever the ticker's phase
        first = len(session.timeline)
        await asyncio.sleep(steps.window)
        await session.snapshot()  # and ends here: a window shorter than a second is judged too
        bridge = bridge_latency(await session.node.scrape()) if session.node.metrics_url else None
        step = judge(session.timeline[first:], failed_before, thresholds, bridge)
        step["target_calls"] = level
        results.append(step)
        if not step["passed"]:
            broke = step["broke_on"]
            break
        knee = level
        level += steps.step
    session.phase = "hang-up"
    await session.hang_up()
    return {
        "knee_calls": knee,
        "broke_on": broke,
        "thresholds": asdict(thresholds),
        "steps": results,
    }
