"""The fault-injection bench: a real ``voxgate serve``, a healthy call beside a hostile peer.

Every test in tests/faults runs one hostile scenario (a bot or a carrier that
misbehaves, a client that never finishes its handshake...) against its own
``voxgate serve`` process, and meanwhile a second, healthy call through the same
serve process (its caller and bot in a process of their own, as a real second
call's would be). :func:`run_fault` then checks what the operator cares about whatever
the hostile peer did:

- the healthy call got every frame both ways, bit-exact and in order, and the
  caller heard them paced at 50 per second within bounds that hold on a busy
  2-core machine (the precise figures are measured in stepped time and in the
  benchmark, not here);
- ``/healthz`` answered within :data:`HEALTH_LIMIT` every time it was asked
  (a watchdog process asks every 100 ms over a plain blocking socket, so that a
  busy test process does not count against the bridge);
- the serve process's resident memory (``VmRSS``) grew by less than a bound;
- its log (JSON lines, captured to a file) holds no traceback.

Everything is bounded: each scenario in time (``asyncio.wait_for``), each flood
in count. Everything listens on and connects to loopback only.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import numpy as np
from carrier import CarrierEmulator
from pacing import assert_paced_loosely
from scripted_bot import ScriptedBot
from served import voxgate_serve

HEALTH_LIMIT: Final = 0.5  # seconds /healthz may take, whatever a hostile peer does
RSS_GROWTH_LIMIT: Final = 40 * 1024 * 1024  # bytes the serve process may grow by, default
HEALTHY_SECONDS: Final = 3.0  # of audio each way in the healthy call
BASE_ENV: Final = {
    "VOXGATE_LOG_FORMAT": "json",
    "VOXGATE_BOT_PRIVATE_TARGETS": "allow",  # every bot here is on loopback, on purpose
}

Json = dict[str, Any]


def noise(seconds: float, seed: int, rate: int = 8000, width: int = 1) -> bytes:
    """Random bytes standing for ``seconds`` of audio (any byte is a valid mu-law code)."""
    size = int(rate * seconds) * width
    return np.random.default_rng(seed).integers(0, 256, size, dtype=np.uint8).tobytes()


def audio_delta(audio: bytes) -> str:
    """A voxgate.v1 ``response.audio.delta``, encoded once so floods cost little to send."""
    return json.dumps({"type": "response.audio.delta", "audio": base64.b64encode(audio).decode()})


# --- the serve process --------------------------------------------------------------


@dataclass
class Served:
    """A running ``voxgate serve``: where it listens, its pid, its log."""

    port: int
    pid: int
    log_path: Path

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}"

    @property
    def http_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def stream_url(self, carrier: str = "twilio", query: str = "") -> str:
        return f"{self.ws_url}/v1/streams/{carrier}{query}"

    def rss(self) -> int:
        """Resident memory of the serve process, in bytes (0 once it has gone)."""
        return rss_of(self.pid)

    def log_text(self) -> str:
        return self.log_path.read_text(encoding="utf-8", errors="replace")

    def log_records(self) -> list[Json]:
        """The log's JSON lines, parsed; a line that is not JSON comes back as ``{"raw": ...}``."""
        records = []
        for line in self.log_text().splitlines():
            try:
                record = json.loads(line)
            except ValueError:
                record = {"raw": line}
            records.append(record if isinstance(record, dict) else {"raw": line})
        return records

    def tracebacks(self) -> list[str]:
        """Log lines that carry a traceback: there must be none."""
        return [
            line
            for line in self.log_text().splitlines()
            if '"exc"' in line or "Traceback (most recent call last)" in line
        ]


def rss_of(pid: int) -> int:
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return 0
    for line in status.splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    return 0


