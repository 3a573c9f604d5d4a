"""Carriers (or what poses as one) sending what no carrier should.

Each scenario runs beside a healthy call on a real ``voxgate serve`` (see faultbench.py).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import itertools
import json
import time
from pathlib import Path

from carrier import CarrierEmulator
from faultbench import Bench, Findings, caller_to, paced, run_fault, twilio_media
from scripted_bot import BotConnection, ScriptedBot
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

FRAME = 160  # 20 ms of mu-law at 8 kHz


def _frame(marker: int) -> bytes:
    return bytes([marker]) * FRAME


def _media_with(connection: BotConnection, marker: int) -> int:
    """How many of the bot's caller-audio messages hold this marker's frame."""
    frame = _frame(marker)
    return sum(base64.b64decode(m["audio"]) == frame for m in connection.of_type("media"))


def test_close_reasons_reach_the_carrier_whole_even_when_non_ascii(tmp_path: Path) -> None:
    """Streams refused at ``start`` with a reason quoting 200 non-ASCII characters: the
    carrier gets a real close frame, code 1008 (not 1006), reason within 123 bytes."""

    async def refused(bench: Bench, params: dict[str, str]) -> str | None:
        url = bench.served.stream_url("twilio")
        async with CarrierEmulator(url, "twilio", custom_parameters=params) as caller:
            code = await caller.wait_for_close(timeout=5)
            reason = caller.close_reason or ""
        if code != 1008:
            return f"{list(params)}: close code {code}, not 1008"
        if not reason or len(reason.encode()) > 123:
            return f"{list(params)}: close reason {reason!r}"
        return None

    async def hostile(bench: Bench) -> None:
        results = await asyncio.gather(
            refused(bench, {"wss_url": "ftp://" + "é" * 200}),
            refused(bench, {"wss_url": "ws://127.0.0.1:9/", "bot_audio": "é" * 200}),
        )
        problems = [result for result in results if result]
        assert not problems, "\n".join(problems)

    run_fault(tmp_path / "voxgate.log", hostile)


def test_chunk_numbers_that_jump_or_restart_do_not_mute_the_caller(tmp_path: Path) -> None:
    """Twilio chunk numbers jumping by 10^9 for good or for one frame, and restarting at 1:
    the bot keeps getting the caller's audio afterwards."""

    async def stream(bench: Bench, kind: str, chunks_after: list[int]) -> str | None:
        async with ScriptedBot() as bot, caller_to(bench.served, bot.url) as caller:
            connection = await bot.connection(timeout=10)
            await connection.wait_for_type("start", timeout=10)
            sid = caller.stream_id
            before = [
                twilio_media(sid, n + 2, str(n + 1), str(n * 20), _frame(0x11)) for n in range(50)
            ]
            after = [
                twilio_media(sid, 52 + i, str(chunk), str((50 + i) * 20), _frame(0x22))
                for i, chunk in enumerate(chunks_after)
            ]
            await paced(before + after, caller.send_raw, per_second=50)
            await asyncio.sleep(0.3)
            heard_before, heard_after = _media_with(connection, 0x11), _media_with(connection, 0x22)
            await caller.hang_up()
        if heard_before < 45 or heard_after < 40:
            return (
                f"{kind}: the bot got {heard_before}/50 frames before, "
                f"{heard_after}/{len(chunks_after)} after"
            )
        return None

    async def hostile(bench: Bench) -> None:
        results = await asyncio.gather(
            stream(bench, "jump by 10^9", [10**9 + 51 + i for i in range(50)]),
            stream(bench, "one frame 10^9 ahead", [10**9 + 51] + [52 + i for i in range(49)]),
            stream(bench, "restart at 1", [1 + i for i in range(50)]),
        )
        problems = [result for result in results if result]
        assert not problems, "\n".join(problems)

    run_fault(tmp_path / "voxgate.log", hostile)


