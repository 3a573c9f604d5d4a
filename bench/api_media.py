"""The media path of live calls with and without REST API traffic beside it, side by side.

    .venv/bin/python -m bench.api_media                 # 100 calls; phases a, b, a, b of 30 s
    .venv/bin/python -m bench.api_media --calls 20 --phase-seconds 10 --stored 10000

One ``voxgate serve --workers 1`` on a SQLite store filled as bench/api_list.py fills it
(``--stored`` calls, keys, number routes), its bot the voxgate.v1 echo bot of
bench/relay_compare.py in its own process. This process drives N Twilio-style carrier
streams through it for the whole run (relay_compare's load: a numbered 20 ms PCMU frame
every 20 ms per stream, each timed back), and after ``--setup-seconds`` the run is cut
into phases of equal length that alternate (``--phases abab``):

- ``a``: the calls alone;
- ``b``: the calls, and a client in its own process sending ``--api-rate`` requests/s
  (open loop, on a fixed grid, whatever the answers' pace) of a mix: ``GET /v1/calls``
  (first page, 30 %), ``GET /v1/calls/{id}`` (40 %), ``POST /v1/calls`` with a test key
  and a simulated callee that is busy at once (10 %: a record and its events, no media),
  ``GET /v1/numbers`` (15 %), ``GET /metrics`` (5 %), each timed by a lean HTTP client.

Per phase, the media path three ways: the round trip each frame makes (carrier ->
voxgate -> bot -> voxgate -> carrier, every frame sent in the phase, seen by this
process); voxgate's own added latency (``voxgate_inbound_latency_seconds``: carrier
frame read -> written to the bot; ``..._outbound_...``: bot audio read -> frame written
to the carrier, including its wait for the 20 ms slot), read from /metrics at the end of
every slice of 50,000 frames (its reservoir: 10 s at 100 calls); and voxgate's counters
of late frames and late timer wake-ups. A phase shows the median of its slices (the round
trip also over the whole phase); b - a is the median over all b slices minus that over
all a slices, so that a slice another process upset moves it little. CPU: voxgate's, the
client's, and the machine's that is not this bench's. Target (the control plane's
issue): the API at 100 requests/s adds no more than 1 ms to the media path's p99.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import random
import re
import shutil
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import httpx
import numpy as np

from bench.api_list import fill_store
from bench.relay_compare import VOXGATE_COUNTERS, Leg, _counter, _drive, _family
from bench.sip_path_load import percentiles
from bench.sip_path_run import (
    PROCESSES,
    clean_env,
    cpu_seconds,
    free_tcp_port,
    machine_seconds,
    profile_report,
    start_profile,
    wait_bot,
    wait_http,
)
from voxgate.cli import run_fast
from voxgate.obs import RESERVOIR

MIX: Final = (("list", 30), ("get", 40), ("create", 10), ("numbers", 15), ("metrics", 5))
PATHS: Final = {"list": "/v1/calls?limit=50", "numbers": "/v1/numbers", "metrics": "/metrics"}
FRAMES_PER_SECOND: Final = 50
MAX_IN_FLIGHT: Final = 64  # API requests; past it the client skips (and counts) a slot
TARGET_MS: Final = 1.0
MEASURES: Final = tuple(
    f"{m}_{q}_ms" for m in ("rtt", "inbound", "outbound") for q in ("p50", "p99")
)
Figures = dict[str, Any]


# --- the API client (its own process) --------------------------------------------------------


class Connections:
    """Keep-alive HTTP/1.1 connections to ``host:port``, a lean client (a request costs it a
    write, a read of the head and of ``Content-Length`` bytes), so that on a 2-core machine
    the client takes little CPU from the bridge it measures. Any failure: status 0."""

    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self.idle: list[tuple[asyncio.StreamReader, asyncio.StreamWriter, float]] = []

    async def request(self, method: str, path: str, headers: str, body: bytes = b"") -> int:
        while self.idle:  # the server drops a connection idle for 5 s (uvicorn's keep-alive)
            reader, writer, since = self.idle.pop()
            if time.monotonic() - since < 2.0 and not reader.at_eof():
                break
            writer.close()
        else:
            try:
                reader, writer = await asyncio.open_connection(self.host, self.port)
            except OSError:
                return 0
        head = f"{method} {path} HTTP/1.1\r\nHost: {self.host}\r\n{headers}"
        writer.write(f"{head}Content-Length: {len(body)}\r\n\r\n".encode() + body)
        try:
            async with asyncio.timeout(10):
                answer = await reader.readuntil(b"\r\n\r\n")
                length = re.search(rb"(?i)\r\ncontent-length: *([0-9]+)", answer)
                await reader.readexactly(int(length[1]) if length else 0)
        except (OSError, TimeoutError, asyncio.IncompleteReadError, asyncio.LimitOverrunError):
            writer.close()
            return 0
        self.idle.append((reader, writer, time.monotonic()))
        return int(answer[9:12])


async def api_client(base: str, keys: tuple[str, str], ids: list[str], windows: list[list[float]],
                     *, rate: float, out: Path) -> None:  # fmt: skip
    """``rate`` requests/s of :data:`MIX` within each ``[start, end)`` (wall clock); every
    request's kind, window, seconds and status to ``out`` (JSON)."""
    live, test = (f"Authorization: Bearer {key}\r\n" for key in keys)
    rng = random.Random(5)
    cycle = [kind for kind, weight in MIX for _ in range(weight)]
    rng.shuffle(cycle)
    body = json.dumps({"to": "+15552000042", "simulated_callee": {"outcome": "busy", "ring": 0}})
    url = httpx.URL(base)
    client = Connections(url.host, url.port or 80)
    done: list[tuple[str, int, float, int]] = []
    skipped, in_flight = 0, 0

    async def one(kind: str, window: int) -> None:
        nonlocal in_flight
        began = time.perf_counter()
        if kind == "create":
            kind_of = "Content-Type: application/json\r\n"
            status = await client.request("POST", "/v1/calls", test + kind_of, body.encode())
        else:
            path = PATHS.get(kind) or f"/v1/calls/{rng.choice(ids)}"
            status = await client.request("GET", path, live)
        done.append((kind, window, time.perf_counter() - began, status))
        in_flight -= 1

    loop = asyncio.get_running_loop()
    tasks: set[asyncio.Task[None]] = set()
    for window, (start, end) in enumerate(windows):
        origin = loop.time() + start - time.time()
        for slot in range(int((end - start) * rate)):
            await asyncio.sleep(max(0.0, origin + slot / rate - loop.time()))
            if in_flight >= MAX_IN_FLIGHT:
                skipped += 1
                continue
            in_flight += 1
            task = asyncio.create_task(one(cycle[slot % len(cycle)], window))
            tasks.add(task)
            task.add_done_callback(tasks.discard)
    await asyncio.gather(*tasks)
    out.write_text(json.dumps({"done": done, "skipped": skipped}))


