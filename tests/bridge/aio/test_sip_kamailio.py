"""Kamailio as the SIP front (dispatcher) of two ``voxgate serve`` nodes, end to end.

Debian's ``kamailio`` (scripts/setup-sip-peers installs it) runs
``kamailio/voxgate-front.cfg`` on a free loopback port with a dispatcher list
(``kamailio/dispatcher.list.template``) of two voxgate nodes, each with its own
HTTP, SIP and RTP ports and the built-in echo bot. SIPp calls Kamailio with
``sipp/uac_short.xml`` (INVITE, 200, ACK through the Record-Route, BYE).

- Ten calls through Kamailio all succeed, shared round robin: both nodes take calls.
- A node told to drain (SIGTERM, with a call under way on it, so that it stays
  up answering 503) takes no new call, and all ten go to the other node and
  succeed, both ways Kamailio has of noticing: with OPTIONS probing off, the
  first INVITE it sends there gets 503 and its failure_route moves that call to
  the other node and takes the draining one out; with probing on, the probe's
  503 takes it out before any call reaches it. The call under way on the
  draining node ends normally, and the node then exits.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import socket
import subprocess
import tempfile
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass
from pathlib import Path
from string import Template
from typing import Final

import httpx
import pytest
from scenario import run
from served import voxgate_serve

HERE: Final = Path(__file__).parent
CONFIG: Final = HERE / "kamailio" / "voxgate-front.cfg"
DISPATCHER_TEMPLATE: Final = HERE / "kamailio" / "dispatcher.list.template"
SCENARIO: Final = HERE / "sipp" / "uac_short.xml"
KAMAILIO: Final = shutil.which("kamailio")
SIPP: Final = shutil.which("sipp")
STARTED: Final = "call started: sip"
CALLS: Final = 10

pytestmark = pytest.mark.skipif(
    KAMAILIO is None or SIPP is None, reason="Kamailio and SIPp: scripts/setup-sip-peers"
)


def free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@dataclass(frozen=True, slots=True)
class Node:
    """One ``voxgate serve``: its ports, its process and its log."""

    name: str
    http_port: int
    sip_port: int
    process: subprocess.Popen[bytes]
    log: Path

    def calls_started(self) -> int:
        return self.log.read_text(errors="replace").count(STARTED)


@dataclass(frozen=True, slots=True)
class Front:
    port: int  # Kamailio's SIP port
    a: Node
    b: Node


@asynccontextmanager
async def node(workdir: Path, name: str, rtp_low: int) -> AsyncIterator[Node]:
    """``voxgate serve`` with SIP on a free port, 50 calls' worth of RTP ports from ``rtp_low``."""
    sip_port = free_udp_port()
    log = workdir / f"{name}.log"
    settings = {
        "VOXGATE_SIP_PORT": str(sip_port),
        "VOXGATE_SIP_RTP_PORT_MIN": str(rtp_low),
        "VOXGATE_SIP_RTP_PORT_MAX": str(rtp_low + 98),
        "VOXGATE_DRAIN_SECONDS": "30",
        "VOXGATE_LOG_FORMAT": "text",
    }
    async with voxgate_serve(settings, log) as (http_port, process):
        yield Node(name, http_port, sip_port, process, log)


