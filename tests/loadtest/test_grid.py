"""The pacing grid on a real event loop: 50 frames a second for every live call, spread
over its slots, catching up after the loop was blocked, and nothing once closed."""

from __future__ import annotations

import asyncio
import time

from scenario import run

from voxgate.loadtest.grid import FRAME, SLOTS, SendGrid
from voxgate.loadtest.probe import CallProbe, Samples


class CountingCall:
    """A call whose transport only counts what the grid hands it."""

    def __init__(self, index: int, *, live: bool = True) -> None:
        self.probe = CallProbe(index)
        self.probe.placed(time.monotonic())
        if live:
            self.probe.answered(time.monotonic())
        self.frames = 0
        self.digits: list[str] = []

    def send_audio(self, samples: Samples) -> None:
        assert samples.size == 160
        self.frames += 1

    def send_dtmf(self, digit: str) -> None:
        self.digits.append(digit)


async def _measure(calls: list[CountingCall], seconds: float) -> tuple[list[int], float]:
    """Frames each call got over about ``seconds`` (once the grid runs), and the time."""
    await asyncio.sleep(0.1)
    before, began = [call.frames for call in calls], time.monotonic()
    await asyncio.sleep(seconds)
    elapsed = time.monotonic() - began
    return [call.frames - old for call, old in zip(calls, before, strict=True)], elapsed


def _rate_bounds(elapsed: float) -> tuple[float, float]:
    """Generous bounds on one call's frames over ``elapsed`` (the grid's own 20 ms clock)."""
    expected = elapsed / FRAME
    return expected - 4, expected + 4


def test_every_live_call_gets_fifty_frames_a_second_over_all_the_slots() -> None:
    async def scenario() -> None:
        grid = SendGrid()
        calls = [CountingCall(n) for n in range(2 * SLOTS)]
        for call in calls[:SLOTS]:
            grid.add(call)
        counts, elapsed = await _measure(calls[:SLOTS], 1.0)
        low, high = _rate_bounds(elapsed)
        assert all(low <= count <= high for count in counts), (counts, elapsed)
        # one call per slot: every slot ticks on its own (20 timers, not one)
        ticks_before, began = grid.ticks, time.monotonic()
        await asyncio.sleep(0.3)
        per_second = (grid.ticks - ticks_before) / (time.monotonic() - began)
        assert per_second > 0.6 * SLOTS / FRAME, per_second
        # twice as many calls share the same 20 slots: as many ticks, two calls each
        for call in calls[SLOTS:]:
            grid.add(call)
        assert grid.calls == 2 * SLOTS
        ticks_before, began = grid.ticks, time.monotonic()
        counts, elapsed = await _measure(calls, 0.6)
        per_second = (grid.ticks - ticks_before) / (time.monotonic() - began)
        assert per_second < 1.2 * SLOTS / FRAME, per_second
        low, high = _rate_bounds(elapsed)
        assert all(low <= count <= high for count in counts), (counts, elapsed)
        grid.close()

    run(scenario())


def test_calls_in_different_slots_are_sent_at_different_instants() -> None:
    async def scenario() -> None:
        grid = SendGrid()
        loop = asyncio.get_running_loop()
        sent_at: dict[int, list[float]] = {}

        class TimedCall(CountingCall):
            def send_audio(self, samples: Samples) -> None:
                sent_at.setdefault(self.probe.figures.index, []).append(loop.time())

        for n in range(SLOTS):
            grid.add(TimedCall(n))
        await asyncio.sleep(0.5)
        grid.close()
        # each call's phase in the 20 ms cycle: the slots are 1 ms apart
        phases = [
            sorted((t - sent_at[0][0]) % FRAME for t in times)[len(times) // 2]
            for _, times in sorted(sent_at.items())
        ]
        assert len({round(phase * 1000) for phase in phases}) >= SLOTS // 2, phases

    run(scenario())


def test_a_removed_call_and_a_call_not_live_get_no_frames() -> None:
    async def scenario() -> None:
        grid = SendGrid()
        kept, removed, ended = (CountingCall(n) for n in range(3))
        placed = CountingCall(3, live=False)
        ended.probe.ended("local_hangup", time.monotonic())
        for call in (kept, removed, placed, ended):
            grid.add(call)
        await asyncio.sleep(0.2)
        grid.remove(removed)
        assert grid.calls == 3
        stopped_at = removed.frames
        assert stopped_at > 0
        counts, _ = await _measure([kept, removed, placed, ended], 0.3)
        assert counts[0] > 5
        assert counts[1:] == [0, 0, 0]
        assert removed.frames == stopped_at and placed.frames == ended.frames == 0
        grid.close()

    run(scenario())


def test_frames_missed_while_the_loop_was_blocked_are_sent_late() -> None:
    async def scenario() -> None:
        grid = SendGrid()
        calls = [CountingCall(n) for n in range(SLOTS)]
        for call in calls:
            grid.add(call)
        await asyncio.sleep(0.1)
        before, began = [call.frames for call in calls], time.monotonic()
        await asyncio.sleep(0.3)
        asyncio.get_running_loop().call_soon(time.sleep, 0.1)
        await asyncio.sleep(0.6)
        elapsed = time.monotonic() - began
        counts = [call.frames - old for call, old in zip(calls, before, strict=True)]
        low, high = _rate_bounds(elapsed)
        # without the catch-up, each call would have lost the 5 frames of the 100 ms
        assert all(low + 1 <= count <= high for count in counts), (counts, elapsed)
        assert grid.late_ticks >= SLOTS // 2
        assert grid.max_lateness >= 0.05
        grid.close()

    run(scenario())


def test_close_stops_the_grid() -> None:
    async def scenario() -> None:
        grid = SendGrid()
        call = CountingCall(0)
        grid.add(call)
        await asyncio.sleep(0.1)
        grid.close()
        stopped_at, ticks = call.frames, grid.ticks
        await asyncio.sleep(0.2)
        assert stopped_at > 0
        assert (call.frames, grid.ticks) == (stopped_at, ticks)

    run(scenario())


def test_keys_are_sent_when_the_probe_says() -> None:
    async def scenario() -> None:
        grid = SendGrid()
        call = CountingCall(0)
        call.probe = CallProbe(0, dtmf_every=0.5)
        call.probe.placed(time.monotonic())
        call.probe.answered(time.monotonic())
        grid.add(call)
        await asyncio.sleep(1.0)
        grid.close()
        assert 1 <= len(call.digits) <= 2, call.digits
        assert call.digits == list("123"[: len(call.digits)])

    run(scenario())
