"""Test-mode calls through the real bridge: the simulated callee rings, answers, talks to a
real bot over a loopback WebSocket (the built-in echo bot, or a scripted one that records
what it gets), presses digits and hangs up; or it is busy, does not answer, fails."""

from __future__ import annotations

import asyncio
import base64
import math
import time
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from typing import Any

import numpy as np
import pytest
from e2e import unhandled
from scenario import run
from scripted_bot import ScriptedBot

from voxgate.bridge.aio.app import Bridge
from voxgate.bridge.aio.session import CallSession
from voxgate.bridge.aio.simleg import (
    simulated_callee,
    simulated_started,
    start_simulated_call,
)
from voxgate.bridge.call_api import CallEnded
from voxgate.bridge.events import MediaReceived
from voxgate.bridge.simcallee import AudioMeter, CalleeScript, SimulatedCallee
from voxgate.codecs.formats import PCMU_8K
from voxgate.config import load_config
from voxgate.obs import METRICS

ECHO_TRANSFER_TARGET = "+15550100000"  # where the echo bot transfers a call on "0"


@pytest.fixture(autouse=True)
def _no_tracebacks(caplog: pytest.LogCaptureFixture) -> object:
    caplog.set_level("INFO")
    yield
    assert unhandled(caplog.records) == []


@asynccontextmanager
async def _bridge(**env: str) -> AsyncIterator[Bridge]:
    METRICS.reset()
    bridge = Bridge(load_config(None, {"VOXGATE_LOG_FORMAT": "text", **env}))
    await bridge.start()
    try:
        yield bridge
    finally:
        await bridge.stop()


class Listener:
    """What one call reports: its statuses, and its end."""

    def __init__(self) -> None:
        self.statuses: list[tuple[str, dict[str, object]]] = []
        self.ended: CallEnded | None = None
        self.ended_at = 0.0
        self._done = asyncio.Event()

    def on_status(self, status: str, details: Mapping[str, object]) -> None:
        self.statuses.append((status, dict(details)))

    def on_ended(self, session: CallSession, ended: CallEnded) -> None:
        assert self.ended is None, "told once"
        self.ended, self.ended_at = ended, time.monotonic()
        self._done.set()

    async def end(self, timeout: float = 15.0) -> CallEnded:
        await asyncio.wait_for(self._done.wait(), timeout)
        assert self.ended is not None
        return self.ended


async def _call(
    bridge: Bridge,
    script: CalleeScript,
    call_id: str = "vx-test-1",
    params: Mapping[str, str] | None = None,
) -> tuple[CallSession | None, Listener]:
    listener = Listener()
    session = await start_simulated_call(
        bridge,
        call_id=call_id,
        started=simulated_started(call_id, "+15550001111", "+15550002222", params),
        script=script,
        on_status=listener.on_status,
        on_ended=listener.on_ended,
    )
    return session, listener


async def _no_calls_left(bridge: Bridge) -> None:
    """The call has left the bridge, and the only place (max_calls 1) is free again."""
    async with asyncio.timeout(5):
        while bridge.sessions:
            await asyncio.sleep(0.01)
    assert bridge.reserve()
    bridge.release()


def _sent(script: CalleeScript) -> bytes:
    """Every frame a callee following ``script`` sends, from its answer to its hangup."""
    events = SimulatedCallee(script, PCMU_8K, 0.0).tick(math.inf)
    return b"".join(e.payload for e in events if isinstance(e, MediaReceived))


@pytest.mark.parametrize("params", [{}, {"bot_audio": "pcm16/16000"}], ids=["pcmu", "pcm16"])
def test_the_prompt_comes_back_through_the_echo_bot_and_the_callee_hangs_up(
    params: dict[str, str],
) -> None:
    async def scenario() -> None:
        async with _bridge(VOXGATE_MAX_CALLS="1") as bridge:
            script = CalleeScript(ring=0.1, hangup_after=2.5)
            started = time.monotonic()
            session, listener = await _call(bridge, script, params=params)
            assert session is not None
            assert time.monotonic() - started >= 0.1
            answered = time.monotonic()
            ended = await listener.end()
            assert ended.reason == "caller_hangup"
            assert 2.3 <= listener.ended_at - answered <= 4.0
            assert listener.statuses == [
                ("ringing", {"ring": 0.1}),
                ("in-progress", {"call_id": "vx-test-1"}),
            ]
            callee = simulated_callee(session)
            assert callee is not None
            prompt = AudioMeter(PCMU_8K)
            prompt.feed(callee.prompt)
            heard = callee.heard
            assert heard.ended_by == "callee"
            assert heard.voiced_seconds == pytest.approx(prompt.voiced_seconds, abs=0.061)
            assert heard.rms_dbfs is not None and prompt.rms_dbfs is not None
            assert heard.rms_dbfs == pytest.approx(prompt.rms_dbfs, abs=1.0)
            assert heard.first_voice_after is not None and heard.first_voice_after < 0.5
            assert 1.8 <= heard.seconds <= 2.5  # the echo of all it said, less the way back
            await _no_calls_left(bridge)

    run(scenario())