@asynccontextmanager
async def kamailio(workdir: Path, a: Node, b: Node, ping_interval: int) -> AsyncIterator[int]:
    """Kamailio in the foreground in front of ``a`` and ``b``; yields its SIP port.

    Its runtime directory and pid file are in ``workdir``; it is stopped with
    SIGTERM (then its process group killed) when the context ends.
    """
    assert KAMAILIO is not None
    port = free_udp_port()
    listing = workdir / "dispatcher.list"
    template = Template(DISPATCHER_TEMPLATE.read_text())
    listing.write_text(template.substitute(NODE_A_PORT=a.sip_port, NODE_B_PORT=b.sip_port))
    rundir = workdir / "kamailio"
    rundir.mkdir()
    command = [
        KAMAILIO,
        "-DD",
        "-E",
        "-f",
        str(CONFIG),
        "-Y",
        str(rundir),
        "-P",
        str(rundir / "kamailio.pid"),
        "-w",
        str(rundir),
        "-A",
        f"LISTEN=udp:127.0.0.1:{port}",
        "-A",
        f'DISPATCHER_LIST="{listing}"',
        "-A",
        f"PING_INTERVAL={ping_interval}",
    ]
    with (workdir / "kamailio.log").open("wb") as log:
        process = subprocess.Popen(
            command,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            await until(lambda: answers_options(port), "Kamailio to answer OPTIONS", process)
            yield port
        finally:
            await stop_kamailio(process)


async def stop_kamailio(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.terminate()
        with contextlib.suppress(subprocess.TimeoutExpired):
            await asyncio.to_thread(process.wait, 10)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)  # its children, should any be left
    await asyncio.to_thread(process.wait, 5)


@asynccontextmanager
async def front(workdir: Path, ping_interval: int = 1) -> AsyncIterator[Front]:
    """Two voxgate nodes (RTP ports apart from other test processes') and Kamailio.

    Kamailio probes the nodes with OPTIONS every ``ping_interval`` s (0: never).
    """
    low = 20000 + (os.getpid() % 50) * 200
    async with (
        node(workdir, "node-a", low) as a,
        node(workdir, "node-b", low + 100) as b,
        kamailio(workdir, a, b, ping_interval) as port,
    ):
        yield Front(port, a, b)


def answers_options(port: int) -> bool:
    """Whether Kamailio answers an OPTIONS addressed to itself with 200 within 0.5 s."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.bind(("127.0.0.1", 0))
        probe.settimeout(0.5)
        local = probe.getsockname()[1]
        request = (
            f"OPTIONS sip:127.0.0.1:{port} SIP/2.0\r\n"
            f"Via: SIP/2.0/UDP 127.0.0.1:{local};branch=z9hG4bK-ready-{local}\r\n"
            f"From: <sip:test@127.0.0.1:{local}>;tag=ready\r\n"
            f"To: <sip:127.0.0.1:{port}>\r\n"
            f"Call-ID: ready-{local}@127.0.0.1\r\n"
            "CSeq: 1 OPTIONS\r\n"
            "Max-Forwards: 70\r\n"
            "Content-Length: 0\r\n\r\n"
        )
        probe.sendto(request.encode(), ("127.0.0.1", port))
        try:
            return probe.recv(65535).startswith(b"SIP/2.0 200 ")
        except TimeoutError:
            return False


async def until(
    condition: Callable[[], bool],
    what: str,
    process: subprocess.Popen[bytes] | None = None,
    limit: float = 20.0,
) -> None:
    """Wait for ``condition`` (run in a thread) to hold, or for ``process`` to die."""
    deadline = asyncio.get_running_loop().time() + limit
    while not await asyncio.to_thread(condition):
        if process is not None and process.poll() is not None:
            raise AssertionError(f"exited (status {process.returncode}) waiting for {what}")
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"no {what} within {limit:.0f} s")
        await asyncio.sleep(0.1)


def kamailio_says(workdir: Path, line: str) -> bool:
    return line in (workdir / "kamailio.log").read_text(errors="replace")


async def healthz_status(target: Node) -> int:
    async with httpx.AsyncClient(timeout=2.0) as client:
        return (await client.get(f"http://127.0.0.1:{target.http_port}/healthz")).status_code


@contextmanager
def sipp(
    workdir: Path, port: int, label: str, *, calls: int, hold_ms: int = 1000
) -> Iterator[subprocess.Popen[bytes]]:
    """SIPp placing ``calls`` short calls to 127.0.0.1:``port``; killed if still running."""
    assert SIPP is not None
    shutil.copy(SCENARIO, workdir / SCENARIO.name)
    command = [
        SIPP,
        f"127.0.0.1:{port}",
        "-sf",
        SCENARIO.name,
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
        "10",
        "-l",
        str(calls),
        "-d",
        str(hold_ms),
        "-timeout",
        "40s",
        "-timeout_error",
        "-trace_err",
        "-nostdin",
    ]
    with (workdir / f"sipp-{label}.out").open("wb") as out:
        process = subprocess.Popen(
            command, cwd=workdir, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT
        )
        try:
            yield process
        finally:
            if process.poll() is None:
                process.kill()
            process.wait()


async def finished(process: subprocess.Popen[bytes], limit: float = 60.0) -> int:
    return await asyncio.to_thread(process.wait, limit)


def explain(workdir: Path) -> str:
    """SIPp's errors and the logs' tails, for a failed assertion."""
    parts = [
        f"--- {path.name}\n{path.read_text(errors='replace')[-3000:]}"
        for pattern in ("sipp-*.out", "*_errors.log", "kamailio.log", "node-*.log")
        for path in sorted(workdir.glob(pattern))
    ]
    return "\n".join(parts)


@pytest.fixture
def workdir() -> Iterator[Path]:
    with tempfile.TemporaryDirectory(prefix="voxgate-kamailio-") as name:
        yield Path(name)


def test_calls_through_kamailio_are_shared_by_both_nodes(workdir: Path) -> None:
    async def scenario() -> None:
        async with front(workdir) as f:
            with sipp(workdir, f.port, "calls", calls=CALLS) as caller:
                assert await finished(caller) == 0, explain(workdir)
            taken = (f.a.calls_started(), f.b.calls_started())
        assert sum(taken) == CALLS, explain(workdir)
        assert min(taken) > 0, f"round robin: node-a took {taken[0]}, node-b {taken[1]}"

    run(scenario(), timeout=150)


@pytest.mark.parametrize("probing", [False, True], ids=["503-failover", "options-probe"])
def test_a_draining_node_gets_no_new_calls_and_the_other_takes_them(
    workdir: Path, probing: bool
) -> None:
    async def scenario() -> None:
        async with front(workdir, ping_interval=1 if probing else 0) as f:
            node_a = f"sip:127.0.0.1:{f.a.sip_port}"
            # A call straight to node A keeps it up, answering 503, once it drains.
            with sipp(workdir, f.a.sip_port, "held", calls=1, hold_ms=10000) as held:
                await until(lambda: f.a.calls_started() == 1, "held call on node-a", held)
                f.a.process.send_signal(signal.SIGTERM)
                await until(lambda: f.a.log.read_text().count("draining:") == 1, "drain")
                assert await healthz_status(f.a) == 503
                if probing:
                    down = f"voxgate node down: {node_a}"
                    await until(lambda: kamailio_says(workdir, down), "probe taking node-a out")

                with sipp(workdir, f.port, "calls", calls=CALLS) as caller:
                    assert await finished(caller) == 0, explain(workdir)
                assert f.a.process.poll() is None, "node-a left while a call was under way"
                assert (f.a.calls_started(), f.b.calls_started()) == (1, CALLS), explain(workdir)
                # Without probes, a call met the 503 and moved; with them, none went there.
                moved = kamailio_says(workdir, f"{node_a} refused or silent")
                assert moved is not probing, explain(workdir)

                assert await finished(held) == 0, explain(workdir)
            # Its last call over, the draining node exits without a second signal.
            await asyncio.to_thread(f.a.process.wait, 10)

    run(scenario(), timeout=150)
