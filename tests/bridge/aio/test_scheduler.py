from __future__ import annotations

import asyncio
import itertools
from collections.abc import Callable

from voxgate.bridge.aio.scheduler import NO_PROGRESS_DELAY, Scheduler
from voxgate.obs import METRICS

STUCK_LIMIT = 1000  # a stuck target gives up after this many wakes, so a spinning loop ends
TICK = 0.005
TURNS = 10


class Stuck:
    """Asks again for the very instant it was woken for, until ``stop`` is set."""

    def __init__(self, clock: Callable[[], float]) -> None:
        self.clock = clock
        self.wakes: list[tuple[float, float]] = []  # (now given, clock when woken)
        self.stop = False

    def wake(self, now: float) -> float | None:
        self.wakes.append((now, self.clock()))
        if self.stop or len(self.wakes) >= STUCK_LIMIT:
            return None
        return now


class Ticker:
    """A well-behaved target: every TICK seconds, TURNS times, then done."""

    def __init__(self, clock: Callable[[], float], done: asyncio.Event) -> None:
        self.clock = clock
        self.done = done
        self.dues: list[float] = []
        self.wakes: list[tuple[float, float]] = []

    def wake(self, now: float) -> float | None:
        self.wakes.append((now, self.clock()))
        if len(self.wakes) >= TURNS:
            self.done.set()
            return None
        due = now + TICK
        self.dues.append(due)
        return due


async def _run_stuck_beside_ticker() -> tuple[Stuck, Ticker, float]:
    loop = asyncio.get_running_loop()
    scheduler = Scheduler(clock=loop.time)
    done = asyncio.Event()
    stuck, ticker = Stuck(loop.time), Ticker(loop.time, done)
    start = loop.time()
    scheduler.schedule(ticker, start)
    scheduler.schedule(stuck, start)
    try:
        await done.wait()
    finally:
        stuck.stop = True
        scheduler.close()
    return stuck, ticker, loop.time() - start


def _run() -> tuple[Stuck, Ticker, float]:
    async def bounded() -> tuple[Stuck, Ticker, float]:
        return await asyncio.wait_for(_run_stuck_beside_ticker(), 5.0)

    return asyncio.run(bounded())


def test_a_target_making_no_progress_is_not_spun_and_others_get_their_turn() -> None:
    before = METRICS.value("errors", kind="timer_no_progress")
    stuck, ticker, elapsed = _run()

    assert len(stuck.wakes) < STUCK_LIMIT  # a spinning loop would have run it to the limit
    nows = [now for now, _ in stuck.wakes]
    steps = [later - earlier for earlier, later in itertools.pairwise(nows)]
    assert steps
    assert all(step >= NO_PROGRESS_DELAY - 1e-9 for step in steps)  # woken about 1 ms later
    assert len(stuck.wakes) <= (elapsed + 0.003) / NO_PROGRESS_DELAY + 1
    assert METRICS.value("errors", kind="timer_no_progress") - before >= len(steps)

    assert len(ticker.wakes) == TURNS  # the other target kept its turns
    for due, (now, clock) in zip(ticker.dues, ticker.wakes[1:], strict=True):
        assert now >= due
        assert clock >= due - 0.0025  # the scheduler looks 2 ms ahead, no more
        assert clock < due + 0.5  # generous: not starved
    assert elapsed < 2.0


def test_a_target_making_no_progress_waits_before_its_next_wake() -> None:
    stuck, _, _ = _run()
    clocks = [clock for _, clock in stuck.wakes]
    gaps = [later - earlier for earlier, later in itertools.pairwise(clocks)]
    assert gaps
    assert all(gap >= NO_PROGRESS_DELAY / 2 for gap in gaps)
