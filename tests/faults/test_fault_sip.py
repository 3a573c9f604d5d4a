"""Hostile and unlucky SIP/RTP peers against a real ``voxgate serve``, calls under way beside them.

- a flood of INVITEs beyond ``server.max_calls``: each gets 503 with Retry-After,
  the calls under way carry on whole;
- a drain (SIGTERM with ``server.drain_seconds``): OPTIONS and new INVITEs get 503,
  the call under way goes on until the bot hangs up, then the process exits;
- garbage, truncated packets and a stranger's RTP flooded at every port of the RTP
  range during a call: the call's audio reaches its bot whole;
- a caller that never acknowledges the 200 OK: BYE after 32 s, the bot let go;
- malformed SIP: 400 with the reason when it can be addressed, silence when not,
  and the listener keeps answering.

SIPp plays the callers (Debian's ``sip-tester``; scenarios in tests/bridge/aio/sipp/).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import signal
import socket
import sys
import tempfile
import time
from collections.abc import Coroutine, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from scripted_bot import ScriptedBot
from served import STARTUP_LIMIT, free_port
from sipp_peer import SIPP, caller_audio, chunks_heard, explain, free_udp_port, rtp_range, sipp

from voxgate.bridge.rtp.packet import RtpPacket

pytestmark = pytest.mark.skipif(SIPP is None, reason="SIPp is installed by scripts/test")


def run(scenario: Coroutine[Any, Any, None], timeout: float) -> None:
    asyncio.run(asyncio.wait_for(scenario, timeout))


@pytest.fixture
def workdir() -> Iterator[Path]:
    with tempfile.TemporaryDirectory(prefix="voxgate-sip-fault-") as name:
        yield Path(name)


async def start_node(workdir: Path, **env: str) -> tuple[asyncio.subprocess.Process, int, int]:
    """``voxgate serve`` with SIP on a free port; (process, SIP port, RTP range start).
    Its HTTP port is in ``workdir/http_port``."""
    sip_port = free_udp_port()
    http_port = free_port()
    low, high = rtp_range()
    settings = {
        **{k: v for k, v in os.environ.items() if not k.startswith("VOXGATE_")},
        "VOXGATE_PORT": str(http_port),
        "VOXGATE_SIP_PORT": str(sip_port),
        "VOXGATE_SIP_RTP_PORT_MIN": str(low),
        "VOXGATE_SIP_RTP_PORT_MAX": str(high),
        "VOXGATE_LOG_FORMAT": "text",
        **env,
    }
    log = (workdir / "serve.log").open("wb")
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "voxgate", "serve",
        env=settings, stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.DEVNULL, stderr=log,
    )  # fmt: skip
    log.close()
    deadline = time.monotonic() + STARTUP_LIMIT
    async with httpx.AsyncClient(timeout=1.0) as client:
        while True:
            assert time.monotonic() < deadline and process.returncode is None, "no node"
            with contextlib.suppress(httpx.HTTPError):
                if (await client.get(f"http://127.0.0.1:{http_port}/healthz")).status_code == 200:
                    break
            await asyncio.sleep(0.05)
    (workdir / "http_port").write_text(str(http_port))
    return process, sip_port, low


async def stop_node(process: asyncio.subprocess.Process) -> None:
    if process.returncode is None:
        process.send_signal(signal.SIGKILL)
    await process.wait()


def test_an_invite_flood_beyond_capacity_gets_503s_and_the_calls_under_way_go_on(
    workdir: Path,
) -> None:
    async def scenario() -> None:
        audio = caller_audio(3.0)
        (workdir / "caller.ulaw").write_bytes(audio)
        async with ScriptedBot() as bot:
            process, port, _ = await start_node(
                workdir, VOXGATE_MAX_CALLS="2", VOXGATE_BOT_URL=bot.url
            )
            try:
                calls = asyncio.ensure_future(
                    sipp("uac_call.xml", port, workdir, calls=2, rate=10, digits=False)
                )
                while len(bot.connections) < 2:
                    await asyncio.sleep(0.05)
                flood = await sipp("uac_expect_503.xml", port, workdir, calls=60, rate=100)
                under_way = await calls
            finally:
                await stop_node(process)
        assert flood.returncode == 0, explain(flood, workdir)
        assert under_way.returncode == 0, explain(under_way, workdir)
        for connection in bot.connections:
            assert chunks_heard(audio, connection.audio()) >= 0.95

    run(scenario(), timeout=150)


def test_a_draining_node_refuses_new_calls_and_lets_the_call_under_way_finish(
    workdir: Path,
) -> None:
    async def scenario() -> None:
        async with ScriptedBot() as bot:
            process, port, _ = await start_node(
                workdir, VOXGATE_DRAIN_SECONDS="30", VOXGATE_BOT_URL=bot.url
            )
            try:
                call = asyncio.ensure_future(sipp("uac_bot_hangs_up.xml", port, workdir))
                connection = await bot.connection(timeout=20)
                await connection.wait_for_type("start")
                process.send_signal(signal.SIGTERM)
                while b"draining" not in (workdir / "serve.log").read_bytes():
                    await asyncio.sleep(0.05)
                options = await sipp("options_503.xml", port, workdir)
                invite = await sipp("uac_expect_503.xml", port, workdir)
                assert process.returncode is None  # still up: a call is under way
                await connection.send({"type": "session.hangup"})
                finished = await call
                exit_code = await asyncio.wait_for(process.wait(), 15)
            finally:
                await stop_node(process)
        assert options.returncode == 0, explain(options, workdir)
        assert invite.returncode == 0, explain(invite, workdir)
        assert finished.returncode == 0, explain(finished, workdir)
        assert exit_code in (0, -signal.SIGTERM)  # uvicorn re-raises the signal it caught

    run(scenario(), timeout=150)


def test_a_caller_that_never_acks_gets_bye_and_the_bot_is_let_go(workdir: Path) -> None:
    async def scenario() -> None:
        async with ScriptedBot() as bot:
            process, port, _ = await start_node(workdir, VOXGATE_BOT_URL=bot.url)
            try:
                result = await sipp("uac_never_acks.xml", port, workdir, timeout=70)
                connection = bot.connections[0]
                stop = (await connection.wait_for_type("stop", timeout=10))[0]
            finally:
                await stop_node(process)
        assert result.returncode == 0, explain(result, workdir)
        assert stop["reason"] == "caller_hangup"
        assert b"Traceback" not in (workdir / "serve.log").read_bytes()

    run(scenario(), timeout=150)


def test_garbage_and_strangers_rtp_at_every_port_leave_the_call_whole(workdir: Path) -> None:
    async def scenario() -> None:
        audio = caller_audio(3.0)
        (workdir / "caller.ulaw").write_bytes(audio)
        async with ScriptedBot() as bot:
            process, port, low = await start_node(workdir, VOXGATE_BOT_URL=bot.url)
            stop = asyncio.Event()
            try:
                call = asyncio.ensure_future(sipp("uac_call.xml", port, workdir, digits=False))
                connection = await bot.connection(timeout=20)
                await connection.wait_for_type("media")  # injection into a call under way
                flood = asyncio.ensure_future(asyncio.to_thread(_flood, low, stop))
                result = await call
                stop.set()
                sent = await flood
            finally:
                stop.set()
                await stop_node(process)
        assert result.returncode == 0, explain(result, workdir)
        assert sent > 1000
        assert chunks_heard(audio, connection.audio()) >= 0.95
        assert b"Traceback" not in (workdir / "serve.log").read_bytes()

    run(scenario(), timeout=150)


def _flood(low: int, stop: asyncio.Event) -> int:
    """Garbage, truncated RTP and a stranger's PCMU at the first ports of the range."""
    rng = random.Random(7)
    stranger = RtpPacket(0, 1, 0, 0xBAD, b"\x00" * 160)
    sent = 0
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        while not stop.is_set() and sent < 200_000:
            for port in range(low, low + 8, 2):
                kind = sent % 3
                if kind == 0:
                    data = rng.randbytes(rng.randrange(0, 300))
                elif kind == 1:
                    data = stranger.serialize()[: rng.randrange(1, 12)]
                else:
                    stranger = RtpPacket(0, (stranger.sequence + 1) & 0xFFFF, 0, 0xBAD, b"\0" * 160)
                    data = stranger.serialize()
                sock.sendto(data, ("127.0.0.1", port))
                sent += 1
            time.sleep(0.001)
    return sent