# --- the run ------------------------------------------------------------------------------------


@dataclass
class Phase:
    kind: str  # "a" or "b"
    start: float  # time.monotonic()
    end: float
    slices: list[Figures] = field(default_factory=list)  # voxgate's own figures, per slice
    counters: dict[str, float] = field(default_factory=dict)
    cpu: float = 0.0  # voxgate, cores
    client: float = 0.0  # the API client, cores
    others: float = 0.0  # the machine's processes not of this bench, cores
    machine: float = 0.0  # the whole machine, cores


def _scrape(text: str) -> Figures:
    """voxgate's own p50/p99 per direction (ms) and its counters, from a /metrics text."""
    figures: Figures = {name: _counter(text, name) for name in VOXGATE_COUNTERS}
    for direction in ("inbound", "outbound"):
        pattern = rf'voxgate_{direction}_latency_seconds{{quantile="([0-9.]+)"}} ([0-9.e+-]+|nan)'
        values = dict(re.findall(pattern, text))
        for q, name in (("0.5", "p50"), ("0.99", "p99")):
            figures[f"{direction}_{name}_ms"] = float(values.get(q, "nan")) * 1000
    return figures


async def start_voxgate(args: argparse.Namespace, scratch: Path, store: str) -> tuple[int, str]:
    bot_port, port = free_tcp_port(), free_tcp_port()
    bot = [sys.executable, "-m", "bench.relay_compare", "serve-bot", "v1", str(bot_port)]
    PROCESSES.spawn(bot, clean_env(), scratch / "bot.log", name="bot")
    env = clean_env() | {
        "VOXGATE_PORT": str(port), "VOXGATE_BOT_URL": f"ws://127.0.0.1:{bot_port}/",
        "VOXGATE_STORE_URL": store, "VOXGATE_API_RATE_LIMIT": "100000",
        "VOXGATE_MAX_CALLS": str(args.calls + 200), "VOXGATE_MAX_PENDING": str(args.calls + 200),
        "VOXGATE_SIP_ENABLED": "false", "VOXGATE_LOG_LEVEL": "warning",
    }  # fmt: skip
    argv = [sys.executable, "-m", "voxgate", "serve", "--workers", "1"]
    voxgate = PROCESSES.spawn(argv, env, scratch / "voxgate.log", name="voxgate")
    await wait_bot(bot_port)
    base = f"http://127.0.0.1:{port}"
    await wait_http(base)
    return voxgate.pid, base


