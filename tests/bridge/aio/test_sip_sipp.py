"""SIP calls into ``voxgate serve`` from SIPp (a real SIP peer), through to a real bot.

SIPp comes from Debian's ``sip-tester`` (scripts/setup-sip-peers installs it);
the scenarios are in ``sipp/``. Each test runs ``voxgate serve`` with its SIP
listener on a free UDP port and its own RTP port range.
"""

from __future__ import annotations

import asyncio
import json
import socket
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from scenario import run
from scripted_bot import ScriptedBot
from sipp_peer import (
    DTMF_PCAP,
    ROOT,
    SIPP,
    caller_audio,
    chunks_heard,
    explain,
    free_udp_port,
    rtp_range,
    sip_node,
    sipp,
)

__all__ = ["free_udp_port", "rtp_range"]  # also used by other SIP test modules

pytestmark = pytest.mark.skipif(SIPP is None, reason="SIPp is installed by scripts/test")


@pytest.fixture
def workdir() -> Iterator[Path]:
    with tempfile.TemporaryDirectory(prefix="voxgate-sipp-") as name:
        yield Path(name)


def test_a_call_streams_the_callers_audio_and_digits_to_the_bot(workdir: Path) -> None:
    async def scenario() -> None:
        audio = caller_audio()
        (workdir / "caller.ulaw").write_bytes(audio)
        async with ScriptedBot() as bot, sip_node(workdir, VOXGATE_BOT_URL=bot.url) as port:
            result = await sipp("uac_call.xml", port, workdir)
            assert result.returncode == 0, explain(result, workdir)
            connection = await bot.connection()
            stop = await connection.wait_for_type("stop")
            start = connection.of_type("start")[0]
        assert start["carrier"]["name"] == "sip"
        assert start["from"] == "+15550001111"
        assert start["to"] == "+15557770000"
        assert start["media_format"]["encoding"] == "pcmu"
        assert stop[0]["reason"] == "caller_hangup"
        assert chunks_heard(audio, connection.audio()) >= 0.95
        summary = _rtp_summary(workdir)
        assert summary["rtp_in"] >= 140 and summary["rtp_bad"] == 0
        assert summary["rtp_out"] >= 140  # the echo, and silence when the bot is quiet
        if ROOT and DTMF_PCAP.exists():
            assert [d["digit"] for d in connection.of_type("dtmf")] == ["1"]

    run(scenario(), timeout=90)


def _rtp_summary(workdir: Path) -> dict[str, int]:
    """The figures of the call's ``RTP summary`` log line."""
    for line in (workdir / "serve.log").read_text().splitlines():
        if "RTP summary" in line:
            found: dict[str, int] = json.loads(line[line.index("{") : line.rindex("}") + 1])
            return found
    raise AssertionError("no RTP summary in the log")


def test_the_bot_hanging_up_sends_bye(workdir: Path) -> None:
    async def scenario() -> None:
        async with ScriptedBot() as bot, sip_node(workdir, VOXGATE_BOT_URL=bot.url) as port:
            call = asyncio.ensure_future(sipp("uac_bot_hangs_up.xml", port, workdir))
            connection = await bot.connection(timeout=20)
            start = (await connection.wait_for_type("start"))[0]
            await asyncio.sleep(0.5)  # the call is answered and acknowledged
            await connection.send({"type": "session.hangup"})
            result = await call
            assert result.returncode == 0, explain(result, workdir)
        assert start["carrier"]["name"] == "sip"
        assert start["media_format"]["encoding"] == "pcmu"  # PCMA from the caller, transcoded

    run(scenario(), timeout=90)


def test_cancel_while_ringing_gets_487_and_the_bot_is_let_go(workdir: Path) -> None:
    async def scenario() -> None:
        with socket.socket() as silent:  # a bot that never completes its handshake
            silent.bind(("127.0.0.1", 0))
            silent.listen()
            url = f"ws://127.0.0.1:{silent.getsockname()[1]}/"
            async with sip_node(workdir, VOXGATE_BOT_URL=url) as port:
                result = await sipp("uac_cancel.xml", port, workdir)
                assert result.returncode == 0, explain(result, workdir)
        log = (workdir / "serve.log").read_text()
        assert "caller_hangup" in log

    run(scenario(), timeout=90)


def test_options_is_answered_with_allow(workdir: Path) -> None:
    async def scenario() -> None:
        async with sip_node(workdir) as port:
            result = await sipp("options.xml", port, workdir)
            assert result.returncode == 0, explain(result, workdir)

    run(scenario(), timeout=60)


def test_a_burst_of_100_concurrent_calls_completes_without_failures(workdir: Path) -> None:
    async def scenario() -> None:
        (workdir / "caller.ulaw").write_bytes(caller_audio(2.0))
        async with sip_node(workdir) as port:
            result = await sipp(
                "uac_call.xml", port, workdir, calls=100, rate=50, limit=100, digits=False
            )
            assert result.returncode == 0, explain(result, workdir)

    run(scenario(), timeout=180)


def test_the_bots_transfer_is_a_refer_and_voxgate_leaves_once_it_is_done(workdir: Path) -> None:
    async def scenario() -> None:
        async with ScriptedBot() as bot, sip_node(workdir, VOXGATE_BOT_URL=bot.url) as port:
            call = asyncio.ensure_future(sipp("uac_transferred.xml", port, workdir))
            connection = await bot.connection(timeout=20)
            await connection.wait_for_type("start")
            await asyncio.sleep(0.3)  # answered and acknowledged
            await connection.send({"type": "session.transfer", "target": "+15559990000"})
            stop = (await connection.wait_for_type("stop", timeout=20))[0]
            result = await call
        assert result.returncode == 0, explain(result, workdir)
        assert stop["reason"] == "transferred"

    run(scenario(), timeout=90)


