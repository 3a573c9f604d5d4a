"""The load test report: its JSON (NaN written as null) and its HTML page, checked as text
and in a real headless Chromium that has no network (the page must need none)."""

from __future__ import annotations

import json
import math
import re
import subprocess
from pathlib import Path
from typing import Any, Final

import numpy as np
import pytest
from browser import headless_argv

from voxgate.loadtest.report import render_html, write_json

BROWSER_LIMIT: Final = 90.0  # seconds for one headless run on a busy machine
SECTIONS: Final = ("summary", "latency", "capacity", "jitter", "calls")
HOSTILE: Final = "<script>alert(1)</script>"
EXTERNAL_REFERENCE: Final = re.compile(r"""(?:src|href)\s*=\s*["']?\s*(?:https?:)?//""", re.I)


def realistic_result() -> dict[str, Any]:
    """A 60-call run with a capacity search, every measure present (seeded)."""
    rng = np.random.default_rng(11)
    samples = (1.5 + rng.lognormal(0.0, 0.6, 3000)).round(3).tolist()
    timeline = [
        {
            "t": float(second),
            "active": min(60, 5 * second),
            "calls_per_s": 5.0 if second <= 12 else 0.0,
            "answered": min(60, 5 * second),
            "failed": 0,
            "p50_ms": 1.8 + 0.02 * second,
            "p99_ms": 3.0 + 0.1 * second,
            "frames": 250 * min(12, second),
            "lost": second % 7 == 0,
            "cpu_percent": 2.0 * min(60, 5 * second),
            "rss_mib": 80.0 + second / 10,
        }
        for second in range(1, 31)
    ]
    steps = [
        {"calls": calls, "p50_ms": 1.5 + calls / 100, "p99_ms": 3 + calls**2 / 400,
         "loss_ratio": 0.0, "cpu_percent": calls * 0.6, "passed": calls < 150}
        for calls in (50, 100, 150, 200)
    ]  # fmt: skip
    per_call = [
        {"index": index, "status": "completed", "failure": None, "setup_ms": 12.0 + index,
         "p50_ms": 1.9, "p99_ms": 3.0 + (index * 7) % 23, "lost": index % 3, "late": 0,
         "jitter_ms": 0.4, "max_gap_ms": 21.0, "dtmf_sent": 2, "dtmf_detected": 2}
        for index in range(60)
    ]  # fmt: skip
    per_call[17] |= {"status": "failed", "failure": "busy", "p50_ms": None, "p99_ms": None}
    per_call[30] |= {"status": "dropped", "p99_ms": 4.0}
    edges = list(range(-20, 41))
    counts = [int(2400 * math.exp(-((edge / 2.0) ** 2))) for edge in edges[:-1]]
    return {
        "tool": "voxgate loadtest",
        "version": 1,
        "target": "ws://ops:hunter2@127.0.0.1:8080/v1/streams/twilio?token=s3cret&x=<b>",
        "dialect": "twilio",
        "bot": "node",
        "started_at": "2026-12-02T21:00:00Z",
        "wall_seconds": 31.2,
        "settings": {"calls": 60, "duration_s": 20.0, "ramp_per_s": 5.0, "codec": "pcmu",
                     "bot_audio": "pcmu/8000", "dtmf_every_s": 2.0, "marker_interval_s": 0.5},
        "calls": 60, "calls_answered": 58, "calls_failed": 1, "calls_dropped": 1,
        "failures": {"busy": 1},
        "generator": {"late_ticks": 3, "ticks": 1500, "max_lateness_ms": 4.5},
        "setup_ms": {"p50": 14.2, "p90": 30.0, "p99": 61.5, "max": 70.0},
        "p50": 2.5, "p99": 7.25,
        "latency_ms": {"min": 1.6, "p50": 2.5, "p90": 4.0, "p99": 7.25, "max": 12.0,
                       "samples": 3000},
        "lost": 4,
        "frames": {"sent": 59000, "expected": 58800, "received": 58796, "lost": 4, "late": 2,
                   "loss_ratio": 4 / 58800},
        "jitter_ms": {"mean": 0.31, "p99": math.nan, "max": math.inf},
        "gaps": {"count": 1, "max_ms": 44.0},
        "jitter_histogram": {"edges_ms": edges, "counts": counts},
        "dtmf": {"sent": 118, "detected": 117, "latency_ms": {"p50": 60.0, "p99": 80.0}},
        "node": {"source": "pid", "cpu_percent": {"mean": 61.0, "max": 120.0},
                 "rss_mib": {"max": 83.0}},
        "bridge_metrics": {"inbound_ms": {"p50": 0.12, "p99": 0.4},
                           "outbound_ms": {"p50": 0.15, "p99": 0.5}},
        "timeline": timeline,
        "latency_samples_ms": samples,
        "capacity": {"knee_calls": 150, "broke_on": "p99",
                     "thresholds": {"p99_ms": 50, "loss_ratio": 0.001, "cpu_percent": 100},
                     "steps": steps},
        "per_call": per_call,
    }  # fmt: skip