def test_a_scripted_digit_and_every_frame_reach_the_bot_in_order() -> None:
    async def scenario() -> None:
        async with _bridge() as bridge, ScriptedBot() as bot:
            audio = np.random.default_rng(5).integers(0, 256, 4000, np.uint8).tobytes()
            script = CalleeScript.from_dict(
                {
                    "ring": 0,
                    "prompt_audio": base64.b64encode(audio).decode(),
                    "digits": [{"at": 0.3, "digit": "5"}],
                    "hangup_after": 1.0,
                }
            )
            session, listener = await _call(bridge, script, params={"wss_url": bot.url})
            assert session is not None
            connection = await bot.connection()
            stop = await connection.wait_for_type("stop", timeout=10)
            assert stop[0]["reason"] == "caller_hangup"
            start = connection.of_type("start")[0]
            assert (start["call_id"], start["from"], start["to"]) == (
                "vx-test-1",
                "+15550002222",
                "+15550001111",
            )
            assert start["direction"] == "outbound"
            dtmf = connection.of_type("dtmf")
            assert dtmf == [
                {"type": "dtmf", "digit": "5", "duration_ms": 100, "method": "simulated"}
            ]
            media = connection.of_type("media")
            assert [m["timestamp_ms"] for m in media] == list(range(0, 1000, 20))
            assert connection.audio() == _sent(script)
            assert connection.audio()[:4000] == audio
            assert (await listener.end()).reason == "caller_hangup"

    run(scenario())


@pytest.mark.parametrize(
    ("outcome", "status", "reason"),
    [
        ("busy", "busy", "busy"),
        ("no-answer", "no-answer", "no_answer"),
        ("fail", "failed", "rejected"),
    ],
)
def test_an_unanswered_call_reports_its_status_and_holds_no_place(
    outcome: Any, status: str, reason: str
) -> None:
    async def scenario() -> None:
        async with _bridge(VOXGATE_MAX_CALLS="1") as bridge:
            started = time.monotonic()
            session, listener = await _call(bridge, CalleeScript(ring=0.2, answer=outcome))
            assert session is None
            assert time.monotonic() - started >= 0.2
            assert listener.statuses == [("ringing", {"ring": 0.2}), (status, {"reason": reason})]
            assert listener.ended is None
            await _no_calls_left(bridge)

    run(scenario())


def test_a_callee_ringing_past_the_ring_timeout_has_not_answered() -> None:
    async def scenario() -> None:
        async with _bridge(VOXGATE_MAX_CALLS="1") as bridge:
            listener = Listener()
            started = time.monotonic()
            session = await start_simulated_call(
                bridge,
                call_id="vx-test-1",
                started=simulated_started("vx-test-1", "+1555", None),
                script=CalleeScript(ring=30),
                on_status=listener.on_status,
                ring_timeout=0.2,
            )
            assert session is None
            assert 0.2 <= time.monotonic() - started < 5
            assert listener.statuses[-1] == ("no-answer", {"reason": "no_answer"})
            await _no_calls_left(bridge)

    run(scenario())


def test_no_room_means_failed_for_capacity() -> None:
    async def scenario() -> None:
        async with _bridge(VOXGATE_MAX_CALLS="1") as bridge:
            assert bridge.reserve()  # another call holds the only place
            session, listener = await _call(bridge, CalleeScript(ring=0))
            assert session is None
            assert listener.statuses == [("failed", {"reason": "capacity"})]
            bridge.release()
            await _no_calls_left(bridge)

    run(scenario())


def test_bad_bot_settings_fail_the_call_with_the_reason() -> None:
    async def scenario() -> None:
        async with _bridge(VOXGATE_MAX_CALLS="1") as bridge:
            params = {"bot_dialect": "klingon"}
            session, listener = await _call(bridge, CalleeScript(ring=0), params=params)
            assert session is None
            assert [s for s, _ in listener.statuses] == ["ringing", "failed"]
            details = listener.statuses[1][1]
            assert details["reason"] == "bad_parameters"
            assert "klingon" in str(details["detail"])
            await _no_calls_left(bridge)

    run(scenario())


