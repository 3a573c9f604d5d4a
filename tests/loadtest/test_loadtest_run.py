"""``voxgate loadtest`` against a real node (``voxgate serve`` in its own process).

Small runs (a handful of calls, a few seconds): the load tester's figures are checked
against the node's own counters and latency summaries, and a deliberately broken path
(a bot that holds its echo back and drops frames; a node stopped for a moment) must show
in them. Bounds are wide enough for a busy 2-core machine.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
from served import free_port, voxgate_serve
from sipp_peer import sip_node

NODE_ENV = {"VOXGATE_LOG_LEVEL": "warning", "VOXGATE_MAX_CALLS": "50"}


def _clean_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("VOXGATE_")}


async def loadtest(*args: str, timeout: float = 120.0) -> tuple[int, dict[str, Any], str]:
    """Run the command; its exit status, its JSON result ({} if none) and its stderr."""
    out = Path(f"result-{time.monotonic_ns()}.json")
    argv = [sys.executable, "-m", "voxgate", "loadtest", *args, "--json", str(out), "--no-progress"]
    process = await asyncio.create_subprocess_exec(
        *argv, env=_clean_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    stdout, stderr = await asyncio.wait_for(process.communicate(), timeout)
    assert process.returncode is not None
    result = json.loads(out.read_text()) if out.exists() else {}
    return process.returncode, result, stderr.decode() + stdout.decode()


@contextlib.asynccontextmanager
async def echo_bot(*options: str) -> AsyncIterator[str]:
    port = free_port()
    argv = [sys.executable, "-m", "voxgate.loadtest.echobot", "--port", str(port), *options]
    process = subprocess.Popen(argv, env=_clean_env())
    try:
        for _ in range(400):
            with contextlib.suppress(OSError):
                _, writer = await asyncio.open_connection("127.0.0.1", port)
                writer.close()
                break
            await asyncio.sleep(0.05)
        yield f"ws://127.0.0.1:{port}/"
    finally:
        process.terminate()
        process.wait(10)


def _metrics(text: str) -> dict[str, float]:
    return {
        name: float(value)
        for name, value in re.findall(r"^voxgate_(\S+) ([-0-9.e+]+)$", text, re.MULTILINE)
    }


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def test_a_small_run_agrees_with_the_nodes_own_figures(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with voxgate_serve(NODE_ENV, tmp_path / "node.log") as (port, node):
            url = f"ws://127.0.0.1:{port}/v1/streams/twilio"
            cpu_before, wall_before = _cpu_seconds(node.pid), time.monotonic()
            status, result, output = await loadtest(
                url, "--calls", "10", "--duration", "7", "--ramp", "10", "--bot", "embedded",
                "--dtmf-every", "1", "--html", "report.html",
            )  # fmt: skip
            cpu = 100 * (_cpu_seconds(node.pid) - cpu_before) / (time.monotonic() - wall_before)
            async with httpx.AsyncClient() as client:
                metrics = _metrics((await client.get(f"http://127.0.0.1:{port}/metrics")).text)
        assert status == 0, output
        assert (result["calls"], result["calls_answered"], result["calls_failed"]) == (10, 10, 0)
        assert result["lost"] == 0 and result["frames"]["loss_ratio"] == 0
        assert result["frames"]["expected"] >= 10 * 200  # markers found all along each call
        assert 0 < result["p50"] <= result["p99"] < 500
        # the node counted the same calls and frames
        assert metrics['calls_started{carrier="twilio"}'] == 10
        sent, returned = result["frames"]["sent"], result["frames"]["returned"]
        assert abs(metrics["frames_in"] - sent) <= 0.01 * sent
        assert abs(metrics["frames_out"] - returned) <= 0.02 * returned
        # the round trip holds both of the bridge's passes, plus the bot and loopback
        bridge = result["bridge_metrics"]
        passes = bridge["inbound_ms"]["p50"] + bridge["outbound_ms"]["p50"]
        assert passes * 0.8 <= result["p50"] <= passes + 50
        # keys went through the node to the bot and came back as tones
        assert result["dtmf"]["sent"] >= 20 and result["dtmf"]["detected"] == result["dtmf"]["sent"]
        # the node's CPU as its /metrics told it, against /proc over the whole run
        seen = result["node"]["cpu_percent"]["mean"]
        assert result["node"]["source"] == "metrics" and seen is not None
        assert abs(seen - cpu) <= max(15.0, 0.6 * cpu), (seen, cpu)
        html = Path("report.html").read_text()
        assert html.count("<svg") >= 3 and 'id="latency"' in html

    asyncio.run(scenario())


def test_a_bot_that_delays_and_drops_is_seen(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with (
            echo_bot("--delay-ms", "100", "--drop-every", "10") as bot,
            voxgate_serve(NODE_ENV, tmp_path / "node.log") as (port, _),
        ):
            status, result, output = await loadtest(
                f"ws://127.0.0.1:{port}/v1/streams/telnyx", "--calls", "5", "--duration", "4",
                "--bot", bot,
            )  # fmt: skip
        assert status == 0, output
        assert result["dialect"] == "telnyx" and result["calls_answered"] == 5
        assert 100 <= result["p50"] <= 160
        assert 0.07 <= result["frames"]["loss_ratio"] <= 0.13

    asyncio.run(scenario())


def test_a_node_that_stalls_shows_gaps_late_frames_and_a_long_tail(tmp_path: Path) -> None:
    async def stall(pid: int) -> None:
        await asyncio.sleep(3.0)
        for _ in range(2):
            os.kill(pid, signal.SIGSTOP)
            await asyncio.sleep(0.3)
            os.kill(pid, signal.SIGCONT)
            await asyncio.sleep(1.0)

    async def scenario() -> None:
        async with voxgate_serve(NODE_ENV, tmp_path / "node.log") as (port, node):
            stalls = asyncio.create_task(stall(node.pid))
            status, result, output = await loadtest(
                f"ws://127.0.0.1:{port}/v1/streams/twilio", "--calls", "5", "--duration", "5",
                "--bot", "embedded", "--node-pid", str(node.pid),
            )  # fmt: skip
            await stalls
        assert status == 0, output
        assert result["gaps"]["count"] >= 5 and result["gaps"]["max_ms"] >= 250
        assert result["frames"]["late"] >= 5
        assert result["latency_ms"]["max"] >= 250
        assert result["node"]["source"] == "pid"

    asyncio.run(scenario())


def test_capacity_steps_up_to_the_limit_or_the_first_broken_threshold(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with voxgate_serve(NODE_ENV, tmp_path / "node.log") as (port, _):
            url = f"ws://127.0.0.1:{port}/v1/streams/twilio"
            common = ("--find-capacity", "--start", "2", "--step", "2", "--max-calls", "4",
                      "--step-seconds", "2", "--bot", "embedded", "--ramp", "20")  # fmt: skip
            status, passing, output = await loadtest(url, *common, "--max-p99-ms", "400")
            assert status == 0, output
            _, broken, _ = await loadtest(url, *common, "--max-p99-ms", "0.001")
        capacity = passing["capacity"]
        assert capacity["knee_calls"] == 4 and capacity["broke_on"] is None
        assert [step["calls"] for step in capacity["steps"]] == [2, 4]
        assert all(step["passed"] for step in capacity["steps"])
        assert broken["capacity"]["knee_calls"] is None
        assert broken["capacity"]["broke_on"] == "p99"
        assert len(broken["capacity"]["steps"]) == 1

    asyncio.run(scenario())


def test_an_interrupted_run_hangs_up_and_still_writes_what_it_measured(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with voxgate_serve(NODE_ENV, tmp_path / "node.log") as (port, _):
            argv = [
                sys.executable, "-m", "voxgate", "loadtest",
                f"ws://127.0.0.1:{port}/v1/streams/twilio", "--calls", "3", "--ramp", "20",
                "--duration", "60", "--bot", "embedded", "--no-progress",
                "--json", "cut.json", "--html", "cut.html",
            ]  # fmt: skip
            process = await asyncio.create_subprocess_exec(
                *argv, env=_clean_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE
            )
            async with httpx.AsyncClient() as client:
                metrics_url = f"http://127.0.0.1:{port}/metrics"
                for _ in range(300):  # the three calls up
                    await asyncio.sleep(0.1)
                    if _metrics((await client.get(metrics_url)).text)["calls_active"] == 3:
                        break
                await asyncio.sleep(2.0)  # and some markers back
                process.send_signal(signal.SIGINT)
                _, stderr = await asyncio.wait_for(process.communicate(), 60)
                for _ in range(100):  # the node saw every call end
                    active = _metrics((await client.get(metrics_url)).text)["calls_active"]
                    if active == 0:
                        break
                    await asyncio.sleep(0.1)
        assert process.returncode == 1, stderr.decode()
        assert "stopped early (interrupted)" in stderr.decode()
        assert active == 0
        result = json.loads(Path("cut.json").read_text())
        assert result["stopped_early"] == "interrupted"
        assert result["calls_answered"] == 3 and result["wall_seconds"] < 40
        assert result["frames"]["expected"] > 0 and result["p50"] is not None
        assert "stopped early" in Path("cut.html").read_text()

    asyncio.run(scenario())


def test_unusable_options_and_an_absent_node_are_clear_errors() -> None:
    async def scenario() -> None:
        status, _, output = await loadtest("http://127.0.0.1:1/x")
        assert status == 2 and "TARGET must be" in output
        status, _, output = await loadtest("sip:+1555@127.0.0.1:5060", "--bot", "ws://x/")
        assert status == 2 and "cannot carry a bot URL" in output
        status, _, output = await loadtest("ws://127.0.0.1:1/v1/streams/zoom")
        assert status == 2 and "--dialect" in output
        port = free_port()  # nothing listens there
        status, result, output = await loadtest(
            f"ws://127.0.0.1:{port}/v1/streams/twilio", "--calls", "3", "--duration", "1"
        )
        assert status == 1, output
        assert result["calls_failed"] == 3 and result["failures"] == {"unreachable": 3}

    asyncio.run(scenario())


def test_sip_calls_through_the_node_are_measured_like_streams(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with echo_bot() as bot, sip_node(tmp_path, VOXGATE_BOT_URL=bot) as sip_port:
            status, result, output = await loadtest(
                f"sip:+15550001111@127.0.0.1:{sip_port}", "--calls", "5", "--duration", "4",
                "--dtmf-every", "1", "--codec", "PCMA",
            )  # fmt: skip
        assert status == 0, output
        assert result["dialect"] == "sip" and result["settings"]["codec"] == "pcma"
        assert (result["calls_answered"], result["calls_failed"], result["calls_dropped"]) == (
            5,
            0,
            0,
        )
        assert result["lost"] == 0 and result["frames"]["expected"] >= 5 * 150
        assert 0 < result["p50"] <= result["p99"] < 500
        assert 0 < result["setup_ms"]["p50"] < 2000
        # keys go out as RFC 4733 events and come back as the bot's tones
        assert result["dtmf"]["sent"] >= 10 and result["dtmf"]["detected"] == result["dtmf"]["sent"]

    asyncio.run(scenario())
