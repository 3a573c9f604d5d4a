"""The node seen from outside: its /metrics page parsed, /proc read for a process tree,
and :class:`NodeWatch` scraping a real HTTP server on loopback."""

from __future__ import annotations

import asyncio
import contextlib
import math
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import ClassVar

import pytest
from scenario import run

from voxgate.loadtest.node import (
    METRICS_EVERY,
    NodeWatch,
    bridge_latency,
    parse_metrics,
    read_process,
    reading_from_metrics,
)

PAGE = """\
# TYPE voxgate_calls_total counter
voxgate_calls_total{carrier="twilio",outcome="completed"} 42
voxgate_calls_total{carrier="telnyx",outcome="failed"} 3
voxgate_frames_total 123456
# TYPE voxgate_inbound_latency_seconds summary
voxgate_inbound_latency_seconds{quantile="0.5"} 0.001250
voxgate_inbound_latency_seconds{quantile="0.99"} 0.003500
voxgate_inbound_latency_seconds_count 50000
# TYPE voxgate_outbound_latency_seconds summary
voxgate_outbound_latency_seconds{quantile="0.5"} 0.000750
voxgate_outbound_latency_seconds{quantile="0.99"} 0.002000
voxgate_outbound_latency_seconds_count 50000
# TYPE voxgate_setup_seconds summary
voxgate_setup_seconds{quantile="0.5"} nan
voxgate_setup_seconds{quantile="0.99"} nan
voxgate_setup_seconds_count 0
# TYPE voxgate_active_calls gauge
voxgate_active_calls 7
# TYPE voxgate_process_cpu_seconds gauge
voxgate_process_cpu_seconds 12.5
# TYPE voxgate_process_resident_memory_bytes gauge
voxgate_process_resident_memory_bytes 1.2e+08
voxgate_temperature -3.5
python_gc_objects_collected_total{generation="0"} 99
"""


def test_parse_metrics_keeps_voxgates_samples_by_name_and_labels() -> None:
    values = parse_metrics(PAGE)
    assert values['calls_total{carrier="twilio",outcome="completed"}'] == 42
    assert values['calls_total{carrier="telnyx",outcome="failed"}'] == 3
    assert values["frames_total"] == 123456
    assert values['inbound_latency_seconds{quantile="0.99"}'] == 0.0035
    assert values["inbound_latency_seconds_count"] == 50000
    assert math.isnan(values['setup_seconds{quantile="0.5"}'])
    assert values["active_calls"] == 7
    assert values["process_cpu_seconds"] == 12.5
    assert values["process_resident_memory_bytes"] == 1.2e8
    assert values["temperature"] == -3.5
    assert not any(name.startswith(("python", "#", "TYPE")) for name in values)
    assert len(values) == 16


def test_bridge_latency_in_milliseconds_when_the_node_has_it() -> None:
    figures = bridge_latency(parse_metrics(PAGE))
    assert figures is not None
    flat = {(way, q): value for way, qs in figures.items() for q, value in qs.items()}
    assert flat == pytest.approx(
        {("inbound_ms", "p50"): 1.25, ("inbound_ms", "p99"): 3.5,
         ("outbound_ms", "p50"): 0.75, ("outbound_ms", "p99"): 2.0}
    )  # fmt: skip


@pytest.mark.parametrize(
    ("page", "expected"),
    [
        ("voxgate_active_calls 1\n", None),  # no summaries at all
        (
            'voxgate_inbound_latency_seconds{quantile="0.5"} nan\n'
            'voxgate_inbound_latency_seconds{quantile="0.99"} nan\n'
            'voxgate_outbound_latency_seconds{quantile="0.5"} nan\n',
            None,  # summaries with no observations yet
        ),
        (
            'voxgate_inbound_latency_seconds{quantile="0.5"} 0.002\n'
            'voxgate_outbound_latency_seconds{quantile="0.5"} nan\n',
            {"inbound_ms": {"p50": 2.0, "p99": None}, "outbound_ms": {"p50": None, "p99": None}},
        ),
    ],
    ids=["absent", "all nan", "partly nan"],
)
def test_bridge_latency_without_figures(
    page: str, expected: dict[str, dict[str, float | None]] | None
) -> None:
    assert bridge_latency(parse_metrics(page)) == expected


def test_reading_from_metrics() -> None:
    reading = reading_from_metrics(parse_metrics(PAGE))
    assert reading is not None
    assert (reading.cpu_seconds, reading.rss_bytes) == (12.5, 1.2e8)
    assert reading.at == pytest.approx(time.monotonic(), abs=5.0)
    only_cpu = reading_from_metrics({"process_cpu_seconds": 1.0})
    assert only_cpu is not None and only_cpu.rss_bytes == 0.0
    assert reading_from_metrics({"active_calls": 3.0}) is None


# --- /proc ----------------------------------------------------------------------------------