def test_absurd_carrier_timestamps_never_reach_the_bot(tmp_path: Path) -> None:
    """Carrier timestamps of 10^30 (as a JSON number and as a string), 1e30 and negative:
    the bot's ``timestamp_ms`` stay within the call's span and never decrease."""

    async def hostile(bench: Bench) -> None:
        async with ScriptedBot() as bot, caller_to(bench.served, bot.url) as caller:
            connection = await bot.connection(timeout=10)
            await connection.wait_for_type("start", timeout=10)
            sid = caller.stream_id
            stamps: list[object] = [str(n * 20) for n in range(20)]
            stamps += [10**30] * 8 + ["1e30"] * 8 + [str(10**30)] * 8 + ["-5", -5] * 4
            stamps += [str((n + 52) * 20) for n in range(10)] + [-(10**30)] * 8
            stamps += [str((n + 70) * 20) for n in range(15)]
            messages = [
                twilio_media(sid, n + 2, str(n + 1), stamp, _frame(0x33 if n >= 70 else 0x11))
                for n, stamp in enumerate(stamps)
            ]
            await paced(messages, caller.send_raw, per_second=50)
            await asyncio.sleep(0.3)
            await caller.hang_up()
        times = [m.get("timestamp_ms") for m in connection.of_type("media")]
        findings = Findings()
        findings.check(all(isinstance(t, int) for t in times), f"non-integer stamps {times[:5]}")
        numbers = [t for t in times if isinstance(t, int)]
        insane = [t for t in numbers if not 0 <= t <= 3_600_000]
        findings.check(not insane, f"timestamps outside the call: {insane[:3]}")
        falls = [(a, b) for a, b in itertools.pairwise(numbers) if b < a]
        findings.check(not falls, f"timestamps going down: {falls[:3]}")
        findings.check(_media_with(connection, 0x33) >= 10, "the caller's audio stopped")
        findings.verify()

    run_fault(tmp_path / "voxgate.log", hostile)


def test_a_start_over_the_size_limit_closes_the_socket(tmp_path: Path) -> None:
    """A Twilio ``start`` of 300 KB (a huge custom parameter): closed with 1009 or 1008 and a
    reason, not left open without a call."""

    async def hostile(bench: Bench) -> None:
        start = {
            "event": "start",
            "sequenceNumber": "1",
            "start": {
                "accountSid": "AC" + "0" * 32,
                "streamSid": "MZ" + "0" * 32,
                "callSid": "CA" + "0" * 32,
                "tracks": ["inbound"],
                "customParameters": {"huge": "x" * (300 * 1024)},
                "mediaFormat": {"encoding": "audio/x-mulaw", "sampleRate": 8000, "channels": 1},
            },
            "streamSid": "MZ" + "0" * 32,
        }
        async with connect(bench.served.stream_url(), max_size=2**22, close_timeout=2) as ws:
            await ws.send(json.dumps({"event": "connected", "protocol": "Call", "version": "1"}))
            await ws.send(json.dumps(start))
            try:
                async with asyncio.timeout(5):
                    await ws.wait_closed()
            except TimeoutError:
                raise AssertionError("a start of 300 KB left the socket open") from None
            assert ws.close_code in (1008, 1009), ws.close_code
            assert ws.close_reason, "closed without a reason"

    run_fault(tmp_path / "voxgate.log", hostile)


def test_a_stream_far_faster_than_real_time_is_cut_down_then_closed(tmp_path: Path) -> None:
    """900 frames a second (18 times real time): the bot gets no more than about 3 times
    real time (server.max_inbound_rate) plus a burst, and the stream is closed with 1008
    once it has kept exceeding for about 5 s."""
    seconds = 9.0

    async def hostile(bench: Bench) -> None:
        async with ScriptedBot() as bot, caller_to(bench.served, bot.url) as caller:
            connection = await bot.connection(timeout=10)
            await connection.wait_for_type("start", timeout=10)
            sid = caller.stream_id
            count = int(900 * seconds)
            messages = [
                twilio_media(sid, n + 2, str(n + 1), str(n * 20), _frame(0x44))
                for n in range(count)
            ]
            started = time.monotonic()
            with contextlib.suppress(ConnectionClosed):
                await paced(messages, caller.send_raw, per_second=900)
            took = time.monotonic() - started
            await asyncio.gather(caller.wait_for_close(timeout=1), return_exceptions=True)
            await asyncio.sleep(0.2)
            got = _media_with(connection, 0x44)
            await caller.hang_up()
        findings = Findings()
        bound = 150 + 150 * took + 50  # 3 s burst, 3x real time, some slack
        findings.check(
            got <= bound, f"the bot got {got} frames in {took:.1f} s (bound {bound:.0f})"
        )
        findings.check(
            caller.close_code == 1008,
            f"closed with {caller.close_code} {caller.close_reason!r} after {took:.1f} s, not 1008",
        )
        findings.check(took <= 8.5, f"closed only after {took:.1f} s")
        findings.verify()

    run_fault(tmp_path / "voxgate.log", hostile, timeout=60)
