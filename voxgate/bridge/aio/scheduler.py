"""The one shared clock of all calls.

Each call's core says when it next needs waking (:meth:`Call.next_due`). The
scheduler keeps those instants in one heap and one event-loop timer set for
the earliest: no sleeping task per call, and each call is woken at its own due
instant (its frames keep their own 20 ms grid, which starts when its bot
starts talking) rather than on a shared coarse grid. When a call's due
instant changes (audio arrived, a mark was echoed) it is simply pushed again;
stale heap entries are skipped when they surface.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import logging
import time
from collections.abc import Callable
from typing import Protocol

from voxgate.obs import METRICS

log = logging.getLogger("voxgate.scheduler")

NO_PROGRESS_DELAY = 0.003  # a target asking again for the instant it was woken for waits this
# (more than the 2 ms within which due targets are woken together, so it is a real wait)
NO_PROGRESS_LOGGED = 10  # such wake-ups logged per process (all are counted)


class Wakeable(Protocol):
    def wake(self, now: float) -> float | None:
        """Do what is due at ``now``; return the next due instant, or None."""
        ...


class Scheduler:
    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self._heap: list[tuple[float, int, Wakeable]] = []
        self._due: dict[int, float] = {}
        self._order = itertools.count()
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at: float | None = None
        self.late_wakeups = 0
        self.no_progress = 0

    def schedule(self, target: Wakeable, due: float | None) -> None:
        """Wake ``target`` at ``due`` (replacing what was asked before); None cancels."""
        key = id(target)
        if due is None:
            self._due.pop(key, None)
            return
        if self._due.get(key) == due:
            return
        self._due[key] = due
        heapq.heappush(self._heap, (due, next(self._order), target))
        if self._timer_at is None or due < self._timer_at:
            self._arm(due)

    def _no_progress(self, target: Wakeable) -> None:
        """Counted always, logged the first few times (it is a bug of the target's)."""
        METRICS.count("errors", kind="timer_no_progress")
        self.no_progress += 1
        if self.no_progress <= NO_PROGRESS_LOGGED:
            log.warning(
                "%s asked to be woken again at once; waking it %.0f ms later",
                type(target).__name__,
                NO_PROGRESS_DELAY * 1000,
                extra={"call_id": getattr(target, "call_id", "")},
            )

    def forget(self, target: Wakeable) -> None:
        self._due.pop(id(target), None)

    def close(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
        self._heap.clear()
        self._due.clear()

    def _arm(self, due: float) -> None:
        if self._timer is not None:
            self._timer.cancel()
        loop = asyncio.get_running_loop()
        delay = max(0.0, due - self.clock())
        self._timer = loop.call_at(loop.time() + delay, self._fire)
        self._timer_at = due

    def _fire(self) -> None:
        self._timer = self._timer_at = None
        now = self.clock()
        while self._heap and self._heap[0][0] <= now + 0.002:
            due, _, target = heapq.heappop(self._heap)
            key = id(target)
            if self._due.get(key) != due:
                continue  # superseded or cancelled
            del self._due[key]
            if now - due > 0.005:
                self.late_wakeups += 1
                METRICS.count("scheduler_late_wakeups")
            try:
                following = target.wake(max(now, due))  # up to 2 ms early counts as due
            except Exception:
                call_id = getattr(target, "call_id", "")
                log.exception("a call failed while handling its timer", extra={"call_id": call_id})
                METRICS.count("errors", kind="timer")
                continue
            if following is not None:
                if following <= max(now, due):  # no progress: never spin in this loop
                    self._no_progress(target)
                    following = max(now, due) + NO_PROGRESS_DELAY
                self.schedule(target, following)
        if self._heap:
            self._arm(self._heap[0][0])
