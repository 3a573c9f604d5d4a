"""SIP calls with RTP both ways through voxgate, side by side with rtpengine.

    bench/setup-rtpengine                  # once: Debian's rtpengine-daemon, service not started
    .venv/bin/python -m bench.sip_path     # 200 calls x 60 s, 2 rounds, set-up at 50 calls/s
    .venv/bin/python -m bench.sip_path --calls 20 --seconds 10 --rounds 1 --setup-seconds 5
    .venv/bin/python -m bench.sip_path --parts voxgate --profile /tmp/voxgate.txt

Each round measures, in turn (the order of the first two rotates each round, and
the ratio of CPU per call is taken within a round):

- ``voxgate``: ``voxgate serve --workers 1`` with a timed echo bot in its own
  process (voxgate.v1 on picows: it sends each media message's audio straight
  back, PCMU passthrough both ways). N calls are set up by this process's own SIP
  caller, at the set-up rate, then every call sends a marked 20 ms PCMU packet
  every 20 ms for ``--seconds`` plus 2 s of warm-up; voxgate forwards each to
  the bot, the bot echoes it, voxgate sends it back as RTP. Then BYE.
- ``rtpengine``: Debian's rtpengine in the foreground, userspace only
  (``--table=-1``), N calls set up over its ng control protocol between two
  endpoints of this process (offer with the caller's SDP, answer with the
  callee's), then the same packets on the same grid, caller -> callee and callee
  -> caller. A call is two RTP streams of 50 packets/s in both cases: through
  rtpengine the two legs of a B2BUA, through voxgate the caller's audio in and
  the bot's audio out (plus the WebSocket messages to and from the bot, which is
  the bridge's job).
- ``setup``: SIPp (``sipp``, the tests' SIP peer) placing calls of
  ``--setup-hold`` seconds (INVITE, 200, ACK, BYE; no RTP from SIPp) into a
  fresh voxgate at ``--setup-rate`` calls/s for ``--setup-seconds``: failed
  calls, calls/s achieved, set-up time (INVITE -> 200), voxgate's CPU.

Why a SIP caller of our own for the media runs rather than SIPp: every call needs
its own RTP socket whose packets carry marks and are timed by the kernel on the
way back, and SIPp's RTP comes from files and pcaps; the caller is small
(bench/sip_path_peers.py, built on voxgate's own SIP serializer and parser) and
SIPp, an independent peer, checks the set-up rate. The load generator is this
process (uvloop): one socket per endpoint, one grid of 20 timer slots for all
calls' packets (bench/sip_path_load.py), so that it costs little beside the
relay on a 2-core machine; its CPU is measured and shown, as are the bot's and
the whole machine's. CPU is read from /proc over the steady part of the run
(after the warm-up, the calls all up), for voxgate its process and any workers,
with each second's figures kept in the JSON (``timeline``) to tell the relay's
hiccups from its neighbours'.

Latency, per direction, from frames' marks (a frame's send time at the load,
its arrival and departure at the bot, its kernel arrival time back at the
load): through voxgate, *in* is load -> bot (UDP in, voxgate, the WebSocket to
the bot, the bot's read) and *out* is bot -> load (the WebSocket, voxgate and
its 20 ms playout grid, RTP out); through rtpengine, *in* is caller -> callee
and *out* callee -> caller. Both are path latencies that include the loopback
hops, so they bound what the relay adds from above. voxgate's own measure of
the inbound direction (RTP read -> written to the bot,
``voxgate_inbound_latency_seconds`` at /metrics) is shown beside it; voxgate
has no outbound measure for SIP legs. Loss is counted over the measured frames:
sent and never back (the calls end once no frame has come back for 0.5 s, at
most 15 s after the last was sent). Then all calls are hung up at once (200
BYEs together: their response times are shown).

``--json FILE`` writes every figure; ``--keep`` keeps the logs, voxgate's
/metrics and the raw frame times (``.npz``) in a directory it names;
``--profile FILE`` runs py-spy on voxgate over round 1's measured window and
writes its top frames. Everything started here (voxgate, the bot, rtpengine,
SIPp, py-spy) is stopped at the end, on errors too, and dies with this process
(PR_SET_PDEATHSIG). Helpers: bench/sip_path_run.py.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import os
import shutil
import signal
import sys
import tempfile
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any, Final, TypeVar

import httpx
import numpy as np
import numpy.typing as npt

from bench.relay_compare import _counter, _family
from bench.sip_path_load import RtpLoad, percentiles
from bench.sip_path_peers import Dialog, RtpEngine, SipCaller, serve_bot
from bench.sip_path_run import (
    PROCESSES,
    Window,
    clean_env,
    free_tcp_port,
    free_udp_port,
    measure_setup,
    profile_report,
    start_profile,
    wait_bot,
    wait_http,
)
from bench.ws_path import _metric
from voxgate.cli import run_fast

FRAME_RATE: Final = 50
WARM_UP: Final = 2.0  # seconds of media before the measured window
VOXGATE_RTP: Final = (16000, 19998)
RTPENGINE_RTP: Final = (20000, 23999)
PARTS: Final = ("voxgate", "rtpengine", "setup")
COUNTERS: Final = (
    "rtp_send_errors", "sip_calls_refused", "calls_rtp_timeout", "frames_late", "frames_padded",
    "scheduler_late_wakeups", "errors",
)  # fmt: skip
T = TypeVar("T")

Figures = dict[str, Any]
Matrix = npt.NDArray[np.float64]


async def _ramp(count: int, rate: float, start: Callable[[int], Awaitable[T]]) -> list[T]:
    """``start(i)`` for i < count, begun ``1 / rate`` s apart; all their results."""
    loop = asyncio.get_running_loop()
    began = loop.time()
    tasks: list[asyncio.Future[T]] = []
    for index in range(count):
        delay = began + index / rate - loop.time()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.ensure_future(start(index)))
    return list(await asyncio.gather(*tasks))


# --- voxgate ---------------------------------------------------------------------------------


async def start_voxgate(scratch: Path, calls: int, frames: int, name: str) -> tuple[int, int, int]:
    """The timed echo bot and ``voxgate serve``; returns voxgate's pid, HTTP and SIP ports."""
    bot_port, http_port, sip_port = free_tcp_port(), free_tcp_port(), free_udp_port()
    out = scratch / f"{name}-bot.npz"
    argv = [sys.executable, "-m", "bench.sip_path", "serve-bot", str(bot_port), str(calls)]
    bot_log = scratch / f"{name}-bot.log"
    PROCESSES.spawn([*argv, str(frames), str(out)], clean_env(), bot_log, name=f"{name}-bot")
    env = clean_env() | {
        "VOXGATE_PORT": str(http_port),
        "VOXGATE_SIP_PORT": str(sip_port),
        "VOXGATE_SIP_RTP_PORT_MIN": str(VOXGATE_RTP[0]),
        "VOXGATE_SIP_RTP_PORT_MAX": str(VOXGATE_RTP[1]),
        "VOXGATE_BOT_URL": f"ws://127.0.0.1:{bot_port}/",
        "VOXGATE_MAX_CALLS": str(calls + 100),
        "VOXGATE_MAX_PENDING": str(calls + 100),
        "VOXGATE_LOG_LEVEL": "warning",
        "VOXGATE_LOG_FORMAT": "text",
    }
    argv = [sys.executable, "-m", "voxgate", "serve", "--workers", "1"]
    voxgate = PROCESSES.spawn(argv, env, scratch / f"{name}-voxgate.log", name=name)
    await wait_bot(bot_port)
    await wait_http(f"http://127.0.0.1:{http_port}")
    return voxgate.pid, http_port, sip_port