def sparse_result() -> dict[str, Any]:
    """One call that failed: no samples, no node measures, no capacity search."""
    return {
        "tool": "voxgate loadtest",
        "version": 1,
        "target": "ws://127.0.0.1:9/v1/streams/twilio",
        "settings": {"calls": 1, "duration_s": 5.0, "bot_audio": None},
        "calls": 1,
        "calls_answered": 0,
        "calls_failed": 1,
        "failures": {HOSTILE: 1},
        "p50": None,
        "p99": None,
        "node": None,
        "bridge_metrics": None,
        "capacity": None,
        "timeline": [],
        "latency_samples_ms": [],
        "per_call": [{"index": 0, "status": "failed", "failure": HOSTILE, "setup_ms": None}],
    }


def strict_json(text: str) -> Any:
    def refuse(constant: str) -> None:
        raise AssertionError(f"{constant} written to JSON")

    return json.loads(text, parse_constant=refuse)


def headings(page: str) -> set[str]:
    return set(re.findall(r'<h2 id="([a-z]+)"', page))


def test_json_round_trip_writes_nan_and_infinity_as_null(tmp_path: Path) -> None:
    result = realistic_result()
    path = tmp_path / "result.json"
    write_json(result, path)
    text = path.read_text(encoding="utf-8")
    assert text.endswith("}\n")
    assert text.startswith('{\n  "tool": "voxgate loadtest"')  # indent 2, keys in their order
    back = strict_json(text)
    assert back["jitter_ms"] == {"mean": 0.31, "p99": None, "max": None}
    assert list(back) == list(result)
    result["jitter_ms"] = back["jitter_ms"]
    assert back == result


def test_json_keeps_non_ascii_text_as_utf8(tmp_path: Path) -> None:
    path = tmp_path / "result.json"
    write_json({"failures": {"refusé": 1}, "wall_seconds": -math.inf}, path)
    assert "refusé" in path.read_bytes().decode("utf-8")
    assert strict_json(path.read_text(encoding="utf-8")) == {
        "failures": {"refusé": 1},
        "wall_seconds": None,
    }


def test_the_full_report_has_every_section_and_its_plots() -> None:
    page = render_html(realistic_result())
    assert page.startswith("<!DOCTYPE html>")
    assert "<title>voxgate load test</title>" in page
    assert headings(page) >= set(SECTIONS)
    assert page.count("<svg") == 4  # latency CDF, load, timeline, jitter
    assert "<?xml" not in page and "<!DOCTYPE svg" not in page
    assert EXTERNAL_REFERENCE.search(page) is None
    assert "<script" not in page.lower() and "@import" not in page and "url(http" not in page
    svg_ids = re.findall(r"<svg.*?</svg>", page, re.S)
    ids = [found for svg in svg_ids for found in re.findall(r'\bid="([^"]+)"', svg)]
    assert len(ids) == len(set(ids)), "two plots share an id"
    text = re.sub(r"<[^>]+>", " ", page)
    for shown in (
        "58",
        "58800",
        "2.5 ms / 7.2 ms",
        "0.12 ms / 0.40 ms",
        "117 of 118 sent",
        "1, longest 44.0 ms",
        "Knee at 150 calls",
        "generator late ticks",
        "4.5 ms",
    ):
        assert shown in text, shown
    assert "p99 broke its threshold (50)" in text
    assert "hunter2" not in page and "s3cret" not in page  # the target URL, redacted
    assert "&lt;b&gt;" in page and "<b>" not in page