@asynccontextmanager
async def serve_process(log_path: Path, **env: str) -> AsyncIterator[Served]:
    """``voxgate serve`` in its own process on a free loopback port, stderr to ``log_path``.

    Only the given ``VOXGATE_*`` variables (on top of :data:`BASE_ENV`) reach it.
    """
    async with voxgate_serve({**BASE_ENV, **env}, log_path) as (port, process):
        yield Served(port, process.pid, log_path)


def health_latency(port: int, timeout: float = 2.0) -> float | None:
    """Seconds one ``GET /healthz`` took (connect to last byte), None if it failed."""
    started = time.monotonic()
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=timeout) as conn:
            conn.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
            response = b""
            while chunk := conn.recv(4096):
                response += chunk
    except OSError:
        return None
    if not response.startswith(b"HTTP/1.1 200"):
        return None
    return time.monotonic() - started


class Watchdog:
    """Asks ``/healthz`` and reads ``VmRSS`` every 100 ms, from a process of its own.

    Its own process, so that a pause of this test process (the hostile peer's work,
    a garbage collection) cannot pass for a slow bridge. A thread here collects what
    it reports.
    """

    def __init__(self, served: Served) -> None:
        self.served = served
        self.latencies: list[float] = []  # inf: no answer within 2 s, or not 200
        self.baseline_rss = served.rss()
        self.peak_rss = self.baseline_rss
        self._process: subprocess.Popen[str] | None = None
        self._thread = threading.Thread(target=self._collect, name="fault-watchdog", daemon=True)

    def __enter__(self) -> Watchdog:
        arguments = ["watchdog", str(self.served.port), str(self.served.pid)]
        self._process = subprocess.Popen(
            [sys.executable, "-m", "faultbench", *arguments],
            env=_own_process_env(),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        assert self._process is not None and self._process.stdin is not None
        self._process.stdin.close()  # its signal to stop
        try:
            self._process.wait(5)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait(5)
        self._thread.join(5)
        if self._process.stdout is not None:
            self._process.stdout.close()

    def _collect(self) -> None:
        assert self._process is not None and self._process.stdout is not None
        for line in self._process.stdout:
            latency, rss = json.loads(line)
            self.latencies.append(float("inf") if latency is None else latency)
            self.peak_rss = max(self.peak_rss, rss)

    @property
    def rss_growth(self) -> int:
        return self.peak_rss - self.baseline_rss


# --- the healthy call ------------------------------------------------------------------


@dataclass
class HealthyCall:
    """What the healthy call sent and what reached each end."""

    to_caller: bytes = b""  # what its bot said
    heard_by_caller: bytes = b""
    caller_arrivals: list[float] = field(default_factory=list)
    frame_sizes: list[int] = field(default_factory=list)
    from_caller: bytes = b""
    heard_by_bot: bytes = b""


async def healthy_call(
    served: Served, started: Callable[[], None], *, seconds: float, query: str = ""
) -> HealthyCall:
    """A well-behaved bot and caller talking at once for ``seconds``; their records.

    ``started`` is called once both ends are up.
    """
    outcome = HealthyCall(to_caller=noise(seconds, 7001), from_caller=noise(seconds, 7002))
    async with ScriptedBot() as bot:
        params = {"wss_url": bot.url}
        url = served.stream_url("twilio", query)
        async with CarrierEmulator(url, "twilio", custom_parameters=params) as caller:
            connection = await bot.connection(timeout=10)
            await connection.wait_for_type("start", timeout=10)
            started()
            await connection.send_audio(outcome.to_caller)
            await caller.send_audio(outcome.from_caller)
            size = len(outcome.to_caller)
            await caller.wait_for_audio(size, timeout=seconds * 2 + 5)
            await connection.wait_for(
                lambda: len(connection.audio()) >= len(outcome.from_caller), timeout=5
            )
            outcome.heard_by_caller = caller.received_audio()
            outcome.caller_arrivals = caller.media_arrivals()
            outcome.frame_sizes = [len(frame.payload) for frame in caller.media]
            outcome.heard_by_bot = connection.audio()
            await caller.hang_up()
    return outcome


async def healthy_process(
    served: Served, started: asyncio.Event, *, seconds: float, query: str = ""
) -> HealthyCall:
    """:func:`healthy_call` in a process of its own (``python -m faultbench``).

    Its own process, as a real second caller would be: what the hostile peer makes
    this test process do (parse 10,000 marks, collect garbage after a flood) cannot
    delay the healthy call's reads and pass for a gap in the bridge's pacing.
    """
    env = _own_process_env()
    arguments = ["healthy", str(served.port), str(seconds), query]
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "faultbench",
        *arguments,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        limit=2**22,  # the result is one JSON line of a few hundred KB
    )
    assert process.stdout is not None
    try:
        async for line in process.stdout:
            message = json.loads(line)
            if message.get("started"):
                started.set()
            elif "result" in message:
                return _from_json(message["result"])
        raise RuntimeError(f"the healthy call's process ended with {await process.wait()}")
    finally:
        if process.returncode is None:
            process.kill()
        await process.wait()


