"""The floor under bench/ws_path.py: what relaying WebSocket messages costs in Python here.

    .venv/bin/python -m bench.ws_floor --streams 50 --seconds 15

A relay process (websockets on uvloop, no ASGI, no JSON, no base64, no pacing,
no call logic) forwards every message of N streams to an echo process and
back, exactly as voxgate does with carrier and bot sockets; the load
generator sends one Twilio-sized media message per stream every 20 ms. The
relay's CPU per stream is the least any Python bridge built on these
libraries can spend on this machine; voxgate's figure is read against it.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import subprocess
import sys
import time

from websockets.asyncio.client import ClientConnection, connect
from websockets.asyncio.server import ServerConnection, serve

from bench.ws_path import _cpu_seconds, _free_port
from voxgate.cli import run_fast

MEDIA = json.dumps(
    {"event": "media", "streamSid": "MZ" + "0" * 32, "media": {"payload": "A" * 216}}
)


async def _relay(port: int, echo_port: int) -> None:
    async def handler(carrier: ServerConnection) -> None:
        async with connect(f"ws://127.0.0.1:{echo_port}", compression=None) as bot:

            async def back() -> None:
                async for message in bot:
                    await carrier.send(message)

            task = asyncio.create_task(back())
            async for message in carrier:
                await bot.send(message)
            task.cancel()

    async with serve(handler, "127.0.0.1", port, compression=None):
        await asyncio.Future()


async def _echo(port: int) -> None:
    async def handler(socket: ServerConnection) -> None:
        async for message in socket:
            await socket.send(message)

    async with serve(handler, "127.0.0.1", port, compression=None):
        await asyncio.Future()


async def _drain(socket: ClientConnection) -> None:
    async for _ in socket:
        pass


async def _stream(port: int, seconds: float, start: float) -> None:
    async with connect(f"ws://127.0.0.1:{port}", compression=None) as socket:
        receiver = asyncio.create_task(_drain(socket))
        for number in range(int(seconds * 50)):
            await asyncio.sleep(max(0.0, start + number * 0.020 - time.monotonic()))
            await socket.send(MEDIA)
        receiver.cancel()


async def measure(streams: int, seconds: float) -> float:
    """The relay's CPU per stream, in % of one core."""
    port, echo_port = _free_port(), _free_port()
    me = [sys.executable, "-m", "bench.ws_floor"]
    echo = subprocess.Popen([*me, "--serve-echo", str(echo_port)], stderr=subprocess.DEVNULL)
    relay = subprocess.Popen(
        [*me, "--serve-relay", str(port), str(echo_port)], stderr=subprocess.DEVNULL
    )
    try:
        await asyncio.sleep(1.5)
        start = time.monotonic() + 0.5
        tasks = [asyncio.create_task(_stream(port, seconds, start)) for _ in range(streams)]
        await asyncio.sleep(2.5)
        cpu_before, wall_before = _cpu_seconds(relay.pid), time.monotonic()
        await asyncio.sleep(max(0.0, start + seconds - 1.0 - time.monotonic()))
        cpu_after, wall_after = _cpu_seconds(relay.pid), time.monotonic()
        await asyncio.gather(*tasks)
    finally:
        for process in (relay, echo):
            process.terminate()
            process.wait(10)
    return 100 * (cpu_after - cpu_before) / (wall_after - wall_before) / streams


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.ws_floor", description=__doc__)
    parser.add_argument("--streams", type=int, default=50)
    parser.add_argument("--seconds", type=float, default=15.0)
    parser.add_argument("--serve-echo", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--serve-relay", type=int, nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.serve_echo:
        run_fast(_echo(args.serve_echo))
    elif args.serve_relay:
        run_fast(_relay(*args.serve_relay))
    else:
        result: list[float] = []

        async def run() -> None:
            result.append(await measure(args.streams, args.seconds))

        run_fast(run())
        print(f"relay cpu per stream: {result[0]:.3f} % of one core ({args.streams} streams)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
