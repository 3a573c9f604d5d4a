"""What bench/sip_path.py runs beside its load: processes, CPU windows, SIPp, py-spy.

- :data:`PROCESSES` starts every process of the bench (voxgate, the bot,
  rtpengine, SIPp, py-spy) with ``PR_SET_PDEATHSIG``, so none outlives the bench
  even when it is killed, and stops them by name (SIGTERM, again after 5 s, then
  SIGKILL), all of them in the end.
- :class:`Window` reads the CPU time of groups of processes (utime + stime of
  /proc/<pid>/stat) and the machine's (/proc/stat: busy, and stolen by the
  hypervisor) over one interval, as cores in use.
- :func:`measure_setup`: SIPp at a fixed rate of short calls into a fresh
  voxgate (its scenario is :data:`SCENARIO`), read back from SIPp's statistics
  file: calls placed, successful, failed, the rate achieved, set-up times.
- :func:`start_profile` / :func:`profile_report`: py-spy over the measured
  window (collapsed stacks, no line numbers), summed into the frames that hold the
  most samples, by their own samples and with what they call.
"""

from __future__ import annotations

import asyncio
import ctypes
import os
import signal
import socket
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, Final

import httpx

from bench.relay_compare import _family
from bench.ws_path import TICKS_PER_SECOND

PR_SET_PDEATHSIG: Final = 1
SIPP_CALLED: Final = "+15557770000"


def _die_with_parent() -> None:  # runs in the child, before exec
    ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)


class Processes:
    """Every process the bench started, by name."""

    def __init__(self) -> None:
        self._running: dict[str, subprocess.Popen[bytes]] = {}

    def spawn(
        self,
        argv: list[str],
        env: dict[str, str] | None,
        log: Path,
        *,
        name: str | None = None,
        cwd: Path | None = None,
    ) -> subprocess.Popen[bytes]:
        name = name or log.stem
        self.stop(name)
        with log.open("wb") as out:
            process = subprocess.Popen(
                argv, env=env, cwd=cwd, stdin=subprocess.DEVNULL, stdout=out,
                stderr=subprocess.STDOUT, preexec_fn=_die_with_parent,  # noqa: PLW1509
            )  # fmt: skip
        self._running[name] = process
        return process

    def pid_of(self, name: str) -> int:
        return self._running[name].pid

    def running(self, name: str) -> bool:
        process = self._running.get(name)
        return process is not None and process.poll() is None

    def stop(self, name: str) -> int | None:
        process = self._running.pop(name, None)
        if process is None:
            return None
        for _ in range(2):
            if process.poll() is not None:
                return process.returncode
            process.terminate()
            try:
                return process.wait(5)
            except subprocess.TimeoutExpired:
                pass
        process.kill()
        return process.wait()

    def stop_all(self) -> None:
        for name in list(self._running):
            self.stop(name)


PROCESSES: Final = Processes()


def clean_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("VOXGATE_")}


def free_tcp_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def wait_bot(port: int) -> None:
    for _ in range(200):
        try:
            _, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.close()
            return
        except OSError:
            await asyncio.sleep(0.05)
    raise RuntimeError(f"the bot does not listen on {port}")


async def wait_http(base: str) -> None:
    async with httpx.AsyncClient() as client:
        for _ in range(300):
            try:
                if (await client.get(f"{base}/healthz")).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            await asyncio.sleep(0.05)
    raise RuntimeError("voxgate did not come up")


# --- CPU ----------------------------------------------------------------------------------------


