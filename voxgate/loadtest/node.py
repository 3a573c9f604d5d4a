"""The node under load, seen from outside: its CPU and memory, and its own latency figures.

Two sources, as the operator can give them:

- a process id (``--node-pid``): /proc of that process and its children (the workers
  of ``voxgate serve --workers N``), read without disturbing the node at all;
- its ``/metrics`` URL: the gauges ``voxgate_process_cpu_seconds`` and
  ``voxgate_process_resident_memory_bytes`` (summed over the workers by the node).
  A scrape costs the node some milliseconds of its event loop, so it is taken every
  :data:`METRICS_EVERY` seconds, not every second.

The same ``/metrics`` also gives the bridge's own measure of the latency it adds
(``voxgate_inbound_latency_seconds``, ``voxgate_outbound_latency_seconds``), an
independent check of what the load tester saw.
"""

from __future__ import annotations

import math
import os
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Final

import httpx

METRICS_EVERY: Final = 5.0
TICKS: Final = os.sysconf("SC_CLK_TCK")
PAGE: Final = os.sysconf("SC_PAGE_SIZE")
_SAMPLE = re.compile(r"^voxgate_([a-z0-9_]+)(\{[^}]*\})? ([-+0-9.eEnaifNI]+)$", re.MULTILINE)


@dataclass(frozen=True, slots=True)
class NodeReading:
    at: float  # monotonic
    cpu_seconds: float
    rss_bytes: float


def _children(pid: int) -> list[int]:
    found = []
    for task in Path(f"/proc/{pid}/task").glob("*/children"):
        found += [int(child) for child in task.read_text().split()]
    return found


def _family(pid: int) -> list[int]:
    pids, queue = [], [pid]
    while queue:
        current = queue.pop()
        pids.append(current)
        try:
            queue += _children(current)
        except OSError:
            continue
    return pids


def read_process(pid: int) -> NodeReading | None:
    """CPU seconds and RSS of ``pid`` and all its descendants; None when it is gone."""
    cpu = rss = 0.0
    try:
        for member in _family(pid):
            try:
                fields = Path(f"/proc/{member}/stat").read_text().rsplit(")", 1)[1].split()
                cpu += (int(fields[11]) + int(fields[12])) / TICKS
                rss += int(Path(f"/proc/{member}/statm").read_text().split()[1]) * PAGE
            except (OSError, IndexError, ValueError):
                continue
    except OSError:
        return None
    if not cpu and not rss:
        return None
    return NodeReading(time.monotonic(), cpu, rss)


def parse_metrics(text: str) -> dict[str, float]:
    """``name`` or ``name{labels}`` -> value, for voxgate's samples in a /metrics page."""
    values = {}
    for name, labels, value in _SAMPLE.findall(text):
        try:
            values[name + (labels or "")] = float(value)
        except ValueError:
            continue
    return values


def reading_from_metrics(values: dict[str, float]) -> NodeReading | None:
    cpu = values.get("process_cpu_seconds")
    if cpu is None:
        return None
    return NodeReading(time.monotonic(), cpu, values.get("process_resident_memory_bytes", 0.0))


def bridge_latency(values: dict[str, float]) -> dict[str, dict[str, float | None]] | None:
    """The bridge's own added latency (ms), from its summaries, when it has any."""
    figures: dict[str, dict[str, float | None]] = {}
    for direction in ("inbound", "outbound"):
        name = f"{direction}_latency_seconds"
        figures[f"{direction}_ms"] = {
            "p50": _ms(values.get(f'{name}{{quantile="0.5"}}')),
            "p99": _ms(values.get(f'{name}{{quantile="0.99"}}')),
        }
    if all(v["p50"] is None for v in figures.values()):
        return None
    return figures


def _ms(seconds: float | None) -> float | None:
    if seconds is None or math.isnan(seconds):
        return None
    return seconds * 1000


class NodeWatch:
    """CPU use of the node between readings, from its pid or its /metrics."""

    def __init__(self, *, pid: int | None = None, metrics_url: str | None = None) -> None:
        self.pid = pid
        self.metrics_url = metrics_url
        self.source = "pid" if pid else "metrics" if metrics_url else None
        self.error: str | None = None
        self.last_metrics: dict[str, float] = {}
        self._client = httpx.AsyncClient(timeout=5.0) if metrics_url else None
        self._last: NodeReading | None = None
        self._last_scrape = -math.inf

    async def scrape(self) -> dict[str, float]:
        """The node's /metrics, parsed ({} when it cannot be had)."""
        if self._client is None or self.metrics_url is None:
            return {}
        try:
            response = await self._client.get(self.metrics_url)
        except httpx.HTTPError as error:
            self.error = f"/metrics unreachable: {type(error).__name__}"
            return {}
        if response.status_code != 200:
            self.error = f"/metrics answered {response.status_code}"
            return {}
        self.last_metrics = parse_metrics(response.text)
        return self.last_metrics

    async def sample(self) -> tuple[float | None, float | None]:
        """(CPU % of one core since the last reading, RSS MiB) or Nones."""
        reading: NodeReading | None = None
        if self.pid:
            reading = read_process(self.pid)
        elif self.metrics_url:
            if time.monotonic() - self._last_scrape < METRICS_EVERY:
                return None, None
            self._last_scrape = time.monotonic()
            reading = reading_from_metrics(await self.scrape())
        if reading is None:
            return None, None
        last, self._last = self._last, reading
        rss = reading.rss_bytes / 2**20
        if last is None or reading.at <= last.at:
            return None, rss
        return 100 * (reading.cpu_seconds - last.cpu_seconds) / (reading.at - last.at), rss

    async def close(self) -> None:
        if self._client is not None:
            await self._client.aclose()