async def measure(args: argparse.Namespace, scratch: Path) -> Figures:
    filled = await fill_store(f"sqlite:///{scratch / 'voxgate.db'}", args.stored)
    pid, base = await start_voxgate(args, scratch, f"sqlite:///{scratch / 'voxgate.db'}")
    span = RESERVOIR / (FRAMES_PER_SECOND * args.calls)  # seconds voxgate's figures cover
    slice_seconds = min(args.phase_seconds, span)
    first = time.monotonic() + args.setup_seconds
    phases = [Phase(kind, first + i * args.phase_seconds, first + (i + 1) * args.phase_seconds)
              for i, kind in enumerate(args.phases)]  # fmt: skip
    windows = [[time.time() + p.start - time.monotonic(), time.time() + p.end - time.monotonic()]
               for p in phases if p.kind == "b"]  # fmt: skip
    ids = scratch / "ids.json"
    ids.write_text(json.dumps(list(filled.ids)))
    client_argv = [sys.executable, "-m", "bench.api_media", "client", base, filled.live_key,
                   filled.test_key, str(ids), json.dumps(windows), str(args.api_rate),
                   str(scratch / "api.json")]  # fmt: skip
    client_pid = PROCESSES.spawn(
        client_argv, clean_env(), scratch / "client.log", name="client"
    ).pid
    url = f"ws://{base.removeprefix('http://')}/v1/streams/twilio"
    seconds = phases[-1].end - time.monotonic() + 1.0
    load = asyncio.create_task(_drive(url, args.calls, seconds, exact=True))
    spy, bench = "", [os.getpid(), PROCESSES.pid_of("bot")]  # the load and the bot
    async with httpx.AsyncClient(base_url=base, timeout=30) as client:
        for phase in phases:
            await asyncio.sleep(max(0.0, phase.start - time.monotonic()))
            before = _scrape((await client.get("/metrics")).text)
            used, busy = sum(map(cpu_seconds, _family(pid))), machine_seconds()[0]
            asking, ours = cpu_seconds(client_pid), sum(map(cpu_seconds, bench))
            if phase.kind == "b" and args.profile and not spy:
                spy = start_profile(pid, phase.end - phase.start - 1, scratch / "profile.raw")
            at = phase.start
            while at + slice_seconds <= phase.end + 1e-6:
                at += slice_seconds
                await asyncio.sleep(max(0.0, at - time.monotonic()))
                phase.slices.append(_scrape((await client.get("/metrics")).text))
            wall = time.monotonic() - phase.start
            phase.cpu = (sum(map(cpu_seconds, _family(pid))) - used) / wall
            phase.machine = (machine_seconds()[0] - busy) / wall
            phase.client = (cpu_seconds(client_pid) - asking) / wall
            ours = (sum(map(cpu_seconds, bench)) - ours) / wall
            phase.others = phase.machine - phase.cpu - phase.client - ours
            last = phase.slices[-1]
            phase.counters = {name: last[name] - before[name] for name in VOXGATE_COUNTERS}
    legs = await load
    if spy:
        await asyncio.to_thread(profile_report, spy, scratch / "profile.raw", args.profile)
    for _ in range(600):
        if not PROCESSES.running("client"):
            break
        await asyncio.sleep(0.1)
    PROCESSES.stop("client")
    api = json.loads((scratch / "api.json").read_text())
    return _figures(args, phases, legs, api) | {"own_span_s": span}