def test_hanging_up_while_it_rings_gives_the_place_back() -> None:
    async def scenario() -> None:
        async with _bridge(VOXGATE_MAX_CALLS="1") as bridge:
            listener = Listener()
            task = asyncio.create_task(
                start_simulated_call(
                    bridge,
                    call_id="vx-test-1",
                    started=simulated_started("vx-test-1", "+1555", None),
                    script=CalleeScript(ring=30),
                    on_status=listener.on_status,
                )
            )
            async with asyncio.timeout(5):
                while not listener.statuses:
                    await asyncio.sleep(0.01)
            assert not bridge.reserve()  # the ringing call holds the place
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            await _no_calls_left(bridge)

    run(scenario())


def test_a_bot_that_hangs_up_ends_the_call_and_the_callee_sees_it() -> None:
    async def scenario() -> None:
        async with _bridge(VOXGATE_MAX_CALLS="1") as bridge:
            script = CalleeScript.from_dict({"ring": 0, "digits": "#", "digits_at": 0.5})
            script = CalleeScript(ring=0, digits=script.digits, hangup_after=None)
            session, listener = await _call(bridge, script)  # the echo bot hangs up on "#"
            assert session is not None
            callee = simulated_callee(session)
            assert callee is not None
            ended = await listener.end()
            assert ended.reason == "bot_hangup"
            assert callee.ended_by == "bridge"
            assert callee.next_due() is None
            assert callee.heard.voiced_seconds > 0.3  # the prompt's echo, played out first
            await _no_calls_left(bridge)

    run(scenario())


def test_a_transfer_takes_the_callee_away_and_ends_the_call_transferred() -> None:
    async def scenario() -> None:
        async with _bridge(VOXGATE_MAX_CALLS="1") as bridge:
            script = CalleeScript.from_dict({"ring": 0, "digits": "0", "digits_at": 0.2})
            session, listener = await _call(bridge, script)  # the echo bot transfers on "0"
            assert session is not None
            ended = await listener.end()
            assert ended.reason == "transferred"
            callee = simulated_callee(session)
            assert callee is not None
            assert (callee.ended_by, callee.transfer_to) == ("transfer", ECHO_TRANSFER_TARGET)
            await _no_calls_left(bridge)

    run(scenario())


def test_two_calls_at_once_do_not_mix() -> None:
    async def scenario() -> None:
        async with _bridge() as bridge, ScriptedBot() as bot:
            scripts = {
                "vx-test-a": CalleeScript(ring=0.05, digits=_presses("1"), hangup_after=1.2),
                "vx-test-b": CalleeScript(
                    ring=0.1, prompt="speech", digits=_presses("29"), hangup_after=1.6, seed=9
                ),
            }
            calls = await asyncio.gather(
                *(
                    _call(bridge, script, call_id, params={"wss_url": bot.url})
                    for call_id, script in scripts.items()
                )
            )
            for _, listener in calls:
                assert (await listener.end()).reason == "caller_hangup"
            await asyncio.gather(*(c.wait_for_type("stop") for c in bot.connections))
            assert len(bot.connections) == 2
            for connection in bot.connections:
                call_id = connection.of_type("start")[0]["call_id"]
                script = scripts[call_id]
                digits = "".join(m["digit"] for m in connection.of_type("dtmf"))
                assert digits == "".join(digit for _, digit in script.digits)
                assert connection.audio() == _sent(script)
            for session, _ in calls:
                assert session is not None
                assert simulated_callee(session) is not None
                assert bridge.sessions.get(session.call_id) is None

    run(scenario())


def _presses(digits: str) -> Any:
    return CalleeScript.from_dict(
        {"digits": digits, "digits_at": 0.2, "digit_interval": 0.3}
    ).digits


def test_stopping_the_bridge_ends_a_call_under_way() -> None:
    async def scenario() -> None:
        async with _bridge() as bridge:
            session, listener = await _call(bridge, CalleeScript(ring=0, hangup_after=None))
            assert session is not None
            await asyncio.sleep(0.3)
            await bridge.stop()
            assert (await listener.end(timeout=2)).reason == "shutdown"
            callee = simulated_callee(session)
            assert callee is not None
            assert callee.ended_by == "bridge"

    run(scenario())