def _own_process_env() -> dict[str, str]:
    """The environment of a helper process that runs ``python -m faultbench``."""
    support = Path(__file__).resolve().parents[1] / "support"
    return {**os.environ, "PYTHONPATH": f"{support}{os.pathsep}{Path(__file__).parent}"}


def _watchdog_main(port: int, pid: int) -> None:
    """The watchdog's process: ``[latency, rss]`` every 100 ms until stdin closes."""
    stop = threading.Event()

    def wait_for_eof() -> None:
        sys.stdin.read()
        stop.set()

    threading.Thread(target=wait_for_eof, daemon=True).start()
    while not stop.is_set():
        print(json.dumps([health_latency(port), rss_of(pid)]), flush=True)
        stop.wait(0.1)


def _to_json(call: HealthyCall) -> Json:
    return {
        key: base64.b64encode(value).decode() if isinstance(value, bytes) else value
        for key, value in vars(call).items()
    }


def _from_json(data: Json) -> HealthyCall:
    call = HealthyCall()
    for key, value in data.items():
        is_bytes = isinstance(getattr(call, key), bytes)
        setattr(call, key, base64.b64decode(value) if is_bytes else value)
    return call


def _healthy_main(port: int, seconds: float, query: str) -> None:
    """The healthy call's process: JSON lines on stdout, ``started`` then ``result``."""

    def started() -> None:
        print(json.dumps({"started": True}), flush=True)

    served = Served(port, 0, Path())
    call = asyncio.run(healthy_call(served, started, seconds=seconds, query=query))
    print(json.dumps({"result": _to_json(call)}), flush=True)


def assert_healthy(call: HealthyCall) -> None:
    assert call.heard_by_caller == call.to_caller, "the healthy caller lost or garbled frames"
    assert call.heard_by_bot == call.from_caller, "the healthy bot lost or garbled frames"
    frames = len(call.to_caller) // 160
    assert call.frame_sizes == [160] * frames
    assert_paced_loosely(call.caller_arrivals, frames)


# --- one fault scenario ------------------------------------------------------------------


@dataclass
class Bench:
    """What a hostile scenario gets: the serve process, and when the healthy call is up."""

    served: Served
    healthy_started: asyncio.Event
    notes: dict[str, Any] = field(default_factory=dict)


Hostile = Callable[[Bench], Awaitable[None]]