def _figures(
    args: argparse.Namespace, phases: list[Phase], legs: list[Leg], api: Figures
) -> Figures:
    late = [leg.index for leg in legs if not leg.sent or leg.sent[0] > phases[0].start - 1.0]
    if late:
        raise RuntimeError(f"{len(late)} streams not flowing 1 s before the first phase: "
                           "raise --setup-seconds")  # fmt: skip
    sent = np.array([leg.sent for leg in legs], dtype=np.float64)
    back = np.full(sent.shape, math.nan)
    for row, leg in enumerate(legs):
        for number, at in leg.back.items():
            back[row, number] = at
    result: list[Figures] = []
    b_windows = [i for i, p in enumerate(phases) if p.kind == "b"]
    trips = back - sent
    for number, phase in enumerate(phases):
        inside = (sent >= phase.start) & (sent < phase.end)
        width = (phase.end - phase.start) / len(phase.slices)
        for k, part in enumerate(phase.slices):  # the round trip over each slice too
            at = phase.start + k * width
            rtt = percentiles(trips[(sent >= at) & (sent < at + width) & ~np.isnan(back)])
            part |= {"rtt_p50_ms": rtt["p50_ms"], "rtt_p99_ms": rtt["p99_ms"]}
        own = {key: float(np.median([s[key] for s in phase.slices])) for key in MEASURES}
        figures: Figures = {
            "phase": number + 1, "kind": phase.kind, "seconds": phase.end - phase.start,
            "frames": int(inside.sum()),
            "lost": int((inside & np.isnan(back)).sum()),
            "rtt": percentiles((back - sent)[inside & ~np.isnan(back)]),
            "own": own, "own_slices": phase.slices, "counters": phase.counters,
            "voxgate_cores": phase.cpu, "machine_cores": phase.machine,
            "client_cores": phase.client, "others_cores": phase.others,
        }  # fmt: skip
        if phase.kind == "b":
            window = b_windows.index(number)
            calls = [d for d in api["done"] if d[1] == window]
            figures["api"] = {
                "sent": len(calls),
                "failed": dict(Counter(f"{d[0]} {d[3]}" for d in calls if d[3] not in (200, 201))),
                "rate": len(calls) / (phase.end - phase.start),
                **{kind: percentiles(np.array([d[2] for d in calls if d[0] == kind]))
                   for kind, _ in MIX},
            }  # fmt: skip
        result.append(figures)
    return {"calls": args.calls, "api_rate": args.api_rate, "phases": result,
            "api_skipped": api["skipped"], "difference": _difference(result)}  # fmt: skip


def _difference(phases: list[Figures]) -> Figures:
    """Per measure (ms): the median over every slice of the b phases minus that of the a
    phases (a slice that another process on the machine upset moves a median little)."""

    def median(kind: str, key: str) -> float:
        values = [s[key] for p in phases if p["kind"] == kind for s in p["own_slices"]]
        return float(np.median(values)) if values else math.nan

    return {key: median("b", key) - median("a", key) for key in MEASURES}


