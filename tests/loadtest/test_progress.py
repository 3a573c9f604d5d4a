"""The live progress view: a rich table on a terminal, a rate-limited log line elsewhere."""

from __future__ import annotations

import io
import logging
import re
from typing import Any

import pytest
from rich.console import Console

from voxgate.loadtest.progress import ProgressView

ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


def point(second: int, **changes: Any) -> dict[str, Any]:
    """One timeline entry of a run ramping to 50 calls, 5 lost frames a second from t=3."""
    entry: dict[str, Any] = {
        "t": float(second),
        "active": min(50, 10 * second),
        "calls_per_s": 10.0,
        "answered": min(50, 10 * second),
        "failed": 1,
        "p50_ms": 1.86,
        "p99_ms": 4.24,
        "frames": 495,
        "lost": 5 if second >= 3 else 0,
        "cpu_percent": 37.5,
        "rss_mib": 80.5,
        "phase": "ramp",
    }
    return entry | changes


def terminal() -> tuple[Console, io.StringIO]:
    screen = io.StringIO()
    return Console(file=screen, force_terminal=True, width=120), screen


def shown(screen: io.StringIO) -> str:
    return ANSI.sub("", screen.getvalue())


def test_the_live_table_shows_the_last_point_and_the_totals() -> None:
    console, screen = terminal()
    with ProgressView(console=console, target=50) as view:
        for second in range(1, 5):
            view.update(point(second, phase="step 3: 150 calls [hold]"), now=float(second))
    text = shown(screen)
    assert "voxgate load test" in text
    for expected in (
        "4.0 s",
        "step 3: 150 calls [hold]",  # shown as given, not taken for rich markup
        "40 / 50",
        "10.0",
        "40 / 1",
        "1.9 / 4.2 ms",  # rounded to one decimal
        "10 (0.505 %)",  # 10 lost of 1980 frames expected (4 x 495)
        "37.5 %",
        "80.5 MiB",
    ):
        assert expected in text, expected


def test_the_live_table_says_n_a_for_what_is_not_measured() -> None:
    console, screen = terminal()
    view = ProgressView(console=console, live=True)
    view.start()
    view.update({"t": 1.0, "active": 3, "frames": 0, "lost": 0, "cpu_percent": None})
    view.stop()
    text = shown(screen)
    assert "3 / n/a" in text  # no target given
    assert "n/a / n/a ms" in text
    assert "0 (n/a)" in text
    assert text.count("n/a") >= 6  # latency twice, loss, CPU, RSS, target, calls/s...


def test_a_point_may_carry_its_own_target() -> None:
    console, screen = terminal()
    with ProgressView(console=console, target=50) as view:
        view.update(point(2, target_calls=150, active=120))
    assert "120 / 150" in shown(screen)


def test_off_a_terminal_it_logs_at_most_one_line_every_five_seconds(
    caplog: pytest.LogCaptureFixture,
) -> None:
    screen = io.StringIO()
    console = Console(file=screen, force_terminal=False, width=120)
    caplog.set_level(logging.INFO, logger="voxgate.loadtest")
    with ProgressView(console=console, target=50) as view:
        for second, now in enumerate((100.0, 101.0, 104.9, 105.0, 107.0, 109.9, 110.1), 1):
            view.update(point(second), now=now)
    lines = [record for record in caplog.records if record.name == "voxgate.loadtest"]
    assert [record.getMessage() for record in lines] == ["load test progress"] * 3
    assert [record.levelno for record in lines] == [logging.INFO] * 3
    assert [record.__dict__["elapsed_s"] for record in lines] == [1.0, 4.0, 7.0]
    last = lines[-1].__dict__
    assert last["active"] == 50
    assert last["target"] == 50
    assert last["phase"] == "ramp"
    assert last["answered"] == 50 and last["failed"] == 1
    assert last["p50_ms"] == 1.86 and last["p99_ms"] == 4.24
    assert last["frames_lost"] == 25  # t = 3..7, 5 a second
    assert last["loss_ratio"] == pytest.approx(25 / (7 * 495))
    assert last["cpu_percent"] == 37.5 and last["rss_mib"] == 80.5
    assert screen.getvalue() == ""  # no table, no print


def test_the_log_line_uses_the_injected_clock_and_the_given_logger(
    caplog: pytest.LogCaptureFixture,
) -> None:
    times = iter([50.0, 52.0, 54.0, 56.0])
    logger = logging.getLogger("voxgate.loadtest.test")
    caplog.set_level(logging.INFO, logger=logger.name)
    console, screen = terminal()
    view = ProgressView(console=console, live=False, log=logger, clock=lambda: next(times))
    view.start()  # 50.0
    view.update({"active": 1})  # 52.0: the first line, elapsed from start()
    view.update({"active": 2})  # 54.0: too soon
    view.update({"active": 3})  # 56.0: too soon
    view.stop()
    lines = [record for record in caplog.records if record.name == logger.name]
    assert len(lines) == 1
    assert lines[0].__dict__["elapsed_s"] == 2.0
    assert lines[0].__dict__["cpu_percent"] is None
    assert screen.getvalue() == ""  # live=False on a terminal: logs, draws nothing
