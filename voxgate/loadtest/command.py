"""``voxgate loadtest TARGET``: its options, and one run from start to report.

TARGET is a carrier stream URL (``ws://host:port/v1/streams/twilio``, the dialect
taken from its last path segment unless ``--dialect`` says) or a SIP URI
(``sip:+15550001111@host:5060``). The bot is the node's own (``--bot node``, the
default: whatever the node routes the call to), any bot URL (sent as the stream's
``wss_url``; a SIP call cannot carry one), or ``embedded``: the load tester starts its
own echo bot (:mod:`voxgate.loadtest.echobot`) in a process of its own and points the
calls at it.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import logging
import os
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from voxgate.loadtest.capacity import Steps, Thresholds, find_capacity, verdict
from voxgate.loadtest.node import NodeWatch, bridge_latency
from voxgate.loadtest.probe import CallProbe
from voxgate.loadtest.results import build_result, finite
from voxgate.loadtest.runner import LoadSession, run_load
from voxgate.loadtest.wscall import DIALECTS, open_stream
from voxgate.redact import redact_url

log = logging.getLogger("voxgate.loadtest")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "target", metavar="TARGET", help="ws://host:port/v1/streams/twilio or sip:user@host:port"
    )
    parser.add_argument(
        "--calls", type=_positive_int, default=10, help="concurrent calls (default 10)"
    )
    parser.add_argument(
        "--duration",
        type=_positive_float,
        default=30.0,
        help="seconds to hold them all up (default 30)",
    )
    parser.add_argument(
        "--ramp", type=_positive_float, default=10.0, help="calls placed per second (default 10)"
    )
    parser.add_argument("--dialect", choices=(*DIALECTS, "sip"), help="default: from TARGET")
    parser.add_argument(
        "--bot", default="node", help="node (default), embedded, or a bot's ws:// URL"
    )
    parser.add_argument(
        "--bot-audio", help="the bot's audio format for stream calls, e.g. pcm16/16000"
    )
    parser.add_argument(
        "--dtmf-every",
        type=_positive_float,
        help="send a key every N seconds per call (default: 5 with --bot embedded, else none)",
    )
    parser.add_argument(
        "--late-ms",
        type=_positive_float,
        default=60.0,
        help="a frame this much later than the call's best round trip is late (default 60)",
    )
    parser.add_argument(
        "--node-pid", type=_positive_int, help="the node's process id (CPU and memory from /proc)"
    )
    parser.add_argument("--metrics", help="the node's /metrics URL (default: from a ws:// TARGET)")
    parser.add_argument(
        "--codec", choices=("PCMU", "PCMA"), default="PCMU", help="SIP calls' codec"
    )
    parser.add_argument(
        "--sip-username", default="", help="digest user for a node that asks for one"
    )
    parser.add_argument(
        "--sip-password",
        default=os.environ.get("VOXGATE_LOADTEST_SIP_PASSWORD", ""),
        help="digest password (default: $VOXGATE_LOADTEST_SIP_PASSWORD, kept out of ps)",
    )
    parser.add_argument("--json", type=Path, help="write the JSON result here")
    parser.add_argument("--html", type=Path, help="write the HTML report here")
    parser.add_argument(
        "--no-progress", action="store_true", help="no live view (log lines instead)"
    )
    capacity = parser.add_argument_group("capacity search (--find-capacity)")
    capacity.add_argument(
        "--find-capacity",
        action="store_true",
        help="raise concurrency in steps until a threshold breaks",
    )
    capacity.add_argument(
        "--start", type=_positive_int, default=50, help="first step's calls (default 50)"
    )
    capacity.add_argument(
        "--step", type=_positive_int, default=50, help="calls added per step (default 50)"
    )
    capacity.add_argument(
        "--max-calls", type=_positive_int, default=1000, help="stop there (default 1000)"
    )
    capacity.add_argument(
        "--step-seconds",
        type=_positive_float,
        default=10.0,
        help="measured seconds per step (default 10)",
    )
    capacity.add_argument(
        "--max-p99-ms", type=_positive_float, default=20.0, help="round-trip p99 limit (default 20)"
    )
    capacity.add_argument(
        "--max-loss", type=_ratio, default=0.001, help="lost frames ratio limit (default 0.001)"
    )
    capacity.add_argument(
        "--max-added-ms",
        type=_positive_float,
        help="limit on the latency the node says it adds, p99 in + p99 out (needs /metrics)",
    )
    capacity.add_argument(
        "--max-cpu", type=_positive_float, help="node CPU limit, %% of one core (default: none)"
    )


def _positive_int(text: str) -> int:
    value = int(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be above 0, not {value}")
    return value


def _ratio(text: str) -> float:
    value = float(text)
    if not 0.0 <= value <= 1.0:  # NaN fails too
        raise argparse.ArgumentTypeError(f"must be a ratio from 0 to 1, not {text!r}")
    return value


def _positive_float(text: str) -> float:
    value = float(text)
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"must be a number above 0, not {text!r}")
    return value


class UsageError(ValueError):
    """Options that cannot make a run (told on stderr, exit 2)."""


def dialect_of(target: str, chosen: str | None) -> str:
    if target.startswith(("sip:", "sips:")):
        if chosen not in (None, "sip"):
            raise UsageError(f"a SIP target takes --dialect sip, not {chosen}")
        return "sip"
    parts = urlsplit(target)
    if parts.scheme not in ("ws", "wss") or not parts.hostname:
        raise UsageError("TARGET must be a ws:// or wss:// stream URL or a sip: URI")
    if chosen is not None:
        if chosen == "sip":
            raise UsageError("--dialect sip needs a sip: TARGET")
        return chosen
    last = parts.path.rstrip("/").rsplit("/", 1)[-1]
    if last not in DIALECTS:
        raise UsageError(
            f"cannot tell the dialect from {parts.path!r}: give --dialect twilio|telnyx"
        )
    return last


def metrics_url(target: str, given: str | None) -> str | None:
    if given:
        return given
    parts = urlsplit(target)
    if parts.scheme not in ("ws", "wss"):
        return None
    scheme = "https" if parts.scheme == "wss" else "http"
    return urlunsplit((scheme, parts.netloc, "/metrics", "", ""))


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@contextlib.asynccontextmanager
async def embedded_bot() -> AsyncIterator[str]:
    """The load tester's echo bot in its own process; yields its URL."""
    port = _free_port()
    argv = [sys.executable, "-m", "voxgate.loadtest.echobot", "--port", str(port)]
    process = subprocess.Popen(argv, stdin=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 20
        while True:
            with contextlib.suppress(OSError):
                _, writer = await asyncio.open_connection("127.0.0.1", port)
                writer.close()
                break
            if process.poll() is not None or time.monotonic() > deadline:
                raise UsageError("the embedded echo bot did not start")
            await asyncio.sleep(0.05)
        yield f"ws://127.0.0.1:{port}/"
    finally:
        process.terminate()
        try:
            process.wait(5)
        except subprocess.TimeoutExpired:
            process.kill()


class SipCallOfProbe:
    """A SIP call with the probe it reports to (what the pacing grid reads)."""

    def __init__(self, call: Any, probe: CallProbe) -> None:
        self.call = call
        self.probe = probe
        self.send_audio = call.send_audio
        self.send_dtmf = call.send_dtmf
        self.hangup = call.hangup
        self.wait_ended = call.wait_ended


async def _dialer(
    args: argparse.Namespace, dialect: str, bot_url: str | None
) -> tuple[Callable[[CallProbe], Any], Callable[[], Any]]:
    """The function that places one call, and what closes the transport after the run."""
    if dialect == "sip":
        from voxgate.loadtest.sipcall import SipLoadClient  # noqa: PLC0415 (SIP only)

        client = await SipLoadClient.open(
            args.target, codec=args.codec, username=args.sip_username, password=args.sip_password
        )

        async def place(probe: CallProbe) -> Any:
            probe.placed(time.monotonic())
            call = await client.place(probe)
            return None if call is None else SipCallOfProbe(call, probe)

        return place, client.close
    parameters = {"wss_url": bot_url} if bot_url else {}
    if args.bot_audio:
        parameters["bot_audio"] = args.bot_audio

    async def dial(probe: CallProbe) -> Any:
        return await open_stream(args.target, probe, dialect=dialect, parameters=parameters)

    async def nothing() -> None:
        return None

    return dial, nothing


async def run(args: argparse.Namespace) -> dict[str, Any]:
    """One load test (or capacity search); returns the JSON result."""
    dialect = dialect_of(args.target, args.dialect)
    if dialect == "sip" and args.bot not in ("node", "embedded"):
        raise UsageError(
            "a SIP call cannot carry a bot URL: route the number to the bot on the node"
        )
    if dialect == "sip" and args.bot == "embedded":
        raise UsageError(
            "a SIP call cannot carry a bot URL: start the echo bot "
            "('python -m voxgate.loadtest.echobot') and route the number to it"
        )
    if args.bot not in ("node", "embedded") and not args.bot.startswith(("ws://", "wss://")):
        raise UsageError("--bot takes node, embedded or a ws:// / wss:// URL")
    dtmf_every = args.dtmf_every if args.dtmf_every else (5.0 if args.bot == "embedded" else None)
    started_wall = time.time()
    async with contextlib.AsyncExitStack() as stack:
        bot_url = None
        if args.bot == "embedded":
            bot_url = await stack.enter_async_context(embedded_bot())
        elif args.bot != "node":
            bot_url = args.bot
        dial, close = await _dialer(args, dialect, bot_url)
        stack.push_async_callback(close)
        # What start-up made (imports, the signal's tables) lives as long as the run: a full
        # collection over it stalled the pacing clock for tens of ms, a burst the node sees.
        gc.collect()
        gc.freeze()
        node = NodeWatch(pid=args.node_pid, metrics_url=metrics_url(args.target, args.metrics))
        view = _view(args)
        session = LoadSession(dial, node, dtmf_every=dtmf_every, late_after=args.late_ms / 1000)
        session.on_point = lambda point: view.update(point.as_json())
        capacity = bridge = stopped = None
        with view:
            try:
                if args.find_capacity:
                    steps = Steps(args.start, args.step, args.max_calls, window=args.step_seconds)
                    thresholds = Thresholds(
                        args.max_p99_ms, args.max_loss, args.max_cpu, args.max_added_ms
                    )
                    capacity = await find_capacity(
                        session, ramp=args.ramp, steps=steps, thresholds=thresholds
                    )
                else:
                    await run_load(
                        session, calls=args.calls, ramp=args.ramp, duration=args.duration
                    )
                bridge = bridge_latency(await node.scrape()) if node.metrics_url else None
            except asyncio.CancelledError:  # SIGINT or SIGTERM: the result is what was measured
                stopped = "interrupted"
            except Exception as error:  # a fault of ours mid-run: keep what was measured too
                log.exception("load test stopped by an error")
                stopped = f"error: {type(error).__name__}"
            finally:
                await session.stop()
    settings = {
        "calls": args.calls, "duration_s": args.duration, "ramp_per_s": args.ramp,
        "codec": args.codec.lower() if dialect == "sip" else "pcmu", "bot_audio": args.bot_audio,
        "dtmf_every_s": dtmf_every, "marker_interval_s": 0.5, "late_ms": args.late_ms,
        "find_capacity": bool(args.find_capacity),
    }  # fmt: skip
    bot_name = args.bot if args.bot in ("node", "embedded") else redact_url(args.bot)
    result = build_result(
        session, settings=settings, target=redact_url(args.target), dialect=dialect,
        bot=bot_name, started_wall=started_wall, bridge_metrics=bridge, capacity=capacity,
        stopped=stopped,
    )  # fmt: skip
    cleaned: dict[str, Any] = finite(result)
    return cleaned


def _view(args: argparse.Namespace) -> Any:
    from voxgate.loadtest.progress import ProgressView  # noqa: PLC0415 (rich: only when running)

    return ProgressView(live=False if args.no_progress else None)


def write_outputs(result: dict[str, Any], json_path: Path | None, html_path: Path | None) -> None:
    from voxgate.loadtest.report import render_html, write_json  # noqa: PLC0415 (matplotlib)

    if json_path is not None:
        write_json(result, json_path)
    if html_path is not None:
        html_path.write_text(render_html(result), encoding="utf-8")


def summary_text(result: dict[str, Any]) -> str:
    """The few lines the command prints at the end (the JSON and HTML have the rest)."""
    frames = result["frames"]
    node = result["node"]["cpu_percent"]
    lines = [
        f"calls      {result['calls']} placed, {result['calls_answered']} answered, "
        f"{result['calls_failed']} failed, {result['calls_dropped']} dropped"
        + (f" {result['failures']}" if result["failures"] else ""),
        f"latency    p50 {result['p50']} ms, p99 {result['p99']} ms (round trip, "
        f"{result['latency_ms']['samples']} markers)",
        f"frames     {frames['expected']} expected, {frames['lost']} lost, {frames['late']} late",
        f"jitter     mean {result['jitter_ms']['mean']} ms, gaps {result['gaps']['count']}",
        f"dtmf       {result['dtmf']['detected']} of {result['dtmf']['sent']} keys heard back",
        f"node cpu   mean {node['mean']} %, max {node['max']} % of a core",
    ]
    capacity = result.get("capacity")
    if capacity:
        lines.append(f"capacity   {verdict(capacity)}")
    lines.append(f"generator  {result['generator']['cpu_percent']} % of a core (the load tester)")
    if result["generator"]["late_ticks"]:
        lines.append(
            f"generator  {result['generator']['late_ticks']} ticks late: "
            "the load tester was short of CPU"
        )
    return "\n".join(lines)
