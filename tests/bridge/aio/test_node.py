"""voxgate.bridge.aio.node: ``voxgate serve --workers 2`` acts as one bridge.

Real processes, real sockets: calls spread over the workers, ``max_calls`` holds
for the node, ``/metrics`` and ``/healthz`` answer for the node from any worker,
SIGTERM drains every worker, and a killed worker is replaced while the other
worker's calls go on.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import signal
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
from carrier import CarrierEmulator
from scenario import run
from served import voxgate_serve

from voxgate.bridge.aio.node import merged_metrics

NODE_ENV = {"VOXGATE_WORKERS": "2", "VOXGATE_LOG_FORMAT": "text"}
SECOND_OF_AUDIO = 8000  # PCMU bytes


@contextlib.asynccontextmanager
async def node(tmp_path: Path, **env: str) -> AsyncIterator[tuple[str, subprocess.Popen[bytes]]]:
    async with voxgate_serve({**NODE_ENV, **env}, tmp_path / "voxgate.log") as (port, process):
        await _until_workers(port, 2)
        yield f"127.0.0.1:{port}", process


async def _health(address: str) -> httpx.Response:
    async with httpx.AsyncClient(timeout=5.0) as client:
        return await client.get(f"http://{address}/healthz")


async def _until_workers(port: int, count: int, *, not_pid: int | None = None) -> list[Any]:
    """Until /healthz lists ``count`` workers (and none with ``not_pid``)."""
    async with asyncio.timeout(20):
        while True:
            with contextlib.suppress(httpx.HTTPError):
                workers: list[Any] = (await _health(f"127.0.0.1:{port}")).json()["workers"]
                pids = {worker["pid"] for worker in workers}
                if len(workers) == count and not_pid not in pids:
                    return workers
            await asyncio.sleep(0.1)


async def _metrics(address: str) -> str:
    async with httpx.AsyncClient(timeout=5.0) as client:
        return (await client.get(f"http://{address}/metrics")).text


def _total(text: str, name: str) -> int:
    pattern = rf"^voxgate_{name}(?:{{[^}}]*}})? ([0-9.e+]+)$"
    return sum(int(float(value)) for value in re.findall(pattern, text, re.MULTILINE))


def _stream(address: str, index: int) -> CarrierEmulator:
    return CarrierEmulator(
        f"ws://{address}/v1/streams/twilio", "twilio", call_id=f"CA{index:032x}", timeout=10
    )


async def _talk(caller: CarrierEmulator, seconds: float = 0.2) -> None:
    """Send ``seconds`` of audio and wait until the echo bot has sent it back."""
    received = len(caller.received_audio())
    audio = bytes((i * 7 + 1) % 256 for i in range(int(seconds * SECOND_OF_AUDIO)))
    await caller.send_audio(audio)
    await caller.wait_for_audio(received + len(audio), timeout=10)


def test_calls_spread_over_the_workers_and_the_node_counts_them_all(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with node(tmp_path) as (address, _process), contextlib.AsyncExitStack() as stack:
            callers = [await stack.enter_async_context(_stream(address, i)) for i in range(12)]
            await asyncio.gather(*(_talk(caller) for caller in callers))
            health = (await _health(address)).json()
            assert health["calls"] == 12
            per_worker = [worker["calls"] for worker in health["workers"]]
            assert sum(per_worker) == 12
            assert all(per_worker), f"one worker took every call: {per_worker}"
            for caller in callers:
                await caller.hang_up()
            await asyncio.sleep(0.5)
            text = await _metrics(address)  # whichever worker answers, the node's sum
            assert _total(text, "calls_started") == 12
            assert _total(text, "calls_ended") == 12
            assert _total(text, "streams_accepted") == 12
            assert _total(text, "calls_active") == 0

    run(scenario(), timeout=90)


def test_max_calls_holds_for_the_node_not_per_worker(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with node(tmp_path, VOXGATE_MAX_CALLS="3") as (address, _process):
            callers = [_stream(address, i) for i in range(6)]
            for caller in callers:
                await caller.connect()
            await asyncio.sleep(1.0)
            refused = [caller for caller in callers if caller.closed.is_set()]
            taken = [caller for caller in callers if not caller.closed.is_set()]
            assert len(taken) == 3 and len(refused) == 3
            assert {await caller.wait_for_close(5) for caller in refused} == {1013}
            assert (await _health(address)).json()["calls"] == 3
            await taken[0].hang_up()  # a place frees up, on whichever worker
            await asyncio.sleep(0.5)
            async with _stream(address, 99) as late:
                await _talk(late)
                assert not late.closed.is_set()
            for caller in taken[1:]:
                await caller.hang_up()
            text = await _metrics(address)
            assert _total(text, "calls_started") == 4

    run(scenario(), timeout=90)


def test_sigterm_drains_every_worker_and_calls_finish(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with node(tmp_path, VOXGATE_DRAIN_SECONDS="20") as (address, process):
            callers = [_stream(address, i) for i in range(6)]
            for caller in callers:
                await caller.connect()
            await asyncio.gather(*(_talk(caller) for caller in callers))
            process.send_signal(signal.SIGTERM)
            await asyncio.sleep(0.5)
            for _ in range(4):  # whichever worker answers: draining
                response = await _health(address)
                assert response.status_code == 503
                assert response.json()["status"] == "draining"
            await asyncio.gather(*(_talk(caller) for caller in callers))  # calls go on
            for caller in callers:
                await caller.hang_up()
            code = await asyncio.to_thread(process.wait, 15)
            assert code == 0

    run(scenario(), timeout=90)


def test_a_killed_worker_is_replaced_and_the_other_workers_calls_go_on(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with node(tmp_path) as (address, _process), contextlib.AsyncExitStack() as stack:
            callers = [await stack.enter_async_context(_stream(address, i)) for i in range(10)]
            await asyncio.gather(*(_talk(caller) for caller in callers))
            workers = (await _health(address)).json()["workers"]
            victim, survivor = sorted(workers, key=lambda w: -w["calls"])
            os.kill(victim["pid"], signal.SIGKILL)
            port = int(address.rsplit(":", 1)[1])
            replaced = await _until_workers(port, 2, not_pid=victim["pid"])
            assert survivor["pid"] in {worker["pid"] for worker in replaced}
            await asyncio.sleep(0.5)
            alive = [caller for caller in callers if not caller.closed.is_set()]
            assert len(alive) == survivor["calls"]  # the victim's calls dropped, no other
            await asyncio.gather(*(_talk(caller, 0.5) for caller in alive))
            health = (await _health(address)).json()
            assert health["calls"] == len(alive)  # the dead worker's calls are off the count
            async with _stream(address, 50) as fresh:  # the node takes new calls
                await _talk(fresh)
            for caller in alive:
                await caller.hang_up()

    run(scenario(), timeout=90)


def test_merged_metrics_sum_counters_and_gauges_and_pool_observations() -> None:
    one = {
        "counters": [["calls_started", [["carrier", "twilio"]], 2], ["errors", [], 1]],
        "observed": {"inbound_latency_seconds": [0.001, 0.002]},
        "gauges": {"calls_active": 2},
    }
    two = {
        "counters": [["calls_started", [["carrier", "twilio"]], 3]],
        "observed": {"inbound_latency_seconds": [0.003]},
        "gauges": {"calls_active": 1},
    }
    merged = merged_metrics([one, two])
    assert merged["counters"] == {
        ("calls_started", (("carrier", "twilio"),)): 5,
        ("errors", ()): 1,
    }
    assert merged["observed"] == {"inbound_latency_seconds": [0.001, 0.002, 0.003]}
    assert merged["gauges"] == {"calls_active": 3}
