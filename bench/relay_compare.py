"""voxgate's media path against nginx and a naive Python bridge, side by side.

    bench/setup-nginx                                   # once: Debian's nginx-light
    .venv/bin/python -m bench.relay_compare             # N = 50 and 100, 3 rounds of 20 s
    .venv/bin/python -m bench.relay_compare --streams 100 --rounds 1 --seconds 10
    .venv/bin/python -m bench.relay_compare --capacity 250   # voxgate alone, one worker

The same load goes through each relay in turn, in interleaved rounds (the
order rotates each round, and ratios are taken within a round): N Twilio-style
carrier streams, each sending a 20 ms PCMU frame every 20 ms that says which
stream and frame it is, and recording when each comes back. Relays:

- ``nginx``: proxies the WebSocket to a bot that speaks the carrier's dialect
  and parses nothing (the floor: a C relay; bench/nginx/relay.conf);
- ``naive``: a bridge as one writes it first (websockets, json and base64 both
  ways, one task per direction, no pacing), to a voxgate.v1 echo bot;
- ``voxgate``: ``voxgate serve --workers 1`` to the same echo bot, PCMU on both
  sides (passthrough);
- ``voxgate-pcm24k``: the same with the bot taking PCM16 at 24 kHz (transcoding).

The bots and the load generator run on picows in their own processes, so that
they cost little and the relay's CPU (from /proc, every process of the relay)
is its own. Printed per relay: % of a core per call, the ratio to nginx and to
the naive bridge, frames lost, the round trip the carrier sees, and for
voxgate the latency it adds per direction by its own measure (``inbound``:
carrier frame read -> written to the bot; ``outbound``: bot audio read ->
written to the carrier, including the wait for its 20 ms slot).
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import binascii
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import numpy as np
import orjson
from picows import WSFrame, WSListener, WSMsgType, WSTransport, ws_connect, ws_create_server
from websockets.asyncio.client import connect
from websockets.asyncio.server import ServerConnection, serve

from bench.ws_path import _cpu_seconds, _frame, _free_port, _metric, _wait_http
from voxgate.cli import run_fast

HERE = Path(__file__).parent
WARM_UP = 2.0  # seconds of each run that are set-up, not steady state
RELAYS = ("nginx", "naive", "voxgate", "voxgate-pcm24k")
TEXT = WSMsgType.TEXT

# --- the bots (own processes) ---------------------------------------------------------


class _TwilioEcho(WSListener):
    """A bot in the carrier's own dialect: sends each media message back as it came."""

    def on_ws_frame(self, transport: WSTransport, frame: WSFrame) -> None:
        if frame.msg_type is TEXT:
            data = frame.get_payload_as_bytes()
            if b'"event":"media"' in data or b'"event": "media"' in data:
                transport.send(TEXT, data)
        elif frame.msg_type is WSMsgType.CLOSE:
            transport.send_close(frame.get_close_code())
            transport.disconnect()


class _V1Echo(WSListener):
    """A voxgate.v1 bot: sends the caller's audio straight back."""

    def on_ws_frame(self, transport: WSTransport, frame: WSFrame) -> None:
        if frame.msg_type is TEXT:
            message = orjson.loads(frame.get_payload_as_bytes())
            if message.get("type") == "media":
                reply = {"type": "response.audio.delta", "audio": message["audio"]}
                transport.send(TEXT, orjson.dumps(reply))
        elif frame.msg_type is WSMsgType.CLOSE:
            transport.send_close(frame.get_close_code())
            transport.disconnect()


async def _serve_bot(dialect: str, port: int) -> None:
    listener = _TwilioEcho if dialect == "twilio" else _V1Echo
    server = await ws_create_server(lambda request: listener(), "127.0.0.1", port)
    async with server:
        await server.serve_forever()


# --- the naive bridge (own process) ---------------------------------------------------


async def _serve_naive(port: int, bot_url: str) -> None:
    async def bridge(carrier: ServerConnection) -> None:
        sid = ""
        async with connect(bot_url, compression=None) as bot:

            async def up() -> None:
                nonlocal sid
                seq = 0
                async for message in carrier:
                    event = json.loads(message)
                    if event["event"] == "start":
                        sid = event["streamSid"]
                        pcmu = {"encoding": "pcmu", "sample_rate": 8000, "channels": 1}
                        start = {"type": "start", "protocol": "voxgate.v1", "call_id": sid,
                                 "media_format": pcmu, "audio_transport": "json"}  # fmt: skip
                        await bot.send(json.dumps(start))
                    elif event["event"] == "media":
                        seq += 1
                        audio = base64.b64decode(event["media"]["payload"])
                        out = {"type": "media", "seq": seq, "timestamp_ms": (seq - 1) * 20,
                               "audio": base64.b64encode(audio).decode()}  # fmt: skip
                        await bot.send(json.dumps(out))
                    elif event["event"] == "stop":
                        return

            async def down() -> None:
                async for message in bot:
                    event = json.loads(message)
                    if event["type"] == "response.audio.delta":
                        audio = base64.b64decode(event["audio"])
                        out = {"event": "media", "streamSid": sid,
                               "media": {"payload": base64.b64encode(audio).decode()}}  # fmt: skip
                        await carrier.send(json.dumps(out))

            downstream = asyncio.create_task(down())
            try:
                await up()
            finally:
                downstream.cancel()

    async with serve(bridge, "127.0.0.1", port, compression=None) as server:
        await server.serve_forever()


