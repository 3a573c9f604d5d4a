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
from collections.abc import Iterator
from pathlib import Path

import pytest
from e2e import run
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