async def measure_voxgate(
    calls: int, seconds: float, rate: float, scratch: Path, profile: Path | None
) -> Figures:
    frames = int((WARM_UP + seconds) * FRAME_RATE)
    pid, http_port, sip_port = await start_voxgate(scratch, calls, frames, "voxgate")
    base = f"http://127.0.0.1:{http_port}"
    caller = SipCaller(("127.0.0.1", sip_port))
    await caller.open()
    load = RtpLoad(calls, 1, frames)
    spy = None
    try:
        endpoints = [load.add(index, 0) for index in range(calls)]
        dialogs = await _ramp(calls, rate, lambda i: caller.invite(i, endpoints[i].port))
        for dialog in dialogs:
            if dialog.status == 200 and dialog.remote is not None:
                endpoints[dialog.index].remote = dialog.remote
        grid = load.start()
        load.measure(load.begin + WARM_UP, seconds)
        bot = PROCESSES.pid_of("voxgate-bot")
        window = Window({"relay": _family(pid), "bot": [bot], "load": [os.getpid()]})
        if profile is not None:
            await asyncio.sleep(max(0.0, load.begin + WARM_UP - asyncio.get_running_loop().time()))
            spy = start_profile(pid, seconds, scratch / "profile.raw")
        used = await window.measure(load.begin + WARM_UP, seconds)
        async with httpx.AsyncClient() as client:
            inbound = await _metric(client, base, "inbound_latency_seconds")
        await grid
        await load.settle()
        hung_up = await asyncio.gather(*(caller.bye(d) for d in dialogs))
        await asyncio.sleep(0.5)  # the calls' summaries reach the counters
        async with httpx.AsyncClient() as client:
            text = (await client.get(f"{base}/metrics")).text
        (scratch / "voxgate-metrics.txt").write_text(text)
    finally:
        load.close()
        caller.close()
        PROCESSES.stop("voxgate")
        PROCESSES.stop("voxgate-bot")
    if spy is not None and profile is not None:
        profile_report(spy, scratch / "profile.raw", profile)
    bot_times = np.load(scratch / "voxgate-bot.npz")
    np.savez(scratch / "voxgate-load.npz", sent=load.matrix("sent", 0), back=load.matrix("back", 0))
    return {
        **_call_figures(caller, dialogs, hung_up),
        **_frame_figures(load, bot_times["arrived"], bot_times["left"]),
        "voxgate_in_p50_ms": inbound[0] * 1000,
        "voxgate_in_p99_ms": inbound[1] * 1000,
        "counters": {name: _counter(text, name) for name in COUNTERS},
        "relay_pct_per_call": 100 * used["relay_cores"] / calls,
        "timeline": window.timeline,
        **used,
    }