def cpu_split(pid: int) -> tuple[float, float]:
    """User and system CPU seconds of process ``pid`` (all its threads); 0 once it is gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0, 0.0
    return int(fields[11]) / TICKS_PER_SECOND, int(fields[12]) / TICKS_PER_SECOND


def cpu_seconds(pid: int) -> float:
    return sum(cpu_split(pid))


def machine_seconds() -> tuple[float, float]:
    """CPU seconds the machine spent busy, and stolen from it, since boot."""
    fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    user, nice, system, _idle, _iowait, irq, softirq, steal = fields[:8]
    busy = user + nice + system + irq + softirq
    return busy / TICKS_PER_SECOND, steal / TICKS_PER_SECOND


class Window:
    """CPU of groups of processes (``{name: pids}``) over one interval, in cores."""

    def __init__(self, groups: dict[str, list[int]]) -> None:
        self.groups = groups
        self.timeline: list[dict[str, float]] = []

    def _read(self) -> dict[str, float]:
        busy, steal = machine_seconds()
        used: dict[str, float] = {"machine": busy, "steal": steal}
        for name, pids in self.groups.items():
            splits = [cpu_split(pid) for pid in pids]
            used[f"{name}_user"] = sum(user for user, _ in splits)
            used[f"{name}_system"] = sum(system for _, system in splits)
            used[name] = used[f"{name}_user"] + used[f"{name}_system"]
        return used

    async def measure(self, start_at: float, seconds: float) -> dict[str, float]:
        """From ``start_at`` (event loop time) for ``seconds``; each second's figures are
        kept in :attr:`timeline` (to tell the relay's hiccups from its neighbours')."""
        loop = asyncio.get_running_loop()
        await asyncio.sleep(max(0.0, start_at - loop.time()))
        first = previous = self._read()
        began = last = time.monotonic()
        self.timeline = []
        while (now := time.monotonic()) < began + seconds:
            await asyncio.sleep(min(1.0, began + seconds - now))
            sample, at = self._read(), time.monotonic()
            self.timeline.append({k: round((sample[k] - previous[k]) / (at - last), 3)
                                  for k in sample})  # fmt: skip
            previous, last = sample, at
        wall = last - began
        return {f"{name}_cores": (previous[name] - first[name]) / wall for name in first}


# --- SIPp: the set-up rate -------------------------------------------------------------------

SCENARIO: Final = """<?xml version="1.0" encoding="ISO-8859-1" ?>
<scenario name="voxgate bench: set-up rate">
  <send retrans="500"><![CDATA[

      INVITE sip:[service]@[remote_ip]:[remote_port] SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
      From: <sip:+15550001111@[local_ip]:[local_port]>;tag=[pid]B[call_number]
      To: <sip:[service]@[remote_ip]:[remote_port]>
      Call-ID: [call_id]
      CSeq: 1 INVITE
      Contact: <sip:sipp@[local_ip]:[local_port]>
      Max-Forwards: 70
      Content-Type: application/sdp
      Content-Length: [len]

      v=0
      o=sipp 1 1 IN IP[local_ip_type] [local_ip]
      s=-
      c=IN IP[media_ip_type] [media_ip]
      t=0 0
      m=audio [media_port] RTP/AVP 0 101
      a=rtpmap:0 PCMU/8000
      a=rtpmap:101 telephone-event/8000
      a=ptime:20

  ]]></send>
  <recv response="100" optional="true"/>
  <recv response="180" optional="true"/>
  <recv response="200" rtd="true"/>
  <send><![CDATA[

      ACK sip:[service]@[remote_ip]:[remote_port] SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
      From: <sip:+15550001111@[local_ip]:[local_port]>;tag=[pid]B[call_number]
      To: <sip:[service]@[remote_ip]:[remote_port]>[peer_tag_param]
      Call-ID: [call_id]
      CSeq: 1 ACK
      Contact: <sip:sipp@[local_ip]:[local_port]>
      Max-Forwards: 70
      Content-Length: 0

  ]]></send>
  <pause/>
  <send retrans="500"><![CDATA[

      BYE sip:[service]@[remote_ip]:[remote_port] SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
      From: <sip:+15550001111@[local_ip]:[local_port]>;tag=[pid]B[call_number]
      To: <sip:[service]@[remote_ip]:[remote_port]>[peer_tag_param]
      Call-ID: [call_id]
      CSeq: 2 BYE
      Contact: <sip:sipp@[local_ip]:[local_port]>
      Max-Forwards: 70
      Content-Length: 0

  ]]></send>
  <recv response="200" crlf="true"/>
  <ResponseTimeRepartition value="10, 20, 50, 100, 200, 500, 1000"/>