def test_a_run_stopped_early_says_so() -> None:
    assert "stopped early" not in render_html(realistic_result())
    page = render_html({**realistic_result(), "stopped_early": "interrupted"})
    assert "<tr><td>stopped early</td><td>interrupted</td></tr>" in page


def test_the_worst_calls_table_holds_twenty_calls_unfinished_ones_first() -> None:
    page = render_html(realistic_result())
    calls = page[page.index('id="calls"') :]
    rows = re.findall(r"<tr( class=\"failed\")?><td class=\"num\">(\d+)</td>", calls)
    assert len(rows) == 20
    assert rows[:2] == [(' class="failed"', "30"), (' class="failed"', "17")]  # not completed
    assert rows[2][0] == ""
    assert "The 20 worst calls of 60" in calls


def test_a_sparse_report_says_what_was_not_measured_and_escapes_strings() -> None:
    page = render_html(sparse_result())
    assert headings(page) == {"summary", "settings", "latency", "jitter", "calls"}
    assert "<svg" not in page
    assert "not measured" in page
    assert HOSTILE not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert page.count("&lt;script&gt;") == 2  # the failures table and the call's row


def chromium(profile: Path, *args: str) -> str:
    """Headless Chromium without network (every request goes to a dead proxy): its stdout."""
    done = subprocess.run(
        headless_argv(
            profile,
            "--proxy-server=127.0.0.1:9",
            "--proxy-bypass-list=<-loopback>",
            *args,
        ),
        stdin=subprocess.DEVNULL,
        capture_output=True,
        timeout=BROWSER_LIMIT,
        check=False,
    )
    assert done.returncode == 0, done.stderr.decode(errors="replace")[-2000:]
    return done.stdout.decode(errors="replace")


def page_requests(net_log: Path) -> set[str]:
    """What the page asked the network for, from Chromium's --log-net-log file: the
    requests with an initiator (Chromium's own background ones have "not an origin")."""
    log = json.loads(net_log.read_text(encoding="utf-8"))
    start_job = log["constants"]["logEventTypes"]["URL_REQUEST_START_JOB"]
    return {
        event["params"]["url"]
        for event in log["events"]
        if event["type"] == start_job
        and "url" in event.get("params", {})
        and event["params"].get("initiator") != "not an origin"
    }


@pytest.mark.parametrize("build", [realistic_result, sparse_result])
def test_the_written_page_renders_in_chromium_without_network(build: Any, tmp_path: Path) -> None:
    result = build()
    page = tmp_path / "report.html"
    page.write_text(render_html(result), encoding="utf-8")
    net_log = tmp_path / "net-log.json"
    dom = chromium(tmp_path / "profile", f"--log-net-log={net_log}", "--dump-dom", page.as_uri())
    assert "<title>voxgate load test</title>" in dom
    expected = set(SECTIONS) if result["capacity"] else set(SECTIONS) - {"capacity"}
    assert headings(dom) >= expected
    assert dom.count("<svg") == (4 if result["capacity"] else 0)
    assert "<text" in dom or result["capacity"] is None  # the plots' labels made it
    assert HOSTILE not in dom
    assert page_requests(net_log) == set()


def test_the_network_check_sees_a_page_that_fetches(tmp_path: Path) -> None:
    """The check above can fail: a page with an external image and style sheet trips it,
    and still renders (the requests fail at the dead proxy)."""
    page = tmp_path / "fetching.html"
    page.write_text(
        '<!DOCTYPE html><html><head><link rel="stylesheet" href="https://fonts.invalid/a.css">'
        '</head><body><h2 id="summary">x</h2><img src="http://images.invalid/x.png"></body></html>',
        encoding="utf-8",
    )
    net_log = tmp_path / "net-log.json"
    dom = chromium(tmp_path / "profile", f"--log-net-log={net_log}", "--dump-dom", page.as_uri())
    assert headings(dom) == {"summary"}
    assert page_requests(net_log) == {"https://fonts.invalid/a.css", "http://images.invalid/x.png"}
