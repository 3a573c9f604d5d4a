"""A load test's session over an in-memory transport: calls placed at the ramp rate, a
transport that raises, the per-second snapshots, the hang-up and run_load's phases."""

from __future__ import annotations

import asyncio
import logging
import time

import pytest
from scenario import run

from voxgate.loadtest.node import NodeWatch
from voxgate.loadtest.probe import CallProbe, Samples
from voxgate.loadtest.runner import LoadSession, run_load


class QuietCall:
    """An answered call that returns nothing; it notes its hang-up and the session's phase."""

    def __init__(self, probe: CallProbe, session: LoadSession | None) -> None:
        self.probe = probe
        self.session = session
        self.hung_up_in: str | None = None
        self.ended = asyncio.Event()

    def send_audio(self, samples: Samples) -> None:
        return None

    def send_dtmf(self, digit: str) -> None:
        return None

    def hangup(self) -> None:
        self.hung_up_in = self.session.phase if self.session else ""
        asyncio.get_running_loop().call_later(0.01, self._closed)

    def _closed(self) -> None:
        self.probe.ended("local_hangup", time.monotonic())
        self.ended.set()

    async def wait_ended(self, timeout: float) -> bool:
        try:
            await asyncio.wait_for(self.ended.wait(), timeout)
        except TimeoutError:
            return False
        return True


class Dialer:
    """Places calls in memory, noting when and in which phase; call ``fail_index`` raises."""

    def __init__(self, fail_index: int | None = None) -> None:
        self.fail_index = fail_index
        self.session: LoadSession | None = None
        self.dialled_at: list[float] = []
        self.phases: list[str] = []
        self.calls: list[QuietCall] = []

    async def dial(self, probe: CallProbe) -> QuietCall:
        self.dialled_at.append(time.monotonic())
        self.phases.append(self.session.phase if self.session else "")
        probe.placed(time.monotonic())
        await asyncio.sleep(0.005)
        if probe.figures.index == self.fail_index:
            raise ConnectionResetError("the transport broke")
        probe.answered(time.monotonic())
        call = QuietCall(probe, self.session)
        self.calls.append(call)
        return call

    def session_of(self) -> LoadSession:
        self.session = LoadSession(self.dial, NodeWatch())
        return self.session


def test_add_calls_places_them_at_the_ramp_rate() -> None:
    async def scenario() -> None:
        dialer = Dialer()
        session = dialer.session_of()
        began = time.monotonic()
        await session.add_calls(10, ramp=20.0)
        assert len(dialer.calls) == 10, "every call placed before add_calls returns"
        assert session.active == 10 and session.grid.calls == 10
        offsets = [at - began for at in dialer.dialled_at]
        for n, offset in enumerate(offsets):
            assert n / 20 - 0.005 <= offset <= n / 20 + 0.25, (n, offsets)
        assert offsets[-1] >= 0.44
        await session.add_calls(2, ramp=20.0)
        assert [probe.figures.index for probe in session.probes] == list(range(12))
        await session.hang_up()
        await session.stop()

    run(scenario())


def test_a_dial_that_raises_is_a_failure_and_the_others_go_on(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async def scenario() -> None:
        dialer = Dialer(fail_index=2)
        session = dialer.session_of()
        await session.add_calls(5, ramp=100.0)
        broken = session.probes[2].figures
        assert (broken.status, broken.failure) == ("failed", "error_ConnectionResetError")
        assert [p.figures.status for p in session.probes] == ["answered"] * 2 + ["failed"] + [
            "answered"
        ] * 2
        assert len(session.calls) == 4 and session.active == 4
        point = await session.snapshot()
        assert (point.answered, point.failed, point.active) == (4, 1, 4)
        await session.hang_up()
        await session.stop()

    with caplog.at_level(logging.ERROR, logger="voxgate.loadtest"):
        run(scenario())
    assert any("placing call 2 failed" in record.getMessage() for record in caplog.records)


def test_snapshot_takes_only_what_is_new_since_the_last_one() -> None:
    async def scenario() -> None:
        dialer = Dialer()
        session = dialer.session_of()
        await session.add_calls(2, ramp=100.0)
        first, second = (probe.figures for probe in session.probes)
        first.latencies_ms += [5.0, 6.0]
        first.frames_expected, first.frames_lost, first.frames_late = 50, 1, 2
        point = await session.snapshot()
        assert (point.latencies_ms, point.frames, point.lost, point.late) == ([5.0, 6.0], 50, 1, 2)
        assert point.calls_per_s == 2.0 and point.answered == 2
        first.latencies_ms.append(7.0)
        second.latencies_ms.append(8.0)
        first.frames_expected, second.frames_expected, second.frames_lost = 75, 25, 3
        point = await session.snapshot()
        assert (point.latencies_ms, point.frames, point.lost, point.late) == ([7.0, 8.0], 50, 3, 0)
        assert point.calls_per_s == 0.0
        point = await session.snapshot()
        assert (point.latencies_ms, point.frames, point.lost, point.late) == ([], 0, 0, 0)
        assert len(session.timeline) == 3
        assert [p.t for p in session.timeline] == sorted(p.t for p in session.timeline)
        assert point.cpu_percent is None and point.rss_mib is None  # no node source
        assert point.generator_cpu_percent is not None
        await session.hang_up()
        await session.stop()

    run(scenario())


def test_hang_up_ends_every_call_and_stops_the_grid() -> None:
    async def scenario() -> None:
        dialer = Dialer()
        session = dialer.session_of()
        await session.add_calls(6, ramp=100.0)
        await session.hang_up()
        assert all(call.hung_up_in is not None for call in dialer.calls)
        assert all(call.ended.is_set() for call in dialer.calls)
        assert [p.figures.status for p in session.probes] == ["completed"] * 6
        assert session.active == 0 and session.grid.calls == 0
        await session.stop()

    run(scenario())


def test_run_load_ramps_holds_and_hangs_up() -> None:
    async def scenario() -> None:
        dialer = Dialer()
        session = dialer.session_of()
        began = time.monotonic()
        await run_load(session, calls=4, ramp=20.0, duration=1.2)
        elapsed = time.monotonic() - began
        await session.stop()
        assert 1.35 <= elapsed < 10.0
        assert dialer.phases == ["ramp"] * 4
        assert [call.hung_up_in for call in dialer.calls] == ["hang-up"] * 4
        phases = [point.phase for point in session.timeline]
        assert "hold" in phases, phases
        assert phases[-1] == "hang-up" and session.timeline[-1].active == 0
        order = {"ramp": 0, "hold": 1, "hang-up": 2}
        assert [order[phase] for phase in phases] == sorted(order[phase] for phase in phases)
        assert session.timeline[0].active == 4
        assert {point.as_json()["target_calls"] for point in session.timeline} == {4}

    run(scenario())
