"""``voxgate dial``: outbound calls through a trunk played by SIPp (a real SIP peer)."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from scenario import run
from scripted_bot import ScriptedBot
from sipp_peer import SCENARIOS, SIPP, free_udp_port, rtp_range, sip_node

pytestmark = pytest.mark.skipif(SIPP is None, reason="SIPp is installed by scripts/test")


@pytest.fixture
def workdir() -> Iterator[Path]:
    with tempfile.TemporaryDirectory(prefix="voxgate-dial-") as name:
        yield Path(name)


async def trunk_and_dial(
    workdir: Path, scenario: str, bot_url: str, ring_timeout: float = 10.0, **env: str
) -> tuple[subprocess.CompletedProcess[str], subprocess.CompletedProcess[str]]:
    """SIPp as the trunk (UAS, one call) and ``voxgate dial`` against it, side by side."""
    assert SIPP is not None
    trunk_port = free_udp_port()
    (workdir / scenario).write_text((SCENARIOS / scenario).read_text())
    trunk = asyncio.to_thread(
        subprocess.run,
        [SIPP, "-sf", scenario, "-i", "127.0.0.1", "-p", str(trunk_port), "-mp",
         str(free_udp_port() // 2 * 2), "-m", "1", "-timeout", "40s", "-timeout_error",
         "-trace_err", "-nostdin"],
        cwd=workdir, capture_output=True, text=True, timeout=70, check=False,
    )  # fmt: skip
    trunk_task = asyncio.ensure_future(trunk)
    await asyncio.sleep(0.5)  # SIPp is listening
    low, high = rtp_range()
    clean = {k: v for k, v in os.environ.items() if not k.startswith("VOXGATE_")}
    settings = {
        "VOXGATE_SIP_TRUNK": f"sip:127.0.0.1:{trunk_port}",
        "VOXGATE_SIP_FROM_NUMBER": "+15550001111",
        "VOXGATE_SIP_RTP_PORT_MIN": str(low),
        "VOXGATE_SIP_RTP_PORT_MAX": str(high),
        "VOXGATE_LOG_FORMAT": "text",
        **env,
    }
    command = [sys.executable, "-m", "voxgate", "dial", "+15557770000", "--bot", bot_url]
    command += ["--ring-timeout", str(ring_timeout)]
    dial = await asyncio.to_thread(
        subprocess.run,
        command,
        env={**clean, **settings},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    return dial, await trunk_task


def outcome(dial: subprocess.CompletedProcess[str]) -> dict[str, Any]:
    lines = dial.stdout.strip().splitlines()
    assert lines, dial.stderr[-3000:]
    result: dict[str, Any] = json.loads(lines[-1])
    return result


def test_dial_answers_the_trunks_407_and_bridges_the_answered_call(workdir: Path) -> None:
    async def scenario() -> None:
        async with ScriptedBot() as bot:

            async def hang_up_when_started() -> dict[str, Any]:
                connection = await bot.connection(timeout=30)
                start = (await connection.wait_for_type("start", timeout=30))[0]
                await asyncio.sleep(0.5)
                await connection.send({"type": "session.hangup"})
                return start

            bot_side = asyncio.ensure_future(hang_up_when_started())
            dial, trunk = await trunk_and_dial(
                workdir,
                "uas_auth.xml",
                bot.url,
                VOXGATE_SIP_TRUNK_USERNAME="vg",
                VOXGATE_SIP_TRUNK_PASSWORD="pw",
            )
            start = await bot_side
        assert trunk.returncode == 0, trunk.stdout[-2000:] + dial.stderr[-3000:]
        assert dial.returncode == 0, dial.stderr[-3000:]
        result = outcome(dial)
        assert result["status"] == "completed" and result["answered"]
        assert start["direction"] == "outbound"
        assert start["carrier"]["name"] == "sip"
        assert "pw" not in dial.stderr  # the trunk's password never reaches a log

    run(scenario(), timeout=120)


def test_dial_reports_busy(workdir: Path) -> None:
    async def scenario() -> None:
        async with ScriptedBot() as bot:
            dial, trunk = await trunk_and_dial(workdir, "uas_busy.xml", bot.url)
            assert not bot.connections  # no bot for a call that was never answered
        assert trunk.returncode == 0, trunk.stdout[-2000:]
        assert dial.returncode == 1
        result = outcome(dial)
        assert (result["status"], result["sip_status"]) == ("busy", 486)

    run(scenario(), timeout=120)


def test_dial_gives_up_at_the_ring_timeout_with_cancel(workdir: Path) -> None:
    async def scenario() -> None:
        async with ScriptedBot() as bot:
            started = time.monotonic()
            dial, trunk = await trunk_and_dial(workdir, "uas_no_answer.xml", bot.url, 2.0)
            took = time.monotonic() - started
            assert not bot.connections
        assert trunk.returncode == 0, trunk.stdout[-2000:] + dial.stderr[-3000:]
        assert dial.returncode == 1
        result = outcome(dial)
        assert (result["status"], result["sip_status"]) == ("no-answer", 487)
        assert took < 20  # the ring timeout, not the 32 s transaction timeout

    run(scenario(), timeout=120)


def test_voxgate_registers_with_the_trunk_answering_its_digest_challenge(workdir: Path) -> None:
    async def scenario() -> None:
        assert SIPP is not None
        trunk_port = free_udp_port()
        (workdir / "uas_register.xml").write_text((SCENARIOS / "uas_register.xml").read_text())
        command = [SIPP, "-sf", "uas_register.xml", "-i", "127.0.0.1", "-p", str(trunk_port)]
        command += ["-m", "1", "-timeout", "30s", "-timeout_error", "-trace_err", "-nostdin"]
        run_sipp = asyncio.to_thread(
            subprocess.run,
            command,
            cwd=workdir,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        registrar = asyncio.ensure_future(run_sipp)
        await asyncio.sleep(0.5)
        env = {
            "VOXGATE_SIP_TRUNK": f"sip:127.0.0.1:{trunk_port}",
            "VOXGATE_SIP_REGISTER": "true",
            "VOXGATE_SIP_TRUNK_USERNAME": "vg",
            "VOXGATE_SIP_TRUNK_PASSWORD": "pw",
        }
        async with sip_node(workdir, **env):
            result = await registrar
            log = workdir / "serve.log"
            for _ in range(100):
                if b"registered with the trunk" in log.read_bytes():
                    break
                await asyncio.sleep(0.05)
        assert result.returncode == 0, result.stdout[-2000:] + log.read_text()[-3000:]
        text = log.read_text()
        assert "registered with the trunk for 120 s" in text
        assert "pw" not in text.replace("pcmu", "")  # the password never reaches the log

    run(scenario(), timeout=90)
