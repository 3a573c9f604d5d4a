"""Operability: structured logs with the call id on every line about a call, and counters.

Logs go to stderr, one JSON object per line by default (``log.format =
"text"`` for people at a terminal). Any ``extra={"call_id": ...}`` given to a
logging call becomes a field, so every line about a call can be found by its
id. Counters are process-wide and rendered in Prometheus' text format at
``GET /metrics``; every error path increments one.
"""

from __future__ import annotations

import json
import logging
import sys
import threading
from collections import Counter, deque
from typing import Final

import numpy as np

RESERVOIR: Final = 50_000  # latest observations kept per summary

_STANDARD_ATTRIBUTES: Final = frozenset(
    vars(logging.LogRecord("", 0, "", 0, "", None, None)).keys() | {"message", "asctime"}
)


class JsonFormatter(logging.Formatter):
    """One JSON object per record; extra attributes (``call_id``...) become fields."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, object] = {
            "ts": round(record.created, 3),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        for key, value in vars(record).items():
            if key not in _STANDARD_ATTRIBUTES and not key.startswith("_"):
                entry[key] = value
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str)


class TextFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        call = getattr(record, "call_id", None)
        prefix = f"[{call}] " if call else ""
        line = f"{record.levelname.lower():7} {record.name}: {prefix}{record.getMessage()}"
        if record.exc_info:
            line += "\n" + self.formatException(record.exc_info)
        return line


def setup_logging(level: str = "info", fmt: str = "json") -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())


class Metrics:
    """Named counters with optional labels, safe to bump from any thread."""

    def __init__(self) -> None:
        self._counts: Counter[tuple[str, tuple[tuple[str, str], ...]]] = Counter()
        self._lock = threading.Lock()
        self.gauges: dict[str, float] = {}
        self._observed: dict[str, deque[float]] = {}

    def observe(self, name: str, value: float) -> None:
        """Record one observation of a summary (kept in a bounded reservoir)."""
        reservoir = self._observed.get(name)
        if reservoir is None:
            reservoir = self._observed.setdefault(name, deque(maxlen=RESERVOIR))
        reservoir.append(value)

    def quantiles(self, name: str, *qs: float) -> list[float]:
        values = np.fromiter(self._observed.get(name, ()), dtype=np.float64)
        if not values.size:
            return [float("nan")] * len(qs)
        return [float(v) for v in np.quantile(values, qs)]

    def reset(self) -> None:
        """Forget everything counted and observed (a fresh process, for tests)."""
        with self._lock:
            self._counts.clear()
        self._observed.clear()
        self.gauges.clear()

    def count(self, name: str, amount: int = 1, **labels: str) -> None:
        key = (name, tuple(sorted(labels.items())))
        with self._lock:
            self._counts[key] += amount

    def value(self, name: str, **labels: str) -> int:
        return self._counts[(name, tuple(sorted(labels.items())))]

    def total(self, name: str) -> int:
        return sum(count for (metric, _), count in self._counts.items() if metric == name)

    def render(self) -> str:
        """Prometheus text exposition format (version 0.0.4)."""
        lines = []
        with self._lock:
            items = sorted(self._counts.items())
        seen: set[str] = set()
        for (name, labels), count in items:
            if name not in seen:
                lines.append(f"# TYPE voxgate_{name} counter")
                seen.add(name)
            rendered = ",".join(f'{key}="{_escape(value)}"' for key, value in labels)
            lines.append(
                f"voxgate_{name}{{{rendered}}} {count}" if rendered else f"voxgate_{name} {count}"
            )
        for name in sorted(self._observed):
            lines.append(f"# TYPE voxgate_{name} summary")
            for q, value in zip((0.5, 0.99), self.quantiles(name, 0.5, 0.99), strict=True):
                lines.append(f'voxgate_{name}{{quantile="{q}"}} {value:.6f}')
            lines.append(f"voxgate_{name}_count {len(self._observed[name])}")
        for name, value in sorted(self.gauges.items()):
            lines.append(f"# TYPE voxgate_{name} gauge")
            lines.append(f"voxgate_{name} {value}")
        return "\n".join(lines) + "\n"


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


METRICS: Final = Metrics()
