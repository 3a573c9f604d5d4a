"""The load test's live progress: a table on a terminal, a log line elsewhere.

Theory of operation
-------------------
A :class:`ProgressView` is ``idle`` until :meth:`ProgressView.start`, ``running`` until
:meth:`ProgressView.stop`, then ``stopped``. While running, the runner hands it each
timeline point (about one a second) with :meth:`ProgressView.update`.

*On a terminal* (or ``live=True``) a :class:`rich.live.Live` shows a table of the last
point; rich redraws it twice a second and leaves it on screen at the end.

*Elsewhere* (CI, a pipe; or ``live=False``) :meth:`~ProgressView.update` logs one INFO
line on the ``voxgate.loadtest`` logger, its numbers as ``extra`` fields, when at least
:data:`LOG_EVERY` seconds of wall time have passed since the last line (the first point
always logs). The clock is injectable, and ``update`` takes ``now`` for tests.

*Counts.* A point's ``answered`` and ``failed`` are running totals, shown as they come;
its ``frames`` (frames expected back) and ``lost`` count the interval since the previous
point (as :meth:`voxgate.loadtest.runner.LoadSession.snapshot` makes them) and are
summed here: loss is ``lost / expected`` so far. The target is the point's
``target_calls`` (a capacity step changes it), else the one given to the view.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Mapping
from types import TracebackType
from typing import Any, Final

from rich.console import Console
from rich.live import Live
from rich.table import Table
from rich.text import Text

LOG_EVERY: Final = 5.0  # seconds of wall time between two log lines
REFRESH_PER_SECOND: Final = 2
NOT_AVAILABLE: Final = "n/a"
LOGGER: Final = logging.getLogger("voxgate.loadtest")


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if math.isfinite(value) else None


def _show(value: Any, unit: str = "", digits: int = 1) -> str:
    """A number for the table ("12.5 %"), or "n/a" when the point has none."""
    number = _number(value)
    if number is None:
        return NOT_AVAILABLE
    text = str(int(number)) if isinstance(value, int) else f"{number:.{digits}f}"
    return f"{text} {unit}".rstrip()


def _pair(first: Any, second: Any, unit: str) -> str:
    return f"{_show(first)} / {_show(second)} {unit}"


class ProgressView:
    """The live view of one load test run (see the module's theory of operation)."""

    def __init__(
        self,
        *,
        console: Console | None = None,
        live: bool | None = None,
        log: logging.Logger | None = None,
        target: int | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._console = console if console is not None else Console()
        self._live_wanted = self._console.is_terminal if live is None else live
        self._log = log if log is not None else LOGGER
        self._target = target
        self._clock = clock
        self._live: Live | None = None
        self._started_at: float | None = None
        self._last_logged_at: float | None = None
        self._point: Mapping[str, Any] = {}
        self._expected = 0
        self._lost = 0

    def start(self) -> None:
        self._started_at = self._clock()
        if self._live_wanted and self._live is None:
            self._live = Live(
                self._table(self._started_at),
                console=self._console,
                refresh_per_second=REFRESH_PER_SECOND,
                transient=False,
            )
            self._live.start()

    def update(self, point: Mapping[str, Any], now: float | None = None) -> None:
        """Take one timeline point (plus optional "phase" and "target_calls")."""
        now = self._clock() if now is None else now
        if self._started_at is None:
            self._started_at = now
        self._point = point
        self._expected += int(_number(point.get("frames")) or 0)
        self._lost += int(_number(point.get("lost")) or 0)
        if self._live is not None:
            self._live.update(self._table(now))
        elif not self._live_wanted and self._log_due(now):
            self._last_logged_at = now
            self._log.info("load test progress", extra=self.fields(now))

    def stop(self) -> None:
        if self._live is not None:
            self._live.update(self._table(self._clock()), refresh=True)
            self._live.stop()
            self._live = None

    def __enter__(self) -> ProgressView:
        self.start()
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    def _log_due(self, now: float) -> bool:
        return self._last_logged_at is None or now - self._last_logged_at >= LOG_EVERY

    def fields(self, now: float) -> dict[str, Any]:
        """The last point's numbers, and the totals so far, as plain values."""
        point = self._point
        elapsed = _number(point.get("t"))
        if elapsed is None and self._started_at is not None:
            elapsed = now - self._started_at
        return {
            "elapsed_s": elapsed,
            "phase": point.get("phase"),
            "active": point.get("active"),
            "target": point.get("target_calls", self._target),
            "calls_per_s": point.get("calls_per_s"),
            "answered": point.get("answered"),
            "failed": point.get("failed"),
            "p50_ms": point.get("p50_ms"),
            "p99_ms": point.get("p99_ms"),
            "frames_lost": self._lost,
            "loss_ratio": self._lost / self._expected if self._expected else None,
            "cpu_percent": point.get("cpu_percent"),
            "rss_mib": point.get("rss_mib"),
        }

    def _table(self, now: float) -> Table:
        values = self.fields(now)
        loss = values["loss_ratio"]
        rows = (
            ("elapsed", _show(values["elapsed_s"], "s")),
            ("phase", str(values["phase"] or "")),
            ("active calls", f"{_show(values['active'])} / {_show(values['target'])}"),
            ("calls/s", _show(values["calls_per_s"])),
            ("answered / failed", f"{_show(values['answered'])} / {_show(values['failed'])}"),
            ("latency p50 / p99 (last s)", _pair(values["p50_ms"], values["p99_ms"], "ms")),
            (
                "frames lost",
                f"{self._lost} ({_show(None if loss is None else loss * 100, '%', 3)})",
            ),
            ("node CPU", _show(values["cpu_percent"], "%")),
            ("node RSS", _show(values["rss_mib"], "MiB")),
        )
        table = Table(title="voxgate load test", show_header=False)
        table.add_column("measure", style="bold")
        table.add_column("value", justify="right")
        for label, value in rows:
            table.add_row(label, Text(value))  # Text: a phase's "[...]" is no markup
        return table