def run_fault(
    log_path: Path,
    hostile: Hostile,
    *,
    env: Mapping[str, str] | None = None,
    seconds: float = HEALTHY_SECONDS,
    healthy_query: str = "",
    rss_growth_limit: int = RSS_GROWTH_LIMIT,
    timeout: float = 45.0,
) -> Bench:
    """Run ``hostile`` beside a healthy call on a fresh ``voxgate serve``; check both.

    The hostile scenario's own assertions are reported first, then the healthy
    call's, then health, memory and the log.
    """
    holder: list[Bench] = []

    async def scenario() -> None:
        async with serve_process(log_path, **(env or {})) as served:
            bench = Bench(served, asyncio.Event())
            holder.append(bench)
            healthy = healthy_process(
                served, bench.healthy_started, seconds=seconds, query=healthy_query
            )
            with Watchdog(served) as watchdog:
                hostile_result, healthy_result = await asyncio.gather(
                    asyncio.wait_for(hostile(bench), timeout),
                    asyncio.wait_for(healthy, timeout),
                    return_exceptions=True,
                )
            bench.notes["health_latencies"] = watchdog.latencies
            bench.notes["rss_growth"] = watchdog.rss_growth
        if isinstance(hostile_result, BaseException):
            raise hostile_result
        if isinstance(healthy_result, BaseException):
            raise AssertionError(f"the healthy call failed: {healthy_result!r}") from healthy_result
        assert_healthy(healthy_result)
        slowest = max(watchdog.latencies, default=0.0)
        assert watchdog.latencies, "the watchdog never asked /healthz"
        assert slowest < HEALTH_LIMIT, f"/healthz took {slowest:.3f} s"
        growth_mb = watchdog.rss_growth / 2**20
        assert watchdog.rss_growth < rss_growth_limit, f"RSS grew by {growth_mb:.1f} MB"
        assert served.tracebacks() == []

    asyncio.run(scenario())
    return holder[0]


# --- hostile building blocks -----------------------------------------------------------------


@asynccontextmanager
async def caller_to(
    served: Served, bot_url: str, carrier: str = "twilio", **params: str
) -> AsyncIterator[CarrierEmulator]:
    """A carrier stream whose call goes to the bot at ``bot_url``."""
    emulator = CarrierEmulator(
        served.stream_url(carrier),
        carrier,  # type: ignore[arg-type]
        custom_parameters={"wss_url": bot_url, **params},
    )
    async with emulator:
        yield emulator


def twilio_media(
    stream_sid: str, sequence: int, chunk: object, timestamp: object, audio: bytes
) -> str:
    """A Twilio ``media`` message; a ``chunk`` or ``timestamp`` given as an int or a str
    goes on the wire as it is (Twilio sends decimal strings; a hostile peer need not)."""
    return json.dumps(
        {
            "event": "media",
            "sequenceNumber": str(sequence),
            "media": {
                "track": "inbound",
                "chunk": chunk,
                "timestamp": timestamp,
                "payload": base64.b64encode(audio).decode(),
            },
            "streamSid": stream_sid,
        }
    )


async def paced(
    messages: list[str], send: Callable[[str], Awaitable[None]], per_second: float
) -> None:
    """Send ``messages`` at ``per_second`` against absolute deadlines (no drift)."""
    start = time.monotonic()
    for index, message in enumerate(messages):
        await asyncio.sleep(max(0.0, start + index / per_second - time.monotonic()))
        await send(message)


async def drain_until_closed(reader: asyncio.StreamReader, limit: float) -> float | None:
    """Read and discard until the peer closes; seconds it took, None if still open at ``limit``."""
    started = time.monotonic()
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(limit):
            try:
                while await reader.read(4096):
                    pass
            except OSError:
                pass
            return time.monotonic() - started
    return None


class Findings:
    """Several independent checks in one scenario: every problem is reported, not the first."""

    def __init__(self) -> None:
        self.problems: list[str] = []

    def check(self, ok: bool, problem: str) -> None:
        if not ok:
            self.problems.append(problem)

    def verify(self) -> None:
        assert not self.problems, "\n".join(["problems found:", *self.problems])


if __name__ == "__main__":
    if sys.argv[1] == "watchdog":
        _watchdog_main(int(sys.argv[2]), int(sys.argv[3]))
    else:
        _healthy_main(int(sys.argv[2]), float(sys.argv[3]), sys.argv[4])