# --- the carriers (this process) ------------------------------------------------------


@dataclass
class Leg:
    index: int
    sent: list[float] = field(default_factory=list)
    back: dict[int, float] = field(default_factory=dict)
    duplicated: int = 0
    misrouted: int = 0
    transport: WSTransport | None = None


class _Carrier(WSListener):
    """One carrier stream's receiving side. With ``exact``, each frame is known by the
    stream and number it carries; through a transcoding relay (audio that does not come
    back bit for bit) the n-th frame back is taken to be frame n."""

    def __init__(self, leg: Leg, exact: bool) -> None:
        super().__init__()
        self.leg = leg
        self.exact = exact

    def on_ws_frame(self, transport: WSTransport, frame: WSFrame) -> None:
        if frame.msg_type is not TEXT:
            return
        now = time.monotonic()
        event = orjson.loads(frame.get_payload_as_bytes())
        if event.get("event") != "media":
            return
        leg = self.leg
        if not self.exact:
            leg.back[len(leg.back)] = now
            return
        audio = binascii.a2b_base64(event["media"]["payload"])
        owner, number = int.from_bytes(audio[:4], "big"), int.from_bytes(audio[4:8], "big")
        if owner != leg.index:
            leg.misrouted += 1
        elif number in leg.back:
            leg.duplicated += 1
        else:
            leg.back[number] = now


def _media(sid: str, number: int, payload: str) -> bytes:
    return (
        f'{{"event":"media","sequenceNumber":"{number + 2}","streamSid":"{sid}",'
        f'"media":{{"track":"inbound","chunk":"{number + 1}","timestamp":"{number * 20}",'
        f'"payload":"{payload}"}}}}'
    ).encode()


def _start(sid: str, index: int) -> bytes:
    return orjson.dumps({
        "event": "start", "sequenceNumber": "1", "streamSid": sid,
        "start": {"accountSid": "AC" + "0" * 32, "streamSid": sid,
                  "callSid": f"CA{index:032x}", "tracks": ["inbound"], "customParameters": {},
                  "mediaFormat": {"encoding": "audio/x-mulaw", "sampleRate": 8000,
                                  "channels": 1}},
    })  # fmt: skip


async def _drive(url: str, streams: int, seconds: float, *, exact: bool) -> list[Leg]:
    """N carrier streams for ``seconds``, paced on a 20 ms grid (stream i at offset i % 20 ms)."""
    legs = [Leg(i) for i in range(streams)]
    for leg in legs:
        transport, _ = await ws_connect(lambda leg=leg: _Carrier(leg, exact), url)
        leg.transport = transport
        sid = f"MZ{leg.index:032x}"
        transport.send(TEXT, b'{"event":"connected","protocol":"Call","version":"1.0.0"}')
        transport.send(TEXT, _start(sid, leg.index))
    loop = asyncio.get_running_loop()
    frames = int(seconds * 50)
    begin = loop.time() + 0.5
    payloads = [
        [base64.b64encode(_frame(leg.index, n)).decode() for n in range(frames)] for leg in legs
    ]
    done = loop.create_future()
    slots = [[leg for leg in legs if leg.index % 20 == slot] for slot in range(20)]

    def tick(slot: int, number: int) -> None:
        now = time.monotonic()
        for leg in slots[slot]:
            assert leg.transport is not None
            leg.sent.append(now)
            leg.transport.send(
                TEXT, _media(f"MZ{leg.index:032x}", number, payloads[leg.index][number])
            )
        if number + 1 < frames:
            loop.call_at(begin + (number + 1) * 0.020 + slot * 0.001, tick, slot, number + 1)
        elif slot == 19 and not done.done():
            done.set_result(None)

    for slot in range(20):
        loop.call_at(begin + slot * 0.001, tick, slot, 0)
    await done
    await asyncio.sleep(1.0)  # the last frames come back
    for leg in legs:
        assert leg.transport is not None
        sid = f"MZ{leg.index:032x}"
        stop = {"event": "stop", "sequenceNumber": str(frames + 2), "streamSid": sid,
                "stop": {"accountSid": "AC", "callSid": "CA"}}  # fmt: skip
        leg.transport.send(TEXT, orjson.dumps(stop))
        leg.transport.disconnect()
    return legs


