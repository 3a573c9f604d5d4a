"""The SIPp scenarios voxgate ships for SREs (voxgate/loadtest/sipp/), run as documented.

Each scenario runs with SIPp (Debian's ``sip-tester``) against a real
``voxgate serve`` with SIP and its built-in echo bot: 5 calls at 5 per second,
each ~2 s long. SIPp must exit 0 with every call successful (its -trace_stat
csv), and voxgate's /metrics must count RTP packets in and out for those calls.
The command is the one the scenarios' header comments give, plus what a test
needs: loopback addresses, free ports, a global timeout.
"""

from __future__ import annotations

import asyncio
import contextlib
import csv
import json
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Final

import httpx
import numpy as np
import pytest
from scenario import run
from served import voxgate_serve
from sipp_peer import DTMF_PCAP, ROOT, free_udp_port, rtp_range

import voxgate.loadtest
from voxgate.codecs.g711 import ulaw_decode, ulaw_encode

SIPP: Final = shutil.which("sipp")
SHIPPED: Final = Path(voxgate.loadtest.__file__).parent / "sipp"
AUDIO: Final = SHIPPED / "caller.ulaw"
CALLS: Final = 5
RATE: Final = 5
CALL_MS: Final = 2000

pytestmark = pytest.mark.skipif(SIPP is None, reason="SIPp is installed by scripts/test")


def speechlike(seconds: float = 2.4, silence: float = 1.6) -> bytes:
    """How caller.ulaw was made: a voice-like buzz (120 Hz and its harmonics, a slow
    vibrato, four syllables a second), then silence; 8 kHz mu-law."""
    t = np.arange(int(8000 * seconds)) / 8000
    pitch = 2 * np.pi * (120 * t + 3 * np.sin(2 * np.pi * 0.7 * t))
    voice = sum(np.sin(k * pitch) / k for k in range(1, 16))
    syllables = np.sin(np.pi * 4 * t) ** 2
    talk = (5000 * voice * syllables).astype(np.int16)
    return ulaw_encode(np.concatenate([talk, np.zeros(int(8000 * silence), np.int16)])).tobytes()


@pytest.fixture
def workdir() -> Iterator[Path]:
    with tempfile.TemporaryDirectory(prefix="voxgate-sipp-loadtest-") as name:
        yield Path(name)


@contextlib.asynccontextmanager
async def sip_serve(workdir: Path) -> AsyncIterator[tuple[int, int]]:
    """``voxgate serve`` with SIP, its echo bot; yields (HTTP port, SIP port)."""
    sip_port = free_udp_port()
    low, high = rtp_range()
    settings = {
        "VOXGATE_SIP_PORT": str(sip_port),
        "VOXGATE_SIP_RTP_PORT_MIN": str(low),
        "VOXGATE_SIP_RTP_PORT_MAX": str(high),
        "VOXGATE_LOG_FORMAT": "text",
    }
    async with voxgate_serve(settings, workdir / "serve.log") as (http_port, _process):
        yield http_port, sip_port


def documented_command(scenario: str) -> list[str]:
    """The command of the scenario's header comment, with ``$D`` where it is installed."""
    text = (SHIPPED / scenario).read_text()
    # From "sipp" to the first line that does not end in a backslash.
    found = re.search(r"sipp 127\.0\.0\.1:5060 (?:.*\\\n)*.*", text)
    assert found, f"{scenario}: no command in its header comment"
    words = found.group().replace("\\\n", " ").removesuffix("-->").split()
    return [word.strip('"').replace("$D", str(SHIPPED)) for word in words]