def _call_figures(caller: SipCaller, dialogs: list[Dialog], hung_up: list[bool]) -> Figures:
    up = [d for d in dialogs if d.status == 200]
    return {
        "calls_up": len(up),
        "calls_failed": len(dialogs) - len(up),
        "calls_dropped": sum(1 for d in dialogs if d.dropped),
        "bye_failed": sum(
            1 for d, ok in zip(dialogs, hung_up, strict=True) if d.status == 200 and not ok
        ),
        "setup_ms": percentiles(np.array([d.answered_at - d.invited_at for d in up])),
        "bye_ms": percentiles(
            np.array([d.bye_answered_at - d.bye_sent_at for d in up if d.bye_answered_at])
        ),
        "invite_retransmissions": caller.retransmissions,
        "bye_retransmissions": caller.bye_retransmissions,
    }


def _frame_figures(load: RtpLoad, arrived: Matrix, left: Matrix) -> Figures:
    """Loss and latency per direction over the measured frames (after the warm-up)."""
    skip = int(WARM_UP * FRAME_RATE)
    sent, back = load.matrix("sent", 0)[:, skip:], load.matrix("back", 0)[:, skip:]
    arrived, left = arrived[:, skip:], left[:, skip:]
    valid = ~np.isnan(sent)
    return {
        "frames_sent": int(valid.sum()),
        "lost": int((valid & np.isnan(back)).sum()),
        "lost_before_bot": int((valid & np.isnan(arrived)).sum()),
        "in": percentiles((arrived - sent)[valid & ~np.isnan(arrived)]),
        "out": percentiles((back - left)[~np.isnan(back) & ~np.isnan(left)]),
        "rtt": percentiles((back - sent)[valid & ~np.isnan(back)]),
        "duplicated": load.duplicated,
        "misrouted": load.misrouted,
        "silence_packets": load.unmarked,
    }


