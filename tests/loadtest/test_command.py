"""``voxgate loadtest``'s options: the dialect and /metrics URL taken from TARGET, the
argument parser, the summary printed at the end and the files written."""

from __future__ import annotations

import argparse
import asyncio
import json
from pathlib import Path
from typing import Any

import pytest
from scenario import run

from voxgate.loadtest.command import (
    UsageError,
    add_arguments,
    dialect_of,
    metrics_url,
    summary_text,
    write_outputs,
)
from voxgate.loadtest.node import NodeWatch
from voxgate.loadtest.probe import CallProbe
from voxgate.loadtest.results import build_result, finite
from voxgate.loadtest.runner import LoadSession


@pytest.mark.parametrize(
    ("target", "chosen", "dialect"),
    [
        ("ws://127.0.0.1:8080/v1/streams/twilio", None, "twilio"),
        ("wss://node.example/v1/streams/telnyx/", None, "telnyx"),
        ("ws://node.example/v1/streams/twilio?token=abc", None, "twilio"),
        ("ws://node.example/custom/path", "twilio", "twilio"),
        ("wss://node.example/v1/streams/twilio", "telnyx", "telnyx"),
        ("sip:+15550001111@127.0.0.1:5060", None, "sip"),
        ("sips:+15550001111@node.example", "sip", "sip"),
    ],
)
def test_dialect_of_a_target(target: str, chosen: str | None, dialect: str) -> None:
    assert dialect_of(target, chosen) == dialect


@pytest.mark.parametrize(
    ("target", "chosen", "problem"),
    [
        ("sip:+15550001111@127.0.0.1", "twilio", "a SIP target takes --dialect sip, not twilio"),
        ("http://node.example/v1/streams/twilio", None, "TARGET must be a ws:// or wss://"),
        ("ws:///v1/streams/twilio", None, "TARGET must be a ws:// or wss://"),
        ("node.example:8080", None, "TARGET must be a ws:// or wss://"),
        ("ws://node.example/v1/streams/twilio", "sip", "--dialect sip needs a sip: TARGET"),
        ("ws://node.example/v1/streams/plivo", None, "cannot tell the dialect from '/v1/st"),
        ("ws://node.example", None, "cannot tell the dialect from ''"),
    ],
)
def test_dialect_of_a_bad_target_names_the_problem(
    target: str, chosen: str | None, problem: str
) -> None:
    with pytest.raises(UsageError) as raised:
        dialect_of(target, chosen)
    assert problem in str(raised.value)


@pytest.mark.parametrize(
    ("target", "given", "url"),
    [
        ("ws://127.0.0.1:8080/v1/streams/twilio", None, "http://127.0.0.1:8080/metrics"),
        ("wss://node.example/v1/streams/telnyx", None, "https://node.example/metrics"),
        ("ws://node.example:81/v1/streams/twilio?token=secret#x", None, "http://node.example:81/metrics"),
        ("ws://node.example/v1/streams/twilio", "http://other:9/m", "http://other:9/m"),
        ("sip:+15550001111@127.0.0.1:5060", None, None),
        ("sip:+15550001111@127.0.0.1:5060", "http://node:8080/metrics", "http://node:8080/metrics"),
    ],
)  # fmt: skip
def test_metrics_url_of_a_target(target: str, given: str | None, url: str | None) -> None:
    assert metrics_url(target, given) == url


# --- the argument parser ----------------------------------------------------------------------


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="voxgate loadtest")
    add_arguments(parser)
    return parser


def test_the_parsers_defaults() -> None:
    args = _parser().parse_args(["ws://127.0.0.1:8080/v1/streams/twilio"])
    assert (args.calls, args.duration, args.ramp, args.late_ms) == (10, 30.0, 10.0, 60.0)
    assert (args.bot, args.dialect, args.codec, args.dtmf_every) == ("node", None, "PCMU", None)
    assert (args.json, args.html, args.find_capacity, args.no_progress) == (
        None,
        None,
        False,
        False,
    )
    assert (args.start, args.step, args.max_calls, args.step_seconds) == (50, 50, 1000, 10.0)
    assert (args.max_p99_ms, args.max_loss, args.max_cpu, args.max_added_ms) == (
        20.0, 0.001, None, None
    )  # fmt: skip


def test_the_parser_takes_every_option() -> None:
    args = _parser().parse_args(
        [
            "sip:+15550001111@127.0.0.1:5060", "--calls", "200", "--duration", "2.5",
            "--ramp", "50", "--dialect", "sip", "--codec", "PCMA", "--json", "r.json",
            "--html", "r.html", "--find-capacity", "--start", "10", "--step", "5",
            "--max-calls", "40", "--step-seconds", "3", "--max-cpu", "80", "--max-added-ms", "4",
            "--node-pid", "123", "--dtmf-every", "2", "--no-progress",
        ]
    )  # fmt: skip
    assert (args.calls, args.duration, args.ramp, args.codec) == (200, 2.5, 50.0, "PCMA")
    assert (args.json, args.html) == (Path("r.json"), Path("r.html"))
    assert (args.start, args.step, args.max_calls, args.step_seconds) == (10, 5, 40, 3.0)
    assert (args.max_cpu, args.max_added_ms, args.node_pid, args.dtmf_every) == (80, 4, 123, 2)
    assert args.find_capacity and args.no_progress