def _own_rss(pid: int) -> int:
    return int(Path(f"/proc/{pid}/statm").read_text().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def test_read_process_of_this_process() -> None:
    reading = read_process(os.getpid())
    assert reading is not None
    assert reading.cpu_seconds >= 0.1  # pytest's own start-up took at least that
    assert reading.rss_bytes >= _own_rss(os.getpid()) * 0.5


FAMILY = """\
import subprocess, sys, time
child = subprocess.Popen(["sleep", "60"])
end = time.process_time() + 0.3
while time.process_time() < end:
    pass
print(child.pid, flush=True)
sys.stdin.read()
child.kill()
child.wait()
"""


@contextlib.contextmanager
def _family() -> Iterator[tuple[int, int]]:
    """A python child that burned 0.3 s of CPU and runs ``sleep`` as its own child."""
    parent = subprocess.Popen(
        [sys.executable, "-c", FAMILY], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    try:
        assert parent.stdout is not None
        ready = threading.Timer(30.0, parent.kill)  # bound the wait for its first line
        ready.start()
        line = parent.stdout.readline()
        ready.cancel()
        assert line, "the child process did not start"
        yield parent.pid, int(line)
    finally:
        parent.communicate("", timeout=30)


def test_read_process_sums_a_process_tree() -> None:
    with _family() as (parent, grandchild):
        family = read_process(parent)
        grandchild_only = read_process(grandchild)
        me = read_process(os.getpid())
        parent_rss = _own_rss(parent)
    assert family is not None and grandchild_only is not None and me is not None
    assert family.cpu_seconds >= 0.25
    assert family.rss_bytes >= parent_rss + grandchild_only.rss_bytes * 0.9
    assert family.rss_bytes > parent_rss
    # this process's family holds the whole tree
    assert me.cpu_seconds >= family.cpu_seconds
    assert me.rss_bytes >= family.rss_bytes + _own_rss(os.getpid()) * 0.5


def test_read_process_of_no_process_is_none() -> None:
    pid_max = int(Path("/proc/sys/kernel/pid_max").read_text())
    assert read_process(pid_max + 1) is None


def test_node_watch_by_pid_gives_cpu_percent() -> None:
    async def scenario() -> None:
        watch = NodeWatch(pid=os.getpid())
        assert watch.source == "pid"
        cpu, rss = await watch.sample()
        assert cpu is None and rss is not None and rss > 10
        began = time.monotonic()
        end = time.process_time() + 0.2
        while time.process_time() < end:
            pass
        cpu, rss = await watch.sample()
        elapsed = time.monotonic() - began
        assert cpu is not None
        assert 100 * 0.15 / elapsed <= cpu <= 250, (cpu, elapsed)
        await watch.close()

    run(scenario())


# --- /metrics over HTTP ---------------------------------------------------------------------


class MetricsHandler(BaseHTTPRequestHandler):
    """Serves the class's page with the class's status; counts requests."""

    cpu_seconds: ClassVar[float] = 10.0
    status: ClassVar[int] = 200
    requests: ClassVar[int] = 0

    def do_GET(self) -> None:
        type(self).requests += 1
        body = (
            f"voxgate_process_cpu_seconds {self.cpu_seconds}\n"
            "voxgate_process_resident_memory_bytes 104857600\n"
        ).encode()
        self.send_response(self.status)
        self.send_header("Content-Type", "text/plain; version=0.0.4")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        return None


@pytest.fixture
def metrics_server() -> Iterator[tuple[str, type[MetricsHandler]]]:
    class Handler(MetricsHandler):  # this test's own page and status
        pass

    handler = Handler
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/metrics", handler
    finally:
        server.shutdown()
        server.server_close()
        thread.join(10)


def test_node_watch_by_metrics_rate_limits_and_computes_cpu(
    metrics_server: tuple[str, type[MetricsHandler]],
) -> None:
    url, handler = metrics_server

    async def scenario() -> None:
        watch = NodeWatch(metrics_url=url)
        assert watch.source == "metrics"
        before_first = time.monotonic()
        assert await watch.sample() == (None, 100.0)  # no earlier reading: no CPU yet
        after_first = time.monotonic()
        assert await watch.sample() == (None, None)  # within METRICS_EVERY: not scraped
        assert handler.requests == 1
        handler.cpu_seconds = 11.0  # one CPU second more
        await asyncio.sleep(METRICS_EVERY - (time.monotonic() - before_first) + 0.05)
        before_second = time.monotonic()
        cpu, rss = await watch.sample()
        after_second = time.monotonic()
        assert handler.requests == 2 and rss == 100.0
        assert cpu is not None
        assert 100 / (after_second - before_first) <= cpu <= 100 / (before_second - after_first)
        assert watch.error is None and watch.last_metrics["process_cpu_seconds"] == 11.0
        await watch.close()

    run(scenario())


def test_node_watch_records_a_refusal(metrics_server: tuple[str, type[MetricsHandler]]) -> None:
    url, handler = metrics_server
    handler.status = 401

    async def scenario() -> None:
        watch = NodeWatch(metrics_url=url)
        assert await watch.sample() == (None, None)
        assert watch.error == "/metrics answered 401"
        assert await watch.scrape() == {}
        await watch.close()

    run(scenario())


def test_node_watch_records_an_unreachable_node() -> None:
    async def scenario() -> None:
        with socketless_port() as port:
            watch = NodeWatch(metrics_url=f"http://127.0.0.1:{port}/metrics")
            assert await watch.sample() == (None, None)
        assert watch.error == "/metrics unreachable: ConnectError"
        await watch.close()

    run(scenario())


@contextlib.contextmanager
def socketless_port() -> Iterator[int]:
    """A loopback port nothing listens on (bound, not listening, for the test's length)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        yield sock.getsockname()[1]


def test_node_watch_without_a_source_gives_nothing() -> None:
    async def scenario() -> None:
        watch = NodeWatch()
        assert watch.source is None
        assert await watch.sample() == (None, None)
        assert await watch.scrape() == {}
        await watch.close()

    run(scenario())
