"""The WebSocket media path under load: N carrier streams through voxgate to an echo bot.

    .venv/bin/python -m bench.ws_path                    # 100 streams for 60 s
    .venv/bin/python -m bench.ws_path --streams 20 --seconds 10

Three processes on loopback, so that each one's CPU is its own:

- ``voxgate bot echo`` (the sample echo bot),
- ``voxgate serve`` pointed at it (the bridge, measured),
- this process: N Twilio-dialect carrier streams, each sending paced 20 ms
  PCMU frames that carry their own index, and recording when each frame
  comes back.

Reported: bridge-added latency per direction, as the bridge measures it
(``inbound``: carrier frame received -> sent to the bot; ``outbound``: bot
audio received -> frame sent to the carrier, including the wait for its
20 ms slot), read from ``/metrics``; the end-to-end round trip seen by the
carrier (two bridge passes plus the bot); frames lost or duplicated; the
bridge's CPU per call (% of one core) and resident memory per call. Targets
(issue 3): p99 added latency <= 5 ms, <= 0.3 % of a core per call, zero
frames lost or duplicated. The load generator stops by itself.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import re
import socket
import struct
import subprocess
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import numpy as np
from websockets.asyncio.client import connect

from voxgate.cli import run_fast

FRAME = 160  # 20 ms of PCMU
WARM_UP_FRAMES = 100  # the first 2 s of each call: set-up, not steady state
TICKS_PER_SECOND = os.sysconf("SC_CLK_TCK")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS_PER_SECOND  # utime + stime


def _rss_bytes(pid: int) -> int:
    match = re.search(r"VmRSS:\s+(\d+) kB", Path(f"/proc/{pid}/status").read_text())
    return int(match.group(1)) * 1024 if match else 0


@dataclass
class Stream:
    index: int
    sent: dict[int, float] = field(default_factory=dict)
    received: Counter[int] = field(default_factory=Counter)
    received_at: dict[int, float] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)


def _frame(stream: int, number: int) -> bytes:
    """A PCMU frame that says which stream and frame it is (and is not silence)."""
    head = struct.pack(">II", stream, number)
    return (head + bytes(range(16, 16 + FRAME - len(head))))[:FRAME]


async def _carrier(url: str, stream: Stream, seconds: float, start_at: float) -> None:
    sid = f"MZ{stream.index:032x}"
    async with connect(url, compression=None, max_size=2**22) as ws:
        await ws.send(json.dumps({"event": "connected", "protocol": "Call", "version": "1.0.0"}))
        await ws.send(json.dumps({
            "event": "start", "sequenceNumber": "1", "streamSid": sid,
            "start": {"accountSid": "AC" + "0" * 32, "streamSid": sid,
                      "callSid": f"CA{stream.index:032x}", "tracks": ["inbound"],
                      "customParameters": {},
                      "mediaFormat": {"encoding": "audio/x-mulaw", "sampleRate": 8000,
                                      "channels": 1}},
        }))  # fmt: skip
        receiver = asyncio.create_task(_receive(ws, stream))
        frames = int(seconds * 50)
        for number in range(frames):
            await asyncio.sleep(max(0.0, start_at + number * 0.020 - time.monotonic()))
            payload = base64.b64encode(_frame(stream.index, number)).decode()
            stream.sent[number] = time.monotonic()
            await ws.send(json.dumps({
                "event": "media", "sequenceNumber": str(number + 2), "streamSid": sid,
                "media": {"track": "inbound", "chunk": str(number + 1),
                          "timestamp": str(number * 20), "payload": payload},
            }))  # fmt: skip
        await asyncio.sleep(1.0)  # let the last frames come back
        stop = {"accountSid": "AC", "callSid": "CA"}
        await ws.send(json.dumps(
            {"event": "stop", "sequenceNumber": str(frames + 2), "streamSid": sid, "stop": stop}
        ))  # fmt: skip
        receiver.cancel()


async def _receive(ws: object, stream: Stream) -> None:
    async for message in ws:  # type: ignore[attr-defined]
        now = time.monotonic()
        event = json.loads(message)
        if event.get("event") != "media":
            continue
        frame = base64.b64decode(event["media"]["payload"])
        owner, number = struct.unpack(">II", frame[:8])
        if owner != stream.index:
            stream.errors.append(f"frame of stream {owner} on stream {stream.index}")
            continue
        stream.received[number] += 1
        stream.received_at.setdefault(number, now)


async def _metric(client: httpx.AsyncClient, base: str, name: str) -> tuple[float, float]:
    text = (await client.get(f"{base}/metrics")).text
    values = dict(re.findall(rf'voxgate_{name}{{quantile="([0-9.]+)"}} ([0-9.e+-]+|nan)', text))
    return float(values.get("0.5", "nan")), float(values.get("0.99", "nan"))


async def _wait_http(base: str) -> None:
    async with httpx.AsyncClient() as client:
        for _ in range(200):
            try:
                if (await client.get(f"{base}/healthz")).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            await asyncio.sleep(0.05)
    raise RuntimeError("voxgate did not come up")


async def measure(streams: int, seconds: float, *, binary_bot: bool = False) -> dict[str, float]:
    bot_port, port = _free_port(), _free_port()
    voxgate = [sys.executable, "-m", "voxgate"]
    env = {k: v for k, v in os.environ.items() if not k.startswith("VOXGATE_")}
    echo = [*voxgate, "bot", "echo", "--port", str(bot_port), *(["--binary"] if binary_bot else [])]
    bot = subprocess.Popen(echo, env=env, stderr=subprocess.DEVNULL)
    bridge_env = {
        **env,
        "VOXGATE_PORT": str(port),
        "VOXGATE_BOT_URL": f"ws://127.0.0.1:{bot_port}/",
        "VOXGATE_LOG_LEVEL": "warning",
        "VOXGATE_MAX_CALLS": str(streams + 10),
    }
    bridge = subprocess.Popen([*voxgate, "serve"], env=bridge_env, stderr=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}"
    try:
        await _wait_http(base)
        rss_idle = _rss_bytes(bridge.pid)
        all_streams = [Stream(i) for i in range(streams)]
        start_at = time.monotonic() + 1.0
        url = f"ws://127.0.0.1:{port}/v1/streams/twilio"
        tasks = [
            asyncio.create_task(_carrier(url, s, seconds, start_at + (s.index % 50) * 0.0004))
            for s in all_streams
        ]
        await asyncio.sleep(1.0 + min(5.0, seconds / 4))  # warm-up: every stream is flowing
        cpu_before, wall_before = _cpu_seconds(bridge.pid), time.monotonic()
        await asyncio.sleep(max(0.0, start_at + seconds - 1.0 - time.monotonic()))
        cpu_after, wall_after = _cpu_seconds(bridge.pid), time.monotonic()
        rss_loaded = _rss_bytes(bridge.pid)
        async with httpx.AsyncClient() as client:
            inbound = await _metric(client, base, "inbound_latency_seconds")
            outbound = await _metric(client, base, "outbound_latency_seconds")
        await asyncio.gather(*tasks)
    finally:
        for process in (bridge, bot):
            process.terminate()
            process.wait(10)
    frames = int(seconds * 50)
    lost = sum(1 for s in all_streams for n in range(frames) if s.received[n] == 0)
    setup = WARM_UP_FRAMES
    lost_in_setup = sum(1 for s in all_streams for n in range(setup) if s.received[n] == 0)
    duplicated = sum(c - 1 for s in all_streams for c in s.received.values() if c > 1)
    steady = [
        s.received_at[n] - s.sent[n]
        for s in all_streams
        for n in range(setup, frames)
        if n in s.received_at
    ]
    round_trips = np.array(steady) * 1000
    busy = (cpu_after - cpu_before) / (wall_after - wall_before)
    return {
        "streams": streams,
        "seconds": seconds,
        "inbound_p50_ms": inbound[0] * 1000,
        "inbound_p99_ms": inbound[1] * 1000,
        "outbound_p50_ms": outbound[0] * 1000,
        "outbound_p99_ms": outbound[1] * 1000,
        "round_trip_p50_ms": float(np.percentile(round_trips, 50)),  # after call set-up
        "round_trip_p99_ms": float(np.percentile(round_trips, 99)),
        "frames_sent": frames * streams,
        "frames_lost": lost,
        "frames_lost_in_call_setup": lost_in_setup,
        "frames_duplicated": duplicated,
        "misrouted": sum(len(s.errors) for s in all_streams),
        "cpu_percent_per_call": 100 * busy / streams,
        "cpu_percent_total": 100 * busy,
        "rss_mib_idle": rss_idle / 2**20,
        "rss_kib_per_call": (rss_loaded - rss_idle) / 1024 / streams,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.ws_path", description=__doc__)
    parser.add_argument("--streams", type=int, default=100)
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--binary-bot", action="store_true", help="bot audio in binary frames")
    args = parser.parse_args(argv)
    results: dict[str, float] = {}

    async def run() -> None:
        results.update(await measure(args.streams, args.seconds, binary_bot=args.binary_bot))

    run_fast(run())  # uvloop, so the load generator leaves the bridge its core
    width = max(map(len, results))
    for key, value in results.items():
        print(
            f"{key:<{width}}  {value:.3f}"
            if isinstance(value, float)
            else f"{key:<{width}}  {value}"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