@pytest.mark.parametrize(
    "option",
    [
        ["--calls", "0"], ["--calls", "-3"], ["--calls", "ten"], ["--calls", "2.5"],
        ["--duration", "0"], ["--duration", "-1"], ["--duration", "inf"], ["--duration", "nan"],
        ["--ramp", "0"], ["--late-ms", "-5"], ["--node-pid", "0"], ["--step-seconds", "0"],
        ["--max-p99-ms", "nan"], ["--dialect", "plivo"], ["--codec", "opus"],
    ],
)  # fmt: skip
def test_the_parser_rejects_bad_values(
    option: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exited:
        _parser().parse_args(["ws://127.0.0.1/v1/streams/twilio", *option])
    assert exited.value.code == 2
    assert option[0] in capsys.readouterr().err


@pytest.mark.parametrize("value", ["nan", "-0.5"])
def test_the_parser_rejects_a_loss_limit_that_is_not_a_ratio(
    value: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """--max-loss is a plain float: NaN turns the loss threshold off without a word
    (``loss > nan`` is never true) and a negative one fails every step."""
    code: str | int | None = "accepted"
    try:
        _parser().parse_args(["ws://127.0.0.1/v1/streams/twilio", "--max-loss", value])
    except SystemExit as exited:
        code = exited.code
    assert code == 2, f"BUG: --max-loss {value} was accepted: a loss ratio must be in [0, 1]"
    assert "--max-loss" in capsys.readouterr().err


def test_a_bad_number_is_told_plainly(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        _parser().parse_args(["ws://127.0.0.1/v1/streams/twilio", "--calls", "0"])
    assert "must be above 0, not 0" in capsys.readouterr().err


def test_the_target_is_required(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        _parser().parse_args(["--calls", "3"])
    assert exited.value.code == 2
    assert "TARGET" in capsys.readouterr().err


# --- the summary and the files ----------------------------------------------------------------


def _result(**changes: Any) -> dict[str, Any]:
    result: dict[str, Any] = {
        "calls": 12, "calls_answered": 11, "calls_failed": 1, "calls_dropped": 0,
        "failures": {"busy": 1}, "p50": 1.8, "p99": 4.2, "latency_ms": {"samples": 240},
        "frames": {"expected": 6000, "lost": 3, "late": 2},
        "jitter_ms": {"mean": 0.4}, "gaps": {"count": 1},
        "dtmf": {"sent": 10, "detected": 9},
        "node": {"cpu_percent": {"mean": 35.5, "max": 60.0}},
        "capacity": None, "generator": {"cpu_percent": 12.0, "late_ticks": 0},
    }  # fmt: skip
    return result | changes


def test_summary_text_says_the_runs_figures() -> None:
    lines = summary_text(_result()).splitlines()
    assert lines == [
        "calls      12 placed, 11 answered, 1 failed, 0 dropped {'busy': 1}",
        "latency    p50 1.8 ms, p99 4.2 ms (round trip, 240 markers)",
        "frames     6000 expected, 3 lost, 2 late",
        "jitter     mean 0.4 ms, gaps 1",
        "dtmf       9 of 10 keys heard back",
        "node cpu   mean 35.5 %, max 60.0 % of a core",
        "generator  12.0 % of a core (the load tester)",
    ]


def test_summary_text_with_a_capacity_search_and_a_late_generator() -> None:
    text = summary_text(
        _result(
            failures={},
            capacity={
                "knee_calls": 150,
                "broke_on": "p99",
                "steps": [{"target_calls": 150}, {"target_calls": 200}],
            },
            generator={"cpu_percent": 97.0, "late_ticks": 31},
        )
    )
    assert text.splitlines()[0].endswith("0 dropped")
    assert "capacity   Knee at 150 calls: at 200, p99 broke." in text
    assert "generator  31 ticks late: the load tester was short of CPU" in text


def test_write_outputs_writes_the_json_and_the_html(tmp_path: Path) -> None:
    result: dict[str, Any] = {}

    async def scenario() -> None:
        session = LoadSession(_never_dials, NodeWatch())
        session.probes = [CallProbe(0), CallProbe(1)]
        session.probes[0].figures.latencies_ms = [1.5, 2.5, 3.5]
        session.probes[1].failed("busy", 0.0)
        await session.snapshot()
        result.update(
            finite(
                build_result(
                    session,
                    settings={"calls": 2},
                    target="ws://127.0.0.1/v1/streams/twilio",
                    dialect="twilio",
                    bot="node",
                    started_wall=0.0,
                    bridge_metrics=None,
                )
            )
        )
        await session.stop()

    run(scenario())
    json_path, html_path = tmp_path / "out" / "r.json", tmp_path / "r.html"
    json_path.parent.mkdir()
    write_outputs(result, json_path, html_path)
    written = json.loads(json_path.read_text())
    assert written["calls"] == 2 and written["p50"] == 2.5 and written["failures"] == {"busy": 1}
    html = html_path.read_text()
    assert html.lstrip().lower().startswith("<!doctype html") and "</html>" in html
    only_json = tmp_path / "only.json"
    write_outputs(result, only_json, None)
    assert only_json.exists() and not (tmp_path / "only.html").exists()


async def _never_dials(probe: CallProbe) -> None:
    await asyncio.sleep(0)
