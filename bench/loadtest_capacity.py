"""The capacity curve of one voxgate node, measured with ``voxgate loadtest --find-capacity``.

    .venv/bin/python -m bench.loadtest_capacity                       # the four cases
    .venv/bin/python -m bench.loadtest_capacity --cases ws-pcmu --start 20 --step 20 --max-calls 100

For each case, three processes on loopback: ``voxgate serve --workers 1`` (the node,
measured from /proc by its pid), the load tester's own echo bot
(``python -m voxgate.loadtest.echobot``) and ``voxgate loadtest`` stepping the calls up
(50 more per step by default, 10 s measured per step after 3 s to settle, 10 s at 50
calls) to ``--max-calls``, or until the round trip's p99 or the node's added latency
passes 1 s or 5 % of frames are lost (the machine is overwhelmed: the curve ends there).
Each step is then judged against the issue's targets, and the *knee* is the last step
before the first that misses one:

- the latency the node adds at most 5 ms: its own p99 inbound (frame in -> sent to the
  bot) plus p99 outbound (bot audio in -> frame out, with the wait for its 20 ms slot),
  read from its /metrics at the end of each step (its summaries keep the last 50,000
  frames: at 50 calls the last 20 s, hence the longer settle, at 200 the last 5 s);
- no frame lost;
- the node within one core.

With ``--pin`` the node runs on CPU 0 alone and the load tester and the bot on the
others, so "within one core" is what the node has (on 2 cores the load tester and the
bot then share one, and its clock fires late: see docs/PERFORMANCE.md).
The round trip the load tester measures (caller -> node -> bot -> node -> caller) is
shown beside them, as is the load tester's own CPU and the ticks its clock fired more
than 5 ms late: on a 2-core machine the load tester and the bot share the cores with
the node, and past some load the machine, not the node, is what the figures show.

Cases: carrier streams (Twilio dialect) and SIP/RTP, each with the bot taking PCMU
(passthrough) or PCM16 at 16 kHz (transcoding both ways). Each case's JSON result and
HTML report go to ``--out`` (default ``/tmp/voxgate-capacity``); a table of the steps is
printed at the end.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Final

import httpx

CASES: Final = ("ws-pcmu", "ws-pcm16k", "sip-pcmu", "sip-pcm16k")
BOT_AUDIO: Final = {"pcmu": "pcmu/8000", "pcm16k": "pcm16/16000"}


def _free_port(kind: int = socket.SOCK_STREAM) -> int:
    with socket.socket(socket.AF_INET, kind) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _wait(port: int, path: str = "/healthz") -> None:
    for _ in range(400):
        try:
            if httpx.get(f"http://127.0.0.1:{port}{path}", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.05)
    raise RuntimeError(f"nothing answered on port {port}")


def _wait_tcp(port: int) -> None:
    for _ in range(400):
        try:
            socket.create_connection(("127.0.0.1", port), 1).close()
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"nothing listens on port {port}")


def _on_cpus(cpus: set[int] | None) -> Any:
    """A ``preexec_fn`` that keeps a process (and its children) on ``cpus``."""
    if cpus is None:
        return None
    return lambda: os.sched_setaffinity(0, cpus)


def run_case(case: str, args: argparse.Namespace) -> dict[str, Any]:
    ingress, audio = case.split("-")
    env = {k: v for k, v in os.environ.items() if not k.startswith("VOXGATE_")}
    bot_port, port, sip_port = _free_port(), _free_port(), _free_port(socket.SOCK_DGRAM)
    python = sys.executable
    node_cpus, load_cpus = ({0}, set(range(1, os.cpu_count() or 2))) if args.pin else (None, None)
    bot = subprocess.Popen(
        [python, "-m", "voxgate.loadtest.echobot", "--port", str(bot_port)],
        preexec_fn=_on_cpus(load_cpus),  # noqa: PLW1509 (no threads here yet)
    )
    node_env = {
        **env,
        "VOXGATE_LOG_LEVEL": "warning",
        "VOXGATE_MAX_CALLS": str(args.max_calls + 50),
        "VOXGATE_BOT_URL": f"ws://127.0.0.1:{bot_port}/",
        "VOXGATE_BOT_AUDIO": BOT_AUDIO[audio],
        "VOXGATE_SIP_PORT": str(sip_port),
        "VOXGATE_SIP_RTP_PORT_MIN": "30000",
        "VOXGATE_SIP_RTP_PORT_MAX": "34000",
    }
    node = subprocess.Popen(
        [python, "-m", "voxgate", "serve", "--workers", "1", "--port", str(port)],
        env=node_env,
        stderr=subprocess.DEVNULL,
        preexec_fn=_on_cpus(node_cpus),  # noqa: PLW1509
    )
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    try:
        _wait_tcp(bot_port)
        _wait(port)
        target = (
            f"ws://127.0.0.1:{port}/v1/streams/twilio"
            if ingress == "ws"
            else f"sip:+15550001111@127.0.0.1:{sip_port}"
        )
        command = [
            python, "-m", "voxgate", "loadtest", target, "--find-capacity",
            "--start", str(args.start), "--step", str(args.step),
            "--max-calls", str(args.max_calls), "--step-seconds", str(args.step_seconds),
            "--ramp", str(args.ramp), "--max-p99-ms", "1000", "--max-loss", "0.05",
            "--max-added-ms", "1000",
            "--node-pid", str(node.pid),
            "--metrics", f"http://127.0.0.1:{port}/metrics", "--no-progress",
            "--json", str(out / f"{case}.json"), "--html", str(out / f"{case}.html"),
        ]  # fmt: skip
        log = out / f"{case}.log"
        with log.open("wb") as stderr:
            subprocess.run(
                command, env=env, check=False, stderr=stderr, preexec_fn=_on_cpus(load_cpus)
            )
        json_path = out / f"{case}.json"
        if not json_path.exists():
            raise RuntimeError(f"{case}: the load tester wrote no result; its log: {log}")
        result: dict[str, Any] = json.loads(json_path.read_text())
        return result
    finally:
        for process in (node, bot):
            process.terminate()
            try:
                process.wait(15)
            except subprocess.TimeoutExpired:
                process.kill()


def meets_targets(step: dict[str, Any]) -> bool:
    added, loss, cpu = step["added_p99_ms"], step["loss_ratio"], step["cpu_percent"]
    return added is not None and added <= 5 and loss == 0 and cpu is not None and cpu <= 100


def knee(steps: list[dict[str, Any]]) -> int | None:
    last = None
    for step in steps:
        if not meets_targets(step):
            break
        last = step["target_calls"]
    return last


def _row(case: str, step: dict[str, Any], generator: float | None) -> str:
    cells = [
        case,
        str(step["target_calls"]),
        f"{step['cpu_percent']}",
        f"{step['added_p99_ms']} ({step['bridge_in_p99_ms']} + {step['bridge_out_p99_ms']})",
        f"{step['p50_ms']} / {step['p99_ms']}",
        f"{step['loss_ratio']}",
        f"{generator}",
        "yes" if meets_targets(step) else "no",
    ]
    return "| " + " | ".join(cells) + " |"


def _generator_cpu(result: dict[str, Any], calls: int) -> float | None:
    """The load tester's mean CPU while ``calls`` were up (from its timeline)."""
    values = [
        p["generator_cpu_percent"]
        for p in result["timeline"]
        if p["phase"].startswith("step")
        and p["target_calls"] == calls
        and p["generator_cpu_percent"] is not None
    ]
    return round(sum(values) / len(values), 1) if values else None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.loadtest_capacity", description=__doc__)
    parser.add_argument("--cases", nargs="+", choices=CASES, default=list(CASES))
    parser.add_argument("--start", type=int, default=50)
    parser.add_argument("--step", type=int, default=50)
    parser.add_argument("--max-calls", type=int, default=500)
    parser.add_argument("--step-seconds", type=float, default=10.0)
    parser.add_argument("--ramp", type=float, default=50.0)
    parser.add_argument("--out", default="/tmp/voxgate-capacity")
    parser.add_argument(
        "--pin",
        action=argparse.BooleanOptionalAction,
        default=False,
        help="the node on CPU 0, the load tester and the bot on the others",
    )
    args = parser.parse_args(argv)
    lines = [
        "| case | calls | node CPU % of a core | added p99 ms (in + out) "
        "| round trip p50 / p99 ms | loss | load tester CPU % | targets met |",
        "|---|---:|---:|---:|---:|---:|---:|---|",
    ]
    knees = []
    for case in args.cases:
        result = run_case(case, args)
        steps = result["capacity"]["steps"]
        lines += [_row(case, s, _generator_cpu(result, s["target_calls"])) for s in steps]
        generator = result["generator"]
        knees.append(
            f"{case}: knee {knee(steps)} calls; load tester late ticks "
            f"{generator['late_ticks']} of {generator['ticks']}"
        )
    sys.stdout.write("\n".join([*lines, "", *knees]) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
