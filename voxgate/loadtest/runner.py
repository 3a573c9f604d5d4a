"""A load test's run: calls placed at a ramp rate, held, measured every second, hung up.

Theory of operation
-------------------
:class:`LoadSession` owns the transport (carrier streams or the SIP client), the
pacing grid and one :class:`~voxgate.loadtest.probe.CallProbe` per call.
:meth:`LoadSession.add_calls` places calls at ``ramp`` calls per second (each in a
task of its own: a slow set-up does not hold the next one back); an answered call
joins the grid. Every second :meth:`LoadSession.snapshot` takes what every probe
measured since the previous one (latencies, frames, losses) into one timeline point
with the node's CPU, so a run can be read over time and against concurrency.
:meth:`LoadSession.hang_up` ends every call and waits (bounded) for them to close.

:func:`run_load` is the plain run: N calls, then ``duration`` seconds with all of
them up, then hang-up. :mod:`voxgate.loadtest.capacity` drives the same session in
steps.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Final, Protocol

import numpy as np

from voxgate.loadtest.grid import SendGrid
from voxgate.loadtest.node import NodeWatch
from voxgate.loadtest.probe import CallProbe, Samples

log = logging.getLogger("voxgate.loadtest")

HANGUP_WAIT: Final = 5.0
SNAPSHOT_EVERY: Final = 1.0


class LoadCall(Protocol):
    probe: CallProbe

    def send_audio(self, samples: Samples) -> None: ...

    def send_dtmf(self, digit: str) -> None: ...

    def hangup(self) -> None: ...

    async def wait_ended(self, timeout: float) -> bool: ...


@dataclass
class Point:
    """One second of the run (a timeline entry), with its raw latencies kept for windows."""

    t: float
    active: int
    answered: int
    failed: int
    calls_per_s: float
    latencies_ms: list[float]
    frames: int
    lost: int
    late: int
    cpu_percent: float | None
    rss_mib: float | None
    phase: str = ""
    generator_cpu_percent: float | None = None  # the load tester's own process
    target_calls: int = 0  # what the run or the capacity step aimed at then

    def as_json(self) -> dict[str, Any]:
        p50, p99 = percentiles(self.latencies_ms, 50, 99)
        return {
            "t": round(self.t, 3), "active": self.active, "answered": self.answered,
            "failed": self.failed, "calls_per_s": round(self.calls_per_s, 2),
            "p50_ms": p50, "p99_ms": p99, "frames": self.frames, "lost": self.lost,
            "late": self.late, "cpu_percent": self.cpu_percent, "rss_mib": self.rss_mib,
            "phase": self.phase, "generator_cpu_percent": self.generator_cpu_percent,
            "target_calls": self.target_calls,
        }  # fmt: skip


def percentiles(values: list[float], *qs: float) -> list[float | None]:
    if not values:
        return [None] * len(qs)
    return [round(float(v), 3) for v in np.percentile(np.asarray(values), qs)]


@dataclass
class _Cursor:
    latencies: int = 0
    expected: int = 0
    lost: int = 0
    late: int = 0


@dataclass
class LoadSession:
    """See the module docstring."""

    dial: Callable[[CallProbe], Any]  # async: the call once answered, or None
    node: NodeWatch
    dtmf_every: float | None = None
    late_after: float = 0.060
    on_point: Callable[[Point], None] | None = None
    probes: list[CallProbe] = field(default_factory=list)
    calls: list[LoadCall] = field(default_factory=list)
    timeline: list[Point] = field(default_factory=list)
    phase: str = ""
    target_calls: int = 0  # the calls the run or the current step aims at

    def __post_init__(self) -> None:
        self.grid = SendGrid()
        self.started_at = time.monotonic()
        self.started_cpu = time.process_time()
        self._last_cpu = (self.started_at, self.started_cpu)
        self._cursors: dict[int, _Cursor] = {}
        self._placing: set[asyncio.Task[None]] = set()
        self._answered_seen = 0
        self._ticker: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._ticker = asyncio.create_task(self._tick())

    @property
    def active(self) -> int:
        return sum(1 for probe in self.probes if probe.live)

    async def add_calls(self, count: int, ramp: float) -> None:
        """Place ``count`` calls, ``ramp`` per second; returns once all are placed."""
        begin = time.monotonic()
        for n in range(count):
            await asyncio.sleep(max(0.0, begin + n / ramp - time.monotonic()))
            probe = CallProbe(
                len(self.probes), dtmf_every=self.dtmf_every, late_after=self.late_after
            )
            self.probes.append(probe)
            task = asyncio.create_task(self._place(probe))
            self._placing.add(task)
            task.add_done_callback(self._placing.discard)
        if self._placing:
            await asyncio.wait(set(self._placing), timeout=40.0)

    async def _place(self, probe: CallProbe) -> None:
        try:
            call = await self.dial(probe)
        except Exception as error:  # a transport's bug must not end the run: it is a failure
            log.exception("placing call %d failed", probe.figures.index)
            probe.failed(f"error_{type(error).__name__}", time.monotonic())
            return
        if call is not None:
            self.calls.append(call)
            self.grid.add(call)

    async def hang_up(self) -> None:
        for task in list(self._placing):
            task.cancel()
        for call in self.calls:
            call.hangup()
        await asyncio.gather(*(call.wait_ended(HANGUP_WAIT) for call in self.calls))
        for call in self.calls:
            self.grid.remove(call)
        self.grid.close()

    async def stop(self) -> None:
        if self._ticker is not None:
            self._ticker.cancel()
            await asyncio.gather(self._ticker, return_exceptions=True)
        await self.node.close()

    async def _tick(self) -> None:
        next_at = time.monotonic() + SNAPSHOT_EVERY
        while True:
            await asyncio.sleep(max(0.0, next_at - time.monotonic()))
            next_at += SNAPSHOT_EVERY
            point = await self.snapshot()
            if self.on_point is not None:
                self.on_point(point)

    async def snapshot(self) -> Point:
        """What the probes measured since the last snapshot, as one timeline point."""
        cpu, rss = await self.node.sample()
        latencies: list[float] = []
        frames = lost = late = 0
        for probe in self.probes:
            figures = probe.figures
            cursor = self._cursors.setdefault(figures.index, _Cursor())
            latencies += figures.latencies_ms[cursor.latencies :]
            frames += figures.frames_expected - cursor.expected
            lost += figures.frames_lost - cursor.lost
            late += figures.frames_late - cursor.late
            cursor.latencies = len(figures.latencies_ms)
            cursor.expected, cursor.lost = figures.frames_expected, figures.frames_lost
            cursor.late = figures.frames_late
        answered = sum(1 for p in self.probes if p.figures.setup_ms is not None)
        failed = sum(1 for p in self.probes if p.figures.status == "failed")
        new_answers, self._answered_seen = answered - self._answered_seen, answered
        (wall_before, cpu_before), now = self._last_cpu, time.monotonic()
        self._last_cpu = (now, time.process_time())
        own = 100 * (self._last_cpu[1] - cpu_before) / max(now - wall_before, 1e-6)
        point = Point(
            t=time.monotonic() - self.started_at, active=self.active, answered=answered,
            failed=failed, calls_per_s=new_answers / SNAPSHOT_EVERY, latencies_ms=latencies,
            frames=frames, lost=lost, late=late, cpu_percent=_rounded(cpu),
            rss_mib=_rounded(rss), phase=self.phase, generator_cpu_percent=_rounded(own),
            target_calls=self.target_calls,
        )  # fmt: skip
        self.timeline.append(point)
        return point


def _rounded(value: float | None) -> float | None:
    return None if value is None else round(value, 2)


async def run_load(session: LoadSession, *, calls: int, ramp: float, duration: float) -> None:
    """N calls at ``ramp`` per second, held ``duration`` seconds, hung up."""
    session.start()
    session.phase = "ramp"
    session.target_calls = calls
    await session.add_calls(calls, ramp)
    session.phase = "hold"
    await asyncio.sleep(duration)
    session.phase = "hang-up"
    await session.hang_up()
    await session.snapshot()