# --- rtpengine --------------------------------------------------------------------------------


async def measure_rtpengine(calls: int, seconds: float, rate: float, scratch: Path) -> Figures:
    binary = shutil.which("rtpengine") or "/usr/bin/rtpengine"
    if not Path(binary).exists():
        raise RuntimeError("rtpengine is not installed: run bench/setup-rtpengine")
    ng_port = free_udp_port()
    argv = [
        binary, "--config-file=none", "--foreground", "--log-stderr", "--log-level=4",
        "--table=-1", "--interface=127.0.0.1", f"--listen-ng=127.0.0.1:{ng_port}",
        f"--port-min={RTPENGINE_RTP[0]}", f"--port-max={RTPENGINE_RTP[1]}",
        "--timeout=300", "--delete-delay=0",
    ]  # fmt: skip
    process = PROCESSES.spawn(argv, None, scratch / "rtpengine.log", name="rtpengine")
    engine = RtpEngine(("127.0.0.1", ng_port))
    await engine.open()
    frames = int((WARM_UP + seconds) * FRAME_RATE)
    load = RtpLoad(calls, 2, frames)
    try:
        await _ping(engine)
        pairs = [(load.add(i, 0), load.add(i, 1)) for i in range(calls)]

        async def relay(index: int) -> None:
            caller, callee = pairs[index]
            local = ("127.0.0.1", caller.port), ("127.0.0.1", callee.port)
            to_callee, to_caller = await engine.relay(f"bench-{index}", *local)
            caller.remote, callee.remote = ("127.0.0.1", to_callee), ("127.0.0.1", to_caller)

        await _ramp(calls, rate, relay)
        grid = load.start()
        window = Window({"relay": [process.pid], "load": [os.getpid()]})
        used = await window.measure(load.begin + WARM_UP, seconds)
        await grid
        await load.settle()
        for index in range(calls):
            with contextlib.suppress(TimeoutError, RuntimeError):
                await engine.delete(f"bench-{index}")
    finally:
        load.close()
        engine.close()
        PROCESSES.stop("rtpengine")
    skip = int(WARM_UP * FRAME_RATE)
    figures: Figures = {"frames_sent": 0, "lost": 0}
    for side, name in ((0, "in"), (1, "out")):
        sent, back = load.matrix("sent", side)[:, skip:], load.matrix("back", side)[:, skip:]
        valid = ~np.isnan(sent)
        figures["frames_sent"] += int(valid.sum())
        figures["lost"] += int((valid & np.isnan(back)).sum())
        figures[name] = percentiles((back - sent)[valid & ~np.isnan(back)])
    return figures | {
        "duplicated": load.duplicated,
        "misrouted": load.misrouted,
        "relay_pct_per_call": 100 * used["relay_cores"] / calls,
        "timeline": window.timeline,
        **used,
    }


async def _ping(engine: RtpEngine) -> None:
    for _ in range(100):
        try:
            await engine.command({"command": "ping"}, timeout=0.1)
            return
        except (TimeoutError, RuntimeError):
            await asyncio.sleep(0.05)
    raise RuntimeError("rtpengine did not answer ping")


# --- rounds and the report ------------------------------------------------------------------