def test_malformed_sip_gets_400_or_nothing_and_the_listener_goes_on(workdir: Path) -> None:
    async def scenario() -> None:
        process, port, _ = await start_node(workdir)
        try:
            replies = await asyncio.to_thread(_malformed, port)
            options = await sipp("options.xml", port, workdir)
            http_port = (workdir / "http_port").read_text()
            async with httpx.AsyncClient() as client:
                metrics = (await client.get(f"http://127.0.0.1:{http_port}/metrics")).text
        finally:
            await stop_node(process)
        assert replies[0].startswith(b"SIP/2.0 400 Bad Request")
        assert replies[1:] == [b""] * (len(replies) - 1)  # not addressable: no answer
        assert options.returncode == 0, explain(options, workdir)
        assert b"Traceback" not in (workdir / "serve.log").read_bytes()
        assert 'voxgate_sip_events{kind="bad_message"} 5' in metrics  # every one counted

    run(scenario(), timeout=90)


def _malformed(port: int) -> list[bytes]:
    bad_cseq = (
        b"INVITE sip:1@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:9;branch=z9hG4bK-x\r\n"
        b"From: <sip:a@b>;tag=1\r\nTo: <sip:1@127.0.0.1>\r\nCall-ID: bad-1\r\n"
        b"CSeq: x INVITE\r\nContent-Length: 0\r\n\r\n"
    )
    datagrams = [bad_cseq, b"\x00" * 40, b"INVITE\r\n\r\n", os.urandom(1400), b"SIP/2.0 200"]
    replies = []
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(0.5)
        for data in datagrams:
            sock.sendto(data, ("127.0.0.1", port))
            try:
                replies.append(sock.recv(65536))
            except TimeoutError:
                replies.append(b"")
    return replies
