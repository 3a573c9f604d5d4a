"""A finished run as the JSON result (the report and ``--json`` write it as it is).

Top-level names an SRE's script can rely on: ``calls`` (placed), ``lost`` (frames),
``p50`` and ``p99`` (mouth-to-ear round trip, ms); the rest breaks them down.
"""

from __future__ import annotations

import math
import time
from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Any, Final

import numpy as np

from voxgate.loadtest.probe import HISTOGRAM_EDGES_MS, CallFigures
from voxgate.loadtest.runner import LoadSession, percentiles

MAX_SAMPLES: Final = 5000  # latency values kept for the CDF
MAX_CALLS_LISTED: Final = 2000


def _summary(values: Sequence[float]) -> dict[str, float | None]:
    p50, p90, p99 = percentiles(list(values), 50, 90, 99)
    return {
        "min": round(min(values), 3) if values else None,
        "p50": p50,
        "p90": p90,
        "p99": p99,
        "max": round(max(values), 3) if values else None,
    }


def _spread(values: list[float]) -> list[float]:
    """At most MAX_SAMPLES values, spread evenly over the sorted whole (for a CDF)."""
    ordered = sorted(values)
    if len(ordered) <= MAX_SAMPLES:
        return [round(v, 3) for v in ordered]
    picks = np.linspace(0, len(ordered) - 1, MAX_SAMPLES).round().astype(int)
    return [round(ordered[i], 3) for i in picks]


def _per_call(figures: CallFigures) -> dict[str, Any]:
    p50, p99 = percentiles(figures.latencies_ms, 50, 99)
    return {
        "index": figures.index, "status": figures.status, "failure": figures.failure,
        "setup_ms": _round(figures.setup_ms), "first_audio_ms": _round(figures.first_audio_ms),
        "p50_ms": p50, "p99_ms": p99, "frames_sent": figures.frames_sent,
        "expected": figures.frames_expected, "lost": figures.frames_lost,
        "late": figures.frames_late, "jitter_ms": round(figures.jitter_ms, 3),
        "gaps": figures.gaps, "max_gap_ms": round(figures.max_gap_ms, 3),
        "dtmf_sent": figures.dtmf_sent, "dtmf_detected": figures.dtmf_detected,
    }  # fmt: skip


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 3)


def build_result(
    session: LoadSession,
    *,
    settings: Mapping[str, Any],
    target: str,
    dialect: str,
    bot: str,
    started_wall: float,
    bridge_metrics: Mapping[str, Any] | None,
    capacity: Mapping[str, Any] | None = None,
    stopped: str | None = None,
) -> dict[str, Any]:
    every = [probe.figures for probe in session.probes]
    answered = [f for f in every if f.setup_ms is not None]
    failures = Counter(f.failure or "unknown" for f in every if f.status in ("failed", "dropped"))
    latencies = [v for f in every for v in f.latencies_ms]
    expected = sum(f.frames_expected for f in every)
    lost = sum(f.frames_lost for f in every)
    histogram = np.sum([f.deviations for f in every], axis=0) if every else None
    dtmf_latencies = [v for f in every for v in f.dtmf_latencies_ms]
    cpus = [p.cpu_percent for p in session.timeline if p.cpu_percent is not None]
    rss = [p.rss_mib for p in session.timeline if p.rss_mib is not None]
    latency = _summary(latencies)
    return {
        "tool": "voxgate loadtest",
        "version": 1,
        "target": target,
        "dialect": dialect,
        "bot": bot,
        "started_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(started_wall)),
        "wall_seconds": round(time.time() - started_wall, 3),
        "stopped_early": stopped,  # None, "interrupted" or "error: <type>"
        "settings": dict(settings),
        "calls": len(every),
        "calls_answered": len(answered),
        "calls_failed": sum(1 for f in every if f.status == "failed"),
        "calls_dropped": sum(1 for f in every if f.status == "dropped"),
        "failures": dict(failures),
        "setup_ms": _summary([f.setup_ms for f in answered if f.setup_ms is not None]),
        "first_audio_ms": _summary([f.first_audio_ms for f in every if f.first_audio_ms]),
        "p50": latency["p50"],
        "p99": latency["p99"],
        "latency_ms": {**latency, "samples": len(latencies)},
        "lost": lost,
        "frames": {
            "sent": sum(f.frames_sent for f in every),
            "expected": expected,
            "received": expected - lost,
            "returned": sum(f.chunks_received for f in every),
            "lost": lost,
            "late": sum(f.frames_late for f in every),
            "loss_ratio": round(lost / expected, 6) if expected else None,
        },
        "jitter_ms": _jitter([f.jitter_ms for f in every if f.chunks_received > 1]),
        "gaps": {
            "count": sum(f.gaps for f in every),
            "max_ms": round(max((f.max_gap_ms for f in every), default=0.0), 3),
        },
        "jitter_histogram": {
            "edges_ms": [float(e) for e in HISTOGRAM_EDGES_MS],
            "counts": [int(c) for c in histogram] if histogram is not None else [],
        },
        "dtmf": {
            "sent": sum(f.dtmf_sent for f in every),
            "detected": sum(f.dtmf_detected for f in every),
            "latency_ms": dict(
                zip(("p50", "p99"), percentiles(dtmf_latencies, 50, 99), strict=True)
            ),
        },
        "node": {
            "source": session.node.source,
            "error": session.node.error,
            "cpu_percent": {
                "mean": round(sum(cpus) / len(cpus), 2) if cpus else None,
                "max": max(cpus) if cpus else None,
            },
            "rss_mib": {"max": max(rss) if rss else None},
        },
        "generator": {
            "cpu_percent": _own_cpu(session),
            "late_ticks": session.grid.late_ticks,
            "ticks": session.grid.ticks,
            "max_lateness_ms": round(session.grid.max_lateness * 1000, 3),
        },
        "bridge_metrics": dict(bridge_metrics) if bridge_metrics else None,
        "timeline": [point.as_json() for point in session.timeline],
        "latency_samples_ms": _spread(latencies),
        "capacity": dict(capacity) if capacity else None,
        "per_call": [_per_call(f) for f in every[:MAX_CALLS_LISTED]],
    }


def _own_cpu(session: LoadSession) -> float:
    """The load tester's own CPU over the run, % of one core (the generator's headroom)."""
    wall = time.monotonic() - session.started_at
    return round(100 * (time.process_time() - session.started_cpu) / max(wall, 1e-6), 2)


def _jitter(values: list[float]) -> dict[str, float | None]:
    if not values:
        return {"mean": None, "p99": None, "max": None}
    (p99,) = percentiles(values, 99)
    return {"mean": round(sum(values) / len(values), 3), "p99": p99, "max": round(max(values), 3)}


def finite(value: Any) -> Any:
    """``value`` with every NaN or infinity replaced by None (JSON has neither)."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {key: finite(item) for key, item in value.items()}
    if isinstance(value, list):
        return [finite(item) for item in value]
    return value