# --- one measurement ------------------------------------------------------------------


@dataclass
class Started:
    pids: list[int]
    url: str
    metrics: str = ""  # voxgate's base URL, for its own latency measure
    processes: list[subprocess.Popen[bytes]] = field(default_factory=list)
    scratch: str = ""


def _python(*args: str) -> list[str]:
    return [sys.executable, "-m", *args]


def _spawn(argv: list[str], env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
    return subprocess.Popen(argv, env=env, stderr=subprocess.DEVNULL, stdout=subprocess.DEVNULL)


async def _start_relay(relay: str, streams: int) -> Started:
    bot_port, port = _free_port(), _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("VOXGATE_")}
    dialect = "twilio" if relay == "nginx" else "v1"
    bot = _spawn(_python("bench.relay_compare", "serve-bot", dialect, str(bot_port)), env)
    await _wait_port(bot_port)
    url = f"ws://127.0.0.1:{port}/v1/streams/twilio"
    if relay == "nginx":
        scratch = tempfile.mkdtemp(prefix="voxgate-nginx-")
        conf = (HERE / "nginx" / "relay.conf").read_text()
        conf = conf.replace("{PORT}", str(port)).replace("{BOT_PORT}", str(bot_port))
        Path(scratch, "relay.conf").write_text(conf.replace("{PREFIX}", scratch))
        nginx = shutil.which("nginx") or "/usr/sbin/nginx"
        relay_process = _spawn([nginx, "-p", scratch, "-c", f"{scratch}/relay.conf"])
        started = Started([relay_process.pid], url, scratch=scratch)
    elif relay == "naive":
        bot_url = f"ws://127.0.0.1:{bot_port}/"
        argv = _python("bench.relay_compare", "serve-naive", str(port), bot_url)
        relay_process = _spawn(argv, env)
        started = Started([relay_process.pid], url)
    else:
        bridge_env = {
            **env,
            "VOXGATE_PORT": str(port),
            "VOXGATE_BOT_URL": f"ws://127.0.0.1:{bot_port}/",
            "VOXGATE_LOG_LEVEL": "warning",
            "VOXGATE_MAX_CALLS": str(streams + 10),
            "VOXGATE_MAX_PENDING": str(streams + 10),
        }
        if relay == "voxgate-pcm24k":
            bridge_env["VOXGATE_BOT_AUDIO"] = "pcm16/24000"
        relay_process = _spawn(_python("voxgate", "serve", "--workers", "1"), bridge_env)
        base = f"http://127.0.0.1:{port}"
        await _wait_http(base)
        started = Started(_family(relay_process.pid), url, metrics=base)
    started.processes = [relay_process, bot]
    await _wait_port(port)
    return started


def _family(pid: int) -> list[int]:
    """``pid`` and its children (voxgate's workers)."""
    children = Path(f"/proc/{pid}/task/{pid}/children")
    found = [pid]
    if children.exists():
        for child in children.read_text().split():
            found.extend(_family(int(child)))
    return found


async def _wait_port(port: int) -> None:
    for _ in range(200):
        try:
            _, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.close()
            return
        except OSError:
            await asyncio.sleep(0.05)
    raise RuntimeError(f"nothing listens on {port}")


def _stop(started: Started) -> None:
    for process in started.processes:
        process.send_signal(signal.SIGINT)
    for process in started.processes:
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
    if started.scratch:
        shutil.rmtree(started.scratch, ignore_errors=True)


async def measure(relay: str, streams: int, seconds: float) -> dict[str, float]:
    started = await _start_relay(relay, streams)
    try:
        exact = relay != "voxgate-pcm24k"
        load = asyncio.create_task(_drive(started.url, streams, seconds, exact=exact))
        await asyncio.sleep(WARM_UP)
        pids = _family(started.pids[0]) if started.metrics else started.pids
        cpu_before, wall_before = sum(map(_cpu_seconds, pids)), time.monotonic()
        await asyncio.sleep(max(0.5, seconds - WARM_UP - 0.5))
        cpu_after, wall_after = sum(map(_cpu_seconds, pids)), time.monotonic()
        legs = await load
        result: dict[str, float] = {}
        if started.metrics:
            await asyncio.sleep(0.5)  # the calls end: their summaries reach /metrics
            async with httpx.AsyncClient() as client:
                inbound = await _metric(client, started.metrics, "inbound_latency_seconds")
                outbound = await _metric(client, started.metrics, "outbound_latency_seconds")
                text = (await client.get(f"{started.metrics}/metrics")).text
            result |= {name: _counter(text, name) for name in VOXGATE_COUNTERS}
            result |= {
                "in_p50_ms": inbound[0] * 1000,
                "in_p99_ms": inbound[1] * 1000,
                "out_p50_ms": outbound[0] * 1000,
                "out_p99_ms": outbound[1] * 1000,
            }
    finally:
        _stop(started)
    frames = int(seconds * 50)
    skip = int(WARM_UP * 50)
    trips = [
        leg.back[n] - leg.sent[n] for leg in legs for n in range(skip, frames) if n in leg.back
    ]
    busy = (cpu_after - cpu_before) / (wall_after - wall_before)
    return result | {
        "core_pct_per_call": 100 * busy / streams,
        "lost": sum(1 for leg in legs for n in range(frames) if n not in leg.back),
        "duplicated": sum(leg.duplicated + leg.misrouted for leg in legs),
        "rtt_p50_ms": float(np.percentile(trips, 50)) * 1000 if trips else float("nan"),
        "rtt_p99_ms": float(np.percentile(trips, 99)) * 1000 if trips else float("nan"),
    }


