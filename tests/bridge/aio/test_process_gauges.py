"""/metrics of ``voxgate serve`` carries the process's own CPU seconds and resident memory.

A load tester reads them without knowing the node's pids. With several workers
the node sums each worker's gauges (voxgate.bridge.aio.node.merged_metrics),
so the figures are the workers' total: checked here against /proc of each
worker listed by /healthz. The supervisor's own (small) figures are not in it.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
from pathlib import Path

import httpx
from carrier import CarrierEmulator
from scenario import run
from served import voxgate_serve

MIB = 1024 * 1024
CPU_SLACK = 0.05  # seconds: /proc counts whole clock ticks
SECOND_OF_AUDIO = 8000  # PCMU bytes


async def _get(port: int, path: str) -> httpx.Response:
    async with httpx.AsyncClient(timeout=5.0) as client:
        return await client.get(f"http://127.0.0.1:{port}{path}")


def _gauge(text: str, name: str) -> float:
    found = re.search(rf"^voxgate_{name} ([0-9.e+-]+)$", text, re.MULTILINE)
    assert found, f"no voxgate_{name} in /metrics"
    return float(found.group(1))


async def _figures(port: int) -> tuple[float, float]:
    """(CPU seconds, resident bytes) as /metrics shows them."""
    text = (await _get(port, "/metrics")).text
    return _gauge(text, "process_cpu_seconds"), _gauge(text, "process_resident_memory_bytes")


def _proc_cpu_seconds(pid: int) -> float:
    """utime + stime of ``pid`` (all its threads), from /proc/<pid>/stat."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    fields = stat[stat.rindex(")") + 2 :].split()  # fields from the 3rd (state) on
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _proc_resident_bytes(pid: int) -> int:
    pages = int(Path(f"/proc/{pid}/statm").read_text().split()[1])
    return pages * os.sysconf("SC_PAGE_SIZE")


async def _talk(port: int, index: int, seconds: float) -> None:
    """One Twilio stream: ``seconds`` of audio, paced, until the echo bot sent it back."""
    url = f"ws://127.0.0.1:{port}/v1/streams/twilio"
    async with CarrierEmulator(url, "twilio", call_id=f"CA{index:032x}", timeout=10) as caller:
        audio = bytes((i * 7 + 1) % 256 for i in range(int(seconds * SECOND_OF_AUDIO)))
        await caller.send_audio(audio)
        await caller.wait_for_audio(len(audio), timeout=20)
        await caller.hang_up()


async def _worker_pids(port: int) -> list[int]:
    """The pids /healthz lists, once it lists two workers."""
    async with asyncio.timeout(20):
        while True:
            with contextlib.suppress(httpx.HTTPError, KeyError):
                workers = (await _get(port, "/healthz")).json()["workers"]
                if len(workers) == 2:
                    return [int(worker["pid"]) for worker in workers]
            await asyncio.sleep(0.1)


def test_cpu_seconds_grow_while_calls_run_and_memory_is_plausible(tmp_path: Path) -> None:
    async def scenario() -> None:
        env = {"VOXGATE_LOG_FORMAT": "text", "VOXGATE_WORKERS": "1"}
        async with voxgate_serve(env, tmp_path / "serve.log") as (port, process):
            calls = asyncio.gather(*(_talk(port, index, 2.0) for index in range(3)))
            await asyncio.sleep(0.2)
            cpu_before, resident = await _figures(port)
            exact_resident = _proc_resident_bytes(process.pid)
            await calls
            cpu_after, _ = await _figures(port)
        assert cpu_before > 0
        assert cpu_after - cpu_before > 0.05, (cpu_before, cpu_after)  # ~0.2 s measured
        assert 20 * MIB < resident < 2048 * MIB, resident
        assert abs(resident - exact_resident) < 0.25 * exact_resident  # the process's own

    run(scenario(), timeout=90)


def test_a_node_of_two_workers_shows_the_sum_of_its_workers(tmp_path: Path) -> None:
    async def scenario() -> None:
        env = {"VOXGATE_LOG_FORMAT": "text", "VOXGATE_WORKERS": "2"}
        async with voxgate_serve(env, tmp_path / "serve.log") as (port, _process):
            pids = await _worker_pids(port)
            cpu_low = sum(_proc_cpu_seconds(pid) for pid in pids)
            resident_low = sum(_proc_resident_bytes(pid) for pid in pids)
            cpu, resident = await _figures(port)
            cpu_each = [_proc_cpu_seconds(pid) for pid in pids]
            resident_each = [_proc_resident_bytes(pid) for pid in pids]
        # Read around the scrape: the node's figure falls between the two sums.
        assert cpu_low - CPU_SLACK <= cpu <= sum(cpu_each) + CPU_SLACK, (cpu_low, cpu, cpu_each)
        assert cpu > max(cpu_each) + CPU_SLACK  # more than either worker alone
        low, high = sorted((resident_low, sum(resident_each)))
        assert 0.9 * low <= resident <= 1.1 * high, (resident_low, resident, resident_each)
        assert resident > 1.5 * max(resident_each)

    run(scenario(), timeout=90)
