"""Bots that flood voxgate: audio to transcode, transcripts, marks.

Each scenario runs beside a healthy call on a real ``voxgate serve`` (see
faultbench.py): whatever the flooding bot does, the other call keeps every
frame and its pacing, ``/healthz`` answers at once, memory stays bounded, and
the flooding bot fills only its own bounded buffers, told so by an ``error``.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

from faultbench import Bench, audio_delta, caller_to, noise, run_fault
from scripted_bot import BotConnection, ScriptedBot
from websockets.exceptions import ConnectionClosed

WIDE = "pcm16/48000"  # 12 times the bytes of the caller's mu-law, and a resampler on the way


def _codes(connection: BotConnection) -> list[str]:
    return [str(error.get("code")) for error in connection.of_type("error")]


async def _flood(connection: BotConnection, messages: list[str], seconds: float) -> int:
    """Send ``messages`` as fast as the socket takes them, for at most ``seconds``; how many."""
    sent = 0
    try:
        async with asyncio.timeout(seconds):
            for message in messages:
                await connection.send(message)
                sent += 1
    except (TimeoutError, ConnectionClosed):
        pass
    return sent


def test_two_minutes_of_audio_to_transcode_at_once_leave_the_other_call_alone(
    tmp_path: Path,
) -> None:
    """The flood starts as the healthy call starts and lasts as long as it takes."""

    async def hostile(bench: Bench) -> None:
        chunk = audio_delta(noise(0.1, seed=11, rate=48000, width=2))
        async with ScriptedBot() as bot, caller_to(bench.served, bot.url, bot_audio=WIDE) as caller:
            connection = await bot.connection(timeout=10)
            await connection.wait_for_type("start", timeout=10)
            await bench.healthy_started.wait()
            sent = await _flood(connection, [chunk] * 1200, seconds=20)  # 2 min in 100 ms
            await caller.wait_for(lambda: len(caller.media) >= 100, timeout=10)
            assert sent == 1200, f"only {sent} of 1200 chunks taken in 20 s"
            await caller.hang_up()

    run_fault(tmp_path / "voxgate.log", hostile)


def test_audio_beyond_the_queue_bound_slows_the_bot_down(tmp_path: Path) -> None:
    """call.max_queued_audio = 30 s; the bot tries to send 300 s at once.

    voxgate stops reading its socket while the queue is full, so TCP slows the bot
    down: after 10 s it has not managed to send it all, nothing was refused, the
    caller hears the bot's audio, and memory stays bounded (the bench's watchdog).
    """

    async def hostile(bench: Bench) -> None:
        chunk = audio_delta(noise(0.1, seed=12, rate=48000, width=2))
        async with ScriptedBot() as bot, caller_to(bench.served, bot.url, bot_audio=WIDE) as caller:
            connection = await bot.connection(timeout=10)
            await connection.wait_for_type("start", timeout=10)
            await bench.healthy_started.wait()
            sent = await _flood(connection, [chunk] * 3000, seconds=10)
            assert sent < 3000, "300 s of audio went in within 10 s: no backpressure"
            assert not connection.closed.is_set(), "the bot was closed instead of slowed down"
            assert _codes(connection) == [], f"the bot was refused: {_codes(connection)[:5]}"
            await caller.wait_for(lambda: len(caller.media) >= 250, timeout=10)  # it plays on
            await caller.hang_up()

    run_fault(tmp_path / "voxgate.log", hostile, env={"VOXGATE_MAX_QUEUED_AUDIO": "30"})


def test_a_transcript_flood_is_bounded_and_never_logged(tmp_path: Path) -> None:
    """500 transcripts of 200 KB (100 MB): memory stays put, ``queue_full``, no words logged."""
    words = "the caller said their account number out loud "
    text = (words * (200_000 // len(words)))[:200_000]
    message = json.dumps({"type": "transcript", "role": "caller", "text": text, "final": True})

    async def hostile(bench: Bench) -> None:
        async with ScriptedBot() as bot, caller_to(bench.served, bot.url) as caller:
            connection = await bot.connection(timeout=10)
            await connection.wait_for_type("start", timeout=10)
            await bench.healthy_started.wait()
            await _flood(connection, [message] * 500, seconds=25)
            if not connection.closed.is_set():
                with_error = lambda: "queue_full" in _codes(connection)  # noqa: E731
                await asyncio.gather(connection.wait_for(with_error, 3), return_exceptions=True)
            assert "queue_full" in _codes(connection), (
                f"no queue_full error for 100 MB of transcripts; errors: {_codes(connection)[:5]}"
            )
            await caller.hang_up()

    log_path = tmp_path / "voxgate.log"
    run_fault(log_path, hostile)
    assert "account number" not in log_path.read_text(), "the caller's words reached the log"


def test_marks_with_huge_names_are_refused(tmp_path: Path) -> None:
    """300 marks with names of 200 KB: each refused with an error, none held or forwarded."""
    messages = [
        json.dumps({"type": "mark", "name": f"{index:03d}" + "n" * 200_000}) for index in range(300)
    ]

    async def hostile(bench: Bench) -> None:
        async with ScriptedBot() as bot, caller_to(bench.served, bot.url) as caller:
            connection = await bot.connection(timeout=10)
            await connection.wait_for_type("start", timeout=10)
            await connection.send_audio(noise(5.0, seed=13))  # so that the marks would wait
            await bench.healthy_started.wait()
            await _flood(connection, messages, seconds=20)
            await asyncio.sleep(0.5)
            forwarded = [e.get("mark", {}) for e in caller.events if e.get("event") == "mark"]
            long_names = [m for m in forwarded if len(str(m.get("name", "")).encode()) > 65536]
            assert long_names == [], f"{len(long_names)} marks of 200 KB reached the carrier"
            assert connection.of_type("error") or connection.closed.is_set(), (
                "300 marks of 200 KB were accepted without an error"
            )
            await caller.hang_up()

    run_fault(tmp_path / "voxgate.log", hostile)


def test_mark_bursts_close_no_peer_that_drains_its_socket(tmp_path: Path) -> None:
    """5,000 marks behind 1 s of audio, and 10,000 marks from a reading bot (max_marks 10000):
    every mark is reported, in order, and neither the carrier leg nor the bot is closed."""

    async def burst(bench: Bench, count: int, audio_seconds: float) -> None:
        names = [f"m{index}" for index in range(count)]
        messages = [json.dumps({"type": "mark", "name": name}) for name in names]
        async with ScriptedBot() as bot, caller_to(bench.served, bot.url) as caller:
            connection = await bot.connection(timeout=10)
            await connection.wait_for_type("start", timeout=10)
            if audio_seconds:
                await connection.send_audio(noise(audio_seconds, seed=14))
            for message in messages:
                await connection.send(message)

            def reported() -> bool:
                return len(connection.of_type("mark")) >= count or connection.closed.is_set()

            outcome = await asyncio.gather(
                connection.wait_for(reported, 25), return_exceptions=True
            )
            got = [str(mark.get("name")) for mark in connection.of_type("mark")]
            where = f"{count} marks behind {audio_seconds} s of audio"
            assert not caller.closed.is_set(), (
                f"{where}: the carrier leg was closed ({caller.close_code} {caller.close_reason!r})"
            )
            assert not connection.closed.is_set(), f"{where}: the bot was closed"
            assert not isinstance(outcome[0], BaseException), f"{where}: {len(got)} reported"
            assert got == names, f"{where}: reported out of order"
            await caller.hang_up()

    async def hostile(bench: Bench) -> None:
        results = await asyncio.gather(
            burst(bench, 5000, 1.0), burst(bench, 10_000, 0.0), return_exceptions=True
        )
        problems = [repr(result) for result in results if isinstance(result, BaseException)]
        assert not problems, "\n".join(problems)

    run_fault(tmp_path / "voxgate.log", hostile, env={"VOXGATE_MAX_MARKS": "10000"}, timeout=60)