</scenario>
"""

StartVoxgate = Callable[[Path, int, int, str], Awaitable[tuple[int, int, int]]]


async def measure_setup(
    rate: float, seconds: float, hold: float, scratch: Path, start_voxgate: StartVoxgate
) -> dict[str, Any]:
    """SIPp at ``rate`` calls/s for ``seconds``, calls of ``hold`` s, into a fresh voxgate."""
    sipp = _which("sipp")
    total = max(1, round(rate * seconds))
    concurrent = int(rate * (hold + 5))  # voxgate's limits (max_calls) must not refuse them
    pid, _, sip_port = await start_voxgate(scratch, concurrent, 0, "setup")
    (scratch / "setup.xml").write_text(SCENARIO)
    stats = scratch / "setup.csv"
    stats.unlink(missing_ok=True)
    argv = [
        sipp, f"127.0.0.1:{sip_port}", "-sf", "setup.xml", "-s", SIPP_CALLED, "-i", "127.0.0.1",
        "-p", str(free_udp_port()), "-mp", str(free_udp_port() // 2 * 2), "-m", str(total),
        "-r", f"{rate:g}", "-l", str(int(rate * (hold + 10))), "-d", str(int(hold * 1000)),
        "-timeout", f"{int(seconds + hold + 60)}s", "-timeout_error", "-trace_stat",
        "-stf", stats.name, "-fd", "1", "-trace_err", "-nostdin",
    ]  # fmt: skip
    try:
        pids = _family(pid)
        before, began = sum(map(cpu_seconds, pids)), time.monotonic()
        process = PROCESSES.spawn(argv, None, scratch / "sipp.out", name="sipp", cwd=scratch)
        while process.poll() is None:
            await asyncio.sleep(0.1)
        cpu, wall = sum(map(cpu_seconds, pids)) - before, time.monotonic() - began
    finally:
        PROCESSES.stop("sipp")
        PROCESSES.stop("setup")
        PROCESSES.stop("setup-bot")
    figures = _sipp_figures(stats, total)
    return figures | {
        "rate": rate,
        "seconds": seconds,
        "hold": hold,
        "sipp_exit": process.returncode,
        "relay_cores": cpu / wall,
        "relay_cpu_ms_per_call": 1000 * cpu / total,
    }


def _which(program: str) -> str:
    for folder in [*os.environ.get("PATH", "").split(os.pathsep), "/usr/bin", "/usr/sbin"]:
        candidate = Path(folder, program)
        if candidate.exists():
            return str(candidate)
    raise RuntimeError(f"{program} is not installed (scripts/setup-sip-peers installs SIPp)")


def _sipp_figures(stats: Path, total: int) -> dict[str, Any]:
    lines = [line.split(";") for line in stats.read_text().splitlines() if line]
    head, rows = lines[0], [dict(zip(lines[0], line, strict=False)) for line in lines[1:]]
    last = rows[-1]
    start = _epoch(rows[0]["StartTime"])
    rate = float(last["CallRate(C)"])
    for row in rows:  # the rate over whole seconds of the placing phase
        created, at = int(row["TotalCallCreated"]), _epoch(row["CurrentTime"])
        if 0 < created < total and at - start >= 1.0:
            rate = created / (at - start)
    buckets = [(h.split("_", 1)[1], int(last[h])) for h in head if h.startswith("ResponseTimeRe")
               and "_" in h]  # fmt: skip
    answered, running, p99 = sum(n for _, n in buckets), 0, ""
    for label, count in buckets:
        running += count
        if not p99 and answered and running >= 0.99 * answered:
            p99 = f"{label} ms"
    return {
        "created": int(last["TotalCallCreated"]),
        "successful": int(last["SuccessfulCall(C)"]),
        "failed": int(last["FailedCall(C)"]),
        "retransmissions": int(last["Retransmissions(C)"]),
        "achieved_rate": rate,
        "setup_mean_ms": _duration(last["ResponseTime1(C)"]) * 1000,
        "setup_p99_bucket": p99,
    }


def _epoch(field: str) -> float:
    return float(field.rsplit("\t", 1)[-1])


def _duration(field: str) -> float:
    hours, minutes, seconds, micros = (int(x) for x in field.split(":"))
    return hours * 3600 + minutes * 60 + seconds + micros / 1e6


# --- py-spy -----------------------------------------------------------------------------------


def start_profile(pid: int, seconds: float, out: Path) -> str:
    spy = str(Path(sys.executable).parent / "py-spy")
    argv = [spy, "record", "--pid", str(pid), "-s", "--nolineno", "--nonblocking", "-f", "raw",
            "-r", "100", "-d", str(max(1, int(seconds))), "-o", str(out)]  # fmt: skip
    PROCESSES.spawn(argv, None, out.with_suffix(".log"), name="py-spy")
    return "py-spy"


def profile_report(name: str, raw: Path, out: Path, top: int = 25) -> None:
    """Wait for py-spy; write its top frames (own samples, and with callees) to ``out``."""
    for _ in range(600):
        if not PROCESSES.running(name):
            break
        time.sleep(0.1)
    PROCESSES.stop(name)
    own: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    total = 0
    for line in raw.read_text().splitlines() if raw.exists() else []:
        stack, _, count = line.rpartition(" ")
        frames, samples = stack.split(";"), int(count)
        total += samples
        own[frames[-1]] += samples
        for frame in set(frames):
            inclusive[frame] += samples
    total = max(total, 1)
    lines = [f"py-spy, {total} samples of voxgate's threads while busy (100 Hz)", "", "own:"]
    lines += [f"  {100 * n / total:5.1f} %  {frame}" for frame, n in own.most_common(top)]
    lines += ["", "with callees:"]
    lines += [f"  {100 * n / total:5.1f} %  {frame}" for frame, n in inclusive.most_common(top)]
    out.write_text("\n".join(lines) + "\n")
    print("\n".join(lines[: top + 3]), flush=True)
