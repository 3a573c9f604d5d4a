"""SIPp (Debian's ``sip-tester``) against ``voxgate serve``: the tests' shared helpers.

``sip_node`` runs ``voxgate serve`` with SIP on a free UDP port and an RTP
range of its own; ``sipp`` runs a scenario of tests/bridge/aio/sipp/ against it
(exit status 0: every call went as the scenario says).
"""

from __future__ import annotations

import asyncio
import os
import shutil
import socket
import subprocess
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Final

import numpy as np
from served import voxgate_serve

from voxgate.codecs.g711 import ulaw_encode

SCENARIOS: Final = Path(__file__).resolve().parents[1] / "bridge" / "aio" / "sipp"
SIPP: Final = shutil.which("sipp")
ROOT: Final = os.geteuid() == 0  # SIPp replays the RFC 2833 pcap over a raw socket
DTMF_PCAP: Final = Path("/usr/share/sip-tester/dtmf_2833_1.pcap")


def free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def rtp_range() -> tuple[int, int]:
    """A range of 400 ports (200 calls) apart from other test processes' (by the process id)."""
    low = 40000 + (os.getpid() % 50) * 400
    return low, low + 398


def caller_audio(seconds: float = 3.0) -> bytes:
    """A 440 Hz tone with a slow sweep on top, mu-law: what the caller says."""
    t = np.arange(int(8000 * seconds)) / 8000
    signal = 6000 * np.sin(2 * np.pi * 440 * t) + 3000 * np.sin(2 * np.pi * (200 + 300 * t) * t)
    return ulaw_encode(signal.astype(np.int16)).tobytes()


@asynccontextmanager
async def sip_node(tmp: Path, **env: str) -> AsyncIterator[int]:
    """``voxgate serve`` with SIP on a free port; yields that port."""
    sip_port = free_udp_port()
    low, high = rtp_range()
    settings = {
        "VOXGATE_SIP_PORT": str(sip_port),
        "VOXGATE_SIP_RTP_PORT_MIN": str(low),
        "VOXGATE_SIP_RTP_PORT_MAX": str(high),
        "VOXGATE_LOG_FORMAT": "text",
        **env,
    }
    async with voxgate_serve(settings, tmp / "serve.log"):
        yield sip_port


async def sipp(
    scenario: str,
    sip_port: int,
    workdir: Path,
    *,
    calls: int = 1,
    rate: int = 10,
    limit: int | None = None,
    timeout: float = 60.0,
    digits: bool = True,
) -> subprocess.CompletedProcess[str]:
    """Run SIPp's ``scenario`` against 127.0.0.1:``sip_port``; its exit status 0 = all passed."""
    assert SIPP is not None
    text = (SCENARIOS / scenario).read_text()
    if not digits or not ROOT or not DTMF_PCAP.exists():  # no raw socket: leave the digit out
        text = text.replace(f'<exec play_pcap_audio="{DTMF_PCAP}"/>', "")
    staged = workdir / f".{scenario}.{os.getpid()}.{id(text)}"
    staged.write_text(text)
    staged.replace(workdir / scenario)  # whole, for SIPp runs that read it at the same time
    command = [
        SIPP,
        f"127.0.0.1:{sip_port}",
        "-sf",
        scenario,
        "-s",
        "+15557770000",
        "-i",
        "127.0.0.1",
        "-p",
        str(free_udp_port()),
        "-mp",
        str(free_udp_port() // 2 * 2),
        "-m",
        str(calls),
        "-r",
        str(rate),
        "-l",
        str(limit or calls),
        "-timeout",
        f"{int(timeout)}s",
        "-timeout_error",
        "-trace_err",
        "-trace_stat",
        "-nostdin",
    ]
    return await asyncio.to_thread(
        subprocess.run,
        command,
        cwd=workdir,
        capture_output=True,
        text=True,
        timeout=timeout + 30,
        check=False,
    )


def explain(result: subprocess.CompletedProcess[str], workdir: Path) -> str:
    errors = "".join(p.read_text(errors="replace") for p in workdir.glob("*_errors.log"))
    log = (workdir / "serve.log").read_text(errors="replace")[-4000:]
    return f"sipp exit {result.returncode}\n{result.stdout[-2000:]}\n{errors}\n--- voxgate\n{log}"


def chunks_heard(source: bytes, heard: bytes, size: int = 160) -> float:
    """The share of ``source``'s 20 ms chunks found, byte for byte, in ``heard``."""
    pieces = [source[i : i + size] for i in range(0, len(source) - size + 1, size)]
    return sum(piece in heard for piece in pieces) / len(pieces)