async def run_round(number: int, args: argparse.Namespace, scratch: Path) -> Figures:
    relays = [part for part in ("voxgate", "rtpengine") if part in args.parts]
    order = relays[number % len(relays) :] + relays[: number % len(relays)] if relays else []
    figures: Figures = {"round": number + 1, "order": order}
    limit = args.seconds + args.calls / args.setup_rate + 120
    for relay in order:
        if relay == "voxgate":
            profile = args.profile if number == 0 else None
            work = measure_voxgate(args.calls, args.seconds, args.setup_rate, scratch, profile)
        else:
            work = measure_rtpengine(args.calls, args.seconds, args.setup_rate, scratch)
        figures[relay] = await asyncio.wait_for(work, limit)
    if "voxgate" in figures and "rtpengine" in figures:
        ratio = figures["voxgate"]["relay_cores"] / figures["rtpengine"]["relay_cores"]
        figures["cpu_ratio"] = ratio
    if "setup" in args.parts:
        limit = args.setup_seconds + args.setup_hold + 120
        figures["setup"] = await asyncio.wait_for(
            measure_setup(args.setup_rate, args.setup_seconds, args.setup_hold, scratch,
                          start_voxgate), limit,
        )  # fmt: skip
    return figures


def _ms(figures: Figures) -> str:
    return f"{figures['p50_ms']:.2f}/{figures['p99_ms']:.2f}"


def report_round(figures: Figures, calls: int, seconds: float) -> list[str]:
    lines = [f"round {figures['round']} (order: {', '.join(figures['order'])}), "
             f"{calls} calls, {seconds:g} s measured"]  # fmt: skip
    for relay in ("voxgate", "rtpengine"):
        if relay not in figures:
            continue
        f = figures[relay]
        ratio = f"x rtpengine {figures['cpu_ratio']:.2f}" if relay == "voxgate" and (
            "cpu_ratio" in figures) else ""  # fmt: skip
        bot = f"  bot {100 * f['bot_cores']:.1f} %" if "bot_cores" in f else ""
        lines.append(
            f"  {relay:<9} {f['relay_pct_per_call']:6.3f} % core/call {ratio:<16}"
            f" in p50/p99 {_ms(f['in'])} ms  out p50/p99 {_ms(f['out'])} ms"
            f" (system {100 * f['relay_system_cores'] / f['relay_cores']:.0f} %)"
            f"  lost {f['lost']} of {f['frames_sent']}  dup {f['duplicated']}"
            f" misrouted {f['misrouted']}  | load {100 * f['load_cores']:.1f} %{bot}"
            f"  machine {f['machine_cores']:.2f} of {os.cpu_count()} cores"
            f" (other processes {_others(f):.2f}, steal {f['steal_cores']:.2f})"
        )
        if relay == "voxgate":
            lines.append(
                f"            voxgate's own in p50/p99 {f['voxgate_in_p50_ms']:.2f}/"
                f"{f['voxgate_in_p99_ms']:.2f} ms  round trip {_ms(f['rtt'])} ms"
                f"  calls up {f['calls_up']} failed {f['calls_failed']} dropped"
                f" {f['calls_dropped']} BYE failed {f['bye_failed']}  set-up p50/p99"
                f" {_ms(f['setup_ms'])} ms  BYE p50/p99 {_ms(f['bye_ms'])} ms"
                f"  retransmissions INVITE {f['invite_retransmissions']}"
                f" BYE {f['bye_retransmissions']}  silence packets {f['silence_packets']}"
                f"  counters {json.dumps({k: v for k, v in f['counters'].items() if v})}"
            )
    if "setup" in figures:
        s = figures["setup"]
        lines.append(
            f"  set-up    SIPp {s['rate']:g} calls/s x {s['seconds']:g} s, {s['hold']:g} s calls:"
            f" {s['created']} placed, {s['successful']} ok, {s['failed']} failed,"
            f" {s['achieved_rate']:.1f} calls/s achieved, set-up mean {s['setup_mean_ms']:.1f} ms"
            f" (99 % {s['setup_p99_bucket']}), retransmissions {s['retransmissions']},"
            f" voxgate {100 * s['relay_cores']:.1f} % core"
        )
    return lines


def _others(figures: Figures) -> float:
    ours = sum(float(figures.get(f"{name}_cores", 0.0)) for name in ("relay", "bot", "load"))
    return float(figures["machine_cores"]) - ours