VOXGATE_COUNTERS = ("frames_late", "frames_padded", "scheduler_late_wakeups")


def _counter(text: str, name: str) -> float:
    """The total of counter ``name`` (all its labels) in a /metrics text."""
    pattern = rf"^voxgate_{name}(?:{{[^}}]*}})? ([0-9.e+]+)$"
    return sum(float(value) for value in re.findall(pattern, text, re.MULTILINE))


# --- the report -----------------------------------------------------------------------


def _row(relay: str, figures: dict[str, float], round_figures: dict[str, dict[str, float]]) -> str:
    core = figures["core_pct_per_call"]
    nginx = round_figures.get("nginx", {}).get("core_pct_per_call")
    naive = round_figures.get("naive", {}).get("core_pct_per_call")
    passthrough = round_figures.get("voxgate", {}).get("core_pct_per_call")
    ratios = [
        f"x nginx {core / nginx:.2f}" if nginx else "",
        f"x naive {core / naive:.2f}" if naive else "",
        f"x passthrough {core / passthrough:.2f}"
        if passthrough and relay == "voxgate-pcm24k"
        else "",
    ]
    own = (
        f"  in p50/p99 {figures['in_p50_ms']:.2f}/{figures['in_p99_ms']:.2f} ms"
        f"  out p50/p99 {figures['out_p50_ms']:.2f}/{figures['out_p99_ms']:.2f} ms"
        f"  late {figures['frames_late']:.0f} padded {figures['frames_padded']:.0f}"
        f" late wake-ups {figures['scheduler_late_wakeups']:.0f}"
        if "in_p50_ms" in figures
        else ""
    )
    return (
        f"  {relay:<15} {core:6.3f} % core/call  {'  '.join(r for r in ratios if r):<44}"
        f" lost {int(figures['lost']):>5}  dup {int(figures['duplicated'])}"
        f"  rtt p50/p99 {figures['rtt_p50_ms']:.2f}/{figures['rtt_p99_ms']:.2f} ms{own}"
    )


async def compare(counts: list[int], rounds: int, seconds: float, relays: list[str]) -> None:
    for count in counts:
        for number in range(rounds):
            order = relays[number % len(relays) :] + relays[: number % len(relays)]
            figures: dict[str, dict[str, float]] = {}
            for relay in order:
                figures[relay] = await asyncio.wait_for(
                    measure(relay, count, seconds), seconds + 60
                )
            print(f"N = {count}, round {number + 1} (order: {', '.join(order)})", flush=True)
            for relay in relays:
                print(_row(relay, figures[relay], figures), flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.relay_compare", description=__doc__)
    parser.add_argument("--streams", type=int, action="append", help="N (repeatable)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--relays", default=",".join(RELAYS), help="comma-separated subset")
    parser.add_argument("--capacity", type=int, help="voxgate alone with this many streams")
    parser.add_argument("role", nargs="*", help=argparse.SUPPRESS)  # the bench's own processes
    args = parser.parse_args(argv)
    if args.role and args.role[0] == "serve-bot":
        run_fast(_serve_bot(args.role[1], int(args.role[2])))
        return 0
    if args.role and args.role[0] == "serve-naive":
        run_fast(_serve_naive(int(args.role[1]), args.role[2]))
        return 0
    if args.capacity:
        figures = {}

        async def capacity() -> None:
            figures.update(await measure("voxgate", args.capacity, args.seconds))

        run_fast(capacity())
        print(f"N = {args.capacity}, voxgate alone (one worker)")
        print(_row("voxgate", figures, {}))
        return 0
    relays = [r for r in args.relays.split(",") if r]
    unknown = set(relays) - set(RELAYS)
    if unknown:
        parser.error(f"unknown relays: {', '.join(sorted(unknown))}")
    run_fast(compare(args.streams or [50, 100], args.rounds, args.seconds, relays))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