def test_marks_come_back_after_playout_and_clear_returns_them_at_once(workdir: Path) -> None:
    async def scenario() -> None:
        async with ScriptedBot() as bot, sip_node(workdir, VOXGATE_BOT_URL=bot.url) as port:
            call = asyncio.ensure_future(sipp("uac_bot_hangs_up.xml", port, workdir))
            connection = await bot.connection(timeout=20)
            await connection.wait_for_type("start")
            await asyncio.sleep(0.3)
            sent = time.monotonic()
            await connection.send_audio(b"\xff" * 8000)  # 1 s of mu-law silence
            await connection.send({"type": "mark", "name": "first"})
            await connection.wait_for(lambda: bool(connection.of_type("mark")), timeout=10)
            played = time.monotonic() - sent
            await connection.send_audio(b"\xff" * 80000)  # 10 s
            await connection.send({"type": "mark", "name": "second"})
            cleared = time.monotonic()
            await connection.send({"type": "response.audio.clear"})
            await connection.wait_for(lambda: len(connection.of_type("mark")) == 2, timeout=5)
            clear_took = time.monotonic() - cleared
            await connection.send({"type": "session.hangup"})
            result = await call
        assert result.returncode == 0, explain(result, workdir)
        assert [m["name"] for m in connection.of_type("mark")] == ["first", "second"]
        assert 0.9 < played < 3.0  # after the second of audio had played out, not before
        assert clear_took < 1.0  # not after the 10 s

    run(scenario(), timeout=90)


def test_a_dropped_bot_is_reconnected_and_the_sip_call_goes_on(workdir: Path) -> None:
    async def scenario() -> None:
        async with ScriptedBot() as bot, sip_node(workdir, VOXGATE_BOT_URL=bot.url) as port:
            call = asyncio.ensure_future(sipp("uac_bot_hangs_up.xml", port, workdir))
            first = await bot.connection(timeout=20)
            await first.wait_for_type("start")
            await first.socket.close(1011, "bot restarting")
            second = await bot.connection(1, timeout=20)
            start = (await second.wait_for_type("start"))[0]
            await second.send({"type": "session.hangup"})
            result = await call
        assert result.returncode == 0, explain(result, workdir)
        assert start["reconnected"] is True

    run(scenario(), timeout=90)


def test_a_node_of_two_workers_takes_sip_calls_from_several_peers(workdir: Path) -> None:
    """Each worker binds the SIP port (SO_REUSEPORT); the kernel hashes each peer to one."""

    async def scenario() -> None:
        (workdir / "caller.ulaw").write_bytes(caller_audio(1.0))
        async with sip_node(workdir, VOXGATE_WORKERS="2") as port:
            peers = [sipp("uac_call.xml", port, workdir, calls=4, rate=10, digits=False)]
            peers += [sipp("uac_call.xml", port, workdir, calls=4, rate=10, digits=False)]
            peers += [sipp("uac_call.xml", port, workdir, calls=4, rate=10, digits=False)]
            results = await asyncio.gather(*peers)
        for result in results:
            assert result.returncode == 0, explain(result, workdir)
        log = (workdir / "serve.log").read_text()
        assert log.count("call started: sip") == 12
        assert "Traceback" not in log

    run(scenario(), timeout=120)


def test_no_rtp_for_the_rtp_timeout_ends_the_call_with_bye(workdir: Path) -> None:
    async def scenario() -> None:
        env = {"VOXGATE_SIP_RTP_TIMEOUT": "2"}
        async with ScriptedBot() as bot, sip_node(workdir, VOXGATE_BOT_URL=bot.url, **env) as port:
            started = time.monotonic()
            result = await sipp("uac_bot_hangs_up.xml", port, workdir)  # it sends no RTP
            took = time.monotonic() - started
            connection = await bot.connection()
            stop = (await connection.wait_for_type("stop"))[0]
        assert result.returncode == 0, explain(result, workdir)  # it got voxgate's BYE
        assert stop["reason"] == "caller_hangup"
        assert 2.0 <= took < 12.0
        assert "no RTP for" in (workdir / "serve.log").read_text()

    run(scenario(), timeout=90)


def test_the_called_numbers_route_picks_the_bot_and_may_connect_it_after_the_answer(
    workdir: Path,
) -> None:
    """A route whose bot never completes its handshake, connected after the answer: the call
    is answered at once (no ringing for the bot), then the fallback hangs up with BYE."""

    async def scenario() -> None:
        with socket.socket() as silent:
            silent.bind(("127.0.0.1", 0))
            silent.listen()
            bot_port = silent.getsockname()[1]
            config = workdir / "voxgate.toml"
            config.write_text(
                "[bot]\nconnect_timeout = 1.0\nreconnect_for = 0\n\n"
                '[routes."+15557770000"]\n'
                f'url = "ws://127.0.0.1:{bot_port}/"\n'
                "connect_ws_after_answer = 1\n"
            )
            async with sip_node(workdir, VOXGATE_CONFIG=str(config)) as port:
                result = await sipp("uac_bot_hangs_up.xml", port, workdir)
        assert result.returncode == 0, explain(result, workdir)  # 200, then BYE
        log = (workdir / "serve.log").read_text()
        assert f"call started: sip, bot ws://127.0.0.1:{bot_port}/" in log  # the route's bot
        assert '"reason":"bot_unreachable"' in log

    run(scenario(), timeout=90)