def verdicts(rounds: Sequence[Figures], setup_rate: float) -> dict[str, bool | None]:
    def every(key: str, test: Callable[[Figures], bool]) -> bool | None:
        values = [r for r in rounds if key in r]
        return all(test(r) for r in values) if values else None

    return {
        "cpu_ratio <= 2.0": every("cpu_ratio", lambda r: r["cpu_ratio"] <= 2.0),
        "p99 in <= 5 ms": every("voxgate", lambda r: r["voxgate"]["in"]["p99_ms"] <= 5.0),
        "p99 out <= 5 ms": every("voxgate", lambda r: r["voxgate"]["out"]["p99_ms"] <= 5.0),
        "zero loss": every("voxgate", lambda r: r["voxgate"]["lost"] == 0),
        "set-up: 0 failed": every("setup", lambda r: r["setup"]["failed"] == 0),
        "set-up: rate sustained": every(
            "setup", lambda r: r["setup"]["achieved_rate"] >= 0.98 * setup_rate
        ),
    }


async def compare(args: argparse.Namespace, scratch: Path) -> list[Figures]:
    rounds = []
    for number in range(args.rounds):
        figures = await run_round(number, args, scratch)
        rounds.append(figures)
        print("\n".join(report_round(figures, args.calls, args.seconds)), flush=True)
    return rounds


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.sip_path",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--calls", type=int, default=200)
    parser.add_argument("--seconds", type=float, default=60.0, help="measured, after warm-up")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--setup-rate", type=float, default=50.0, help="calls/s (also the ramp)")
    parser.add_argument("--setup-seconds", type=float, default=20.0)
    parser.add_argument("--setup-hold", type=float, default=2.0, help="seconds per SIPp call")
    parser.add_argument("--parts", default=",".join(PARTS), help="comma-separated subset")
    parser.add_argument("--profile", type=Path, help="py-spy voxgate in round 1: top frames here")
    parser.add_argument("--json", type=Path, help="write every figure here")
    parser.add_argument("--keep", action="store_true", help="keep the logs (path printed)")
    parser.add_argument("role", nargs="*", help=argparse.SUPPRESS)  # the bench's own processes
    args = parser.parse_args(argv)
    if args.role and args.role[0] == "serve-bot":
        port, calls, frames, out = args.role[1:5]
        run_fast(serve_bot(int(port), int(calls), int(frames), out))
        return 0
    args.parts = [p for p in args.parts.split(",") if p]
    if set(args.parts) - set(PARTS):
        parser.error(f"--parts: among {', '.join(PARTS)}")
    scratch = Path(tempfile.mkdtemp(prefix="voxgate-sip-path-"))
    rounds: list[Figures] = []
    try:
        run_fast(_stoppable(compare(args, scratch), rounds))
    except asyncio.CancelledError:
        print("interrupted", file=sys.stderr)
        return 130
    finally:
        PROCESSES.stop_all()
        if args.keep:
            print(f"logs: {scratch}")
        else:
            shutil.rmtree(scratch, ignore_errors=True)
    checks = verdicts(rounds, args.setup_rate)
    print("targets: " + ", ".join(f"{k}: {_word(v)}" for k, v in checks.items()))
    if args.json:
        document = {"args": {k: str(v) for k, v in vars(args).items()}, "rounds": rounds,
                    "targets": checks, "cores": os.cpu_count(), "python": sys.version}  # fmt: skip
        args.json.write_text(json.dumps(_finite(document), indent=2, default=str))
    return 0


async def _stoppable(work: Awaitable[list[Figures]], rounds: list[Figures]) -> None:
    """Run ``work`` into ``rounds``; SIGINT or SIGTERM cancels it (its clean-ups run)."""
    task = asyncio.current_task()
    assert task is not None
    loop = asyncio.get_running_loop()
    for number in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(number, task.cancel)
    rounds.extend(await work)


def _word(value: bool | None) -> str:
    return "not measured" if value is None else "met" if value else "MISSED"


def _finite(value: object) -> object:
    """``value`` with NaN and infinities as None (JSON has neither)."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {str(k): _finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(v) for v in value]
    return value


if __name__ == "__main__":
    raise SystemExit(main())