def report(figures: Figures) -> list[str]:
    lines = [f"{figures['calls']} calls; API at {figures['api_rate']:g} requests/s in phases b"
             f" ({figures['api_skipped']} slots skipped: {MAX_IN_FLIGHT} in flight)"]  # fmt: skip
    for p in figures["phases"]:
        own, c = p["own"], p["counters"]
        lines.append(
            f"  phase {p['phase']} ({p['kind']}) rtt p50/p99/max {p['rtt']['p50_ms']:.2f}/"
            f"{p['rtt']['p99_ms']:.2f}/{p['rtt']['max_ms']:.1f} ms | voxgate in p50/p99 "
            f"{own['inbound_p50_ms']:.3f}/{own['inbound_p99_ms']:.3f} out "
            f"{own['outbound_p50_ms']:.3f}/{own['outbound_p99_ms']:.3f} ms | lost {p['lost']} "
            f"of {p['frames']} late {c['frames_late']:.0f} padded {c['frames_padded']:.0f} "
            f"late wake-ups {c['scheduler_late_wakeups']:.0f} | voxgate "
            f"{100 * p['voxgate_cores']:.0f} % of a core, machine {p['machine_cores']:.2f} cores"
            f" (not this bench's: {p['others_cores']:.2f})"
        )
        if "api" in p:
            a = p["api"]
            kinds = "  ".join(f"{k} {a[k]['p50_ms']:.1f}/{a[k]['p99_ms']:.1f}" for k, _ in MIX)
            lines.append(f"      API {a['sent']} requests ({a['rate']:.0f}/s, failed "
                         f"{a['failed']}, client {100 * p['client_cores']:.0f} % of a core), "
                         f"p50/p99 ms: {kinds}")  # fmt: skip
    if figures["own_span_s"] > figures["phases"][0]["seconds"] + 0.5:
        lines.append(f"  note: voxgate's own figures cover its last {figures['own_span_s']:.0f} s"
                     " at each read, more than a phase: they mix phases")  # fmt: skip
    d = figures["difference"]
    lines.append(
        "  b - a, medians of the slices (ms): " + ", ".join(f"{k} {v:+.3f}" for k, v in d.items())
    )
    worst = max(d["rtt_p99_ms"], d["inbound_p99_ms"], d["outbound_p99_ms"])
    word = "met" if worst <= TARGET_MS else "MISSED"
    lines.append(f"target: the API adds <= {TARGET_MS:g} ms to the media path's p99: {word}")
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.api_media",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--calls", type=int, default=100)
    parser.add_argument("--phases", default="abab", help="a: calls alone; b: calls and the API")
    parser.add_argument("--phase-seconds", type=float, default=30.0)
    parser.add_argument("--api-rate", type=float, default=100.0, help="requests/s in phases b")
    parser.add_argument("--stored", type=int, default=100_000, help="calls in the store")
    parser.add_argument("--setup-seconds", type=float, default=20.0, help="calls up, unmeasured")
    parser.add_argument("--profile", type=Path, help="py-spy voxgate in the first b: top frames")
    parser.add_argument("--json", type=Path, help="write every figure here")
    parser.add_argument("--keep", action="store_true", help="keep the store and the logs")
    parser.add_argument("role", nargs="*", help=argparse.SUPPRESS)  # the bench's own processes
    args = parser.parse_args(argv)
    if args.role and args.role[0] == "client":
        base, live, test, ids, windows, rate, out = args.role[1:8]
        run_fast(api_client(base, (live, test), json.loads(Path(ids).read_text()),
                            json.loads(windows), rate=float(rate), out=Path(out)))  # fmt: skip
        return 0
    if set(args.phases) - {"a", "b"}:
        parser.error("--phases: a string of a and b")
    scratch = Path(tempfile.mkdtemp(prefix="voxgate-api-media-"))
    figures: Figures = {}

    async def run() -> None:
        figures.update(await measure(args, scratch))

    try:
        run_fast(run())
    finally:
        PROCESSES.stop_all()
        if args.keep:
            print(f"kept: {scratch}")
        else:
            shutil.rmtree(scratch, ignore_errors=True)
    print("\n".join(report(figures)))
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2, default=str))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