async def run_sipp(scenario: str, sip_port: int, workdir: Path) -> subprocess.CompletedProcess[str]:
    command = documented_command(scenario)
    assert SIPP is not None
    command[:2] = [SIPP, f"127.0.0.1:{sip_port}"]
    for option, value in {"-d": CALL_MS, "-r": RATE, "-l": CALLS, "-m": CALLS}.items():
        command[command.index(option) + 1] = str(value)
    command += ["-i", "127.0.0.1", "-p", str(free_udp_port())]
    command += ["-mp", str(free_udp_port() // 2 * 2), "-timeout", "60s", "-timeout_error"]
    command += ["-nostdin"]
    return await asyncio.to_thread(
        subprocess.run,
        command,
        cwd=workdir,
        capture_output=True,
        text=True,
        timeout=90,
        check=False,
    )


def final_stats(workdir: Path, scenario: str) -> dict[str, str]:
    """The last row of SIPp's -trace_stat csv (``<scenario>_<pid>_.csv``)."""
    [path] = workdir.glob(f"{Path(scenario).stem}_*_.csv")
    with path.open(newline="") as stats:
        rows = list(csv.DictReader(stats, delimiter=";"))
    return rows[-1]


async def metrics(http_port: int) -> str:
    async with httpx.AsyncClient(timeout=5.0) as client:
        return (await client.get(f"http://127.0.0.1:{http_port}/metrics")).text


def counter(text: str, name: str) -> int:
    """A counter's total over its labels."""
    pattern = rf"^voxgate_{name}(?:{{[^}}]*}})? ([0-9]+)$"
    return sum(int(value) for value in re.findall(pattern, text, re.MULTILINE))


def rtp_summaries(workdir: Path) -> list[dict[str, int]]:
    """The figures of every call's ``RTP summary`` line in voxgate's log."""
    lines = (workdir / "serve.log").read_text().splitlines()
    return [
        json.loads(line[line.index("{") : line.rindex("}") + 1])
        for line in lines
        if "RTP summary" in line
    ]


def explain(result: subprocess.CompletedProcess[str], workdir: Path) -> str:
    errors = "".join(p.read_text(errors="replace") for p in workdir.glob("*_errors.log"))
    log = (workdir / "serve.log").read_text(errors="replace")[-3000:]
    return f"sipp exit {result.returncode}\n{result.stderr[-2000:]}\n{errors}\n--- voxgate\n{log}"


def check_run(scenario: str, workdir: Path) -> list[dict[str, int]]:
    """Run ``scenario`` against a fresh node; every call must succeed. The calls' RTP
    summaries (voxgate's log)."""

    async def scenario_run() -> None:
        async with sip_serve(workdir) as (http_port, sip_port):
            result = await run_sipp(scenario, sip_port, workdir)
            assert result.returncode == 0, explain(result, workdir)
            async with asyncio.timeout(10):  # a call's RTP figures are counted at its end
                while len(rtp_summaries(workdir)) < CALLS:
                    await asyncio.sleep(0.1)
            text = await metrics(http_port)
        stats = final_stats(workdir, scenario)
        assert int(stats["SuccessfulCall(C)"]) == CALLS, stats
        assert int(stats["FailedCall(C)"]) == 0, stats
        rtp_in, rtp_out = counter(text, "rtp_in_packets"), counter(text, "rtp_out_packets")
        assert rtp_in >= CALLS * 0.8 * CALL_MS / 20, text  # 20 ms packets, most of each call
        assert rtp_out >= CALLS * 0.8 * CALL_MS / 20, text

    run(scenario_run(), timeout=150)
    return rtp_summaries(workdir)


def test_the_shipped_audio_is_a_few_seconds_of_speechlike_mu_law() -> None:
    audio = AUDIO.read_bytes()
    assert len(audio) <= 40_000
    assert len(audio) % 160 == 0  # whole 20 ms packets: the loop has no gap
    assert len(audio) >= 2 * 8000
    made = speechlike()
    assert len(made) == len(audio)
    shipped, remade = ulaw_decode(audio).astype(float), ulaw_decode(made).astype(float)
    assert np.abs(shipped - remade).mean() < 50  # the generator's output, but for rounding
    assert np.abs(shipped).max() > 4000


@pytest.mark.parametrize("scenario", ["uac_echo.xml", "uac_dtmf.xml"])
def test_the_header_finds_the_installed_scenarios(scenario: str) -> None:
    """The ``D=$(python3 -c '...')`` line of the header comment prints their directory."""
    found = re.search(r"D=\$\(python3 -c '(.*)'\)", (SHIPPED / scenario).read_text())
    assert found, f"{scenario}: no D= line in its header comment"
    command = [sys.executable, "-c", found.group(1)]
    printed = subprocess.run(command, capture_output=True, text=True, timeout=30, check=False)
    assert Path(printed.stdout.strip()) == SHIPPED, printed.stderr


def test_uac_echo_calls_all_succeed_and_voxgate_counts_their_rtp(workdir: Path) -> None:
    summaries = check_run("uac_echo.xml", workdir)
    assert len(summaries) == CALLS
    assert all(summary["rtp_in"] > 0 and summary["rtp_out"] > 0 for summary in summaries)
    assert all(summary["rtp_bad"] == 0 for summary in summaries)


@pytest.mark.skipif(not ROOT or not DTMF_PCAP.exists(), reason="SIPp replays a pcap as root")
def test_uac_dtmf_calls_all_succeed_and_each_sends_its_digit(workdir: Path) -> None:
    summaries = check_run("uac_dtmf.xml", workdir)
    assert len(summaries) == CALLS
    assert [summary["dtmf_in"] >= 1 for summary in summaries] == [True] * CALLS, summaries
