"""The JSON result of a run, built from hand-made probes (their figures set directly)."""

from __future__ import annotations

import asyncio
import json
import math
import random
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
from scenario import run

from voxgate.loadtest.node import NodeWatch
from voxgate.loadtest.probe import CallProbe
from voxgate.loadtest.results import MAX_SAMPLES, build_result, finite
from voxgate.loadtest.runner import LoadSession


async def _no_dial(probe: CallProbe) -> None:
    await asyncio.sleep(0)


def _probe(index: int, status: str, failure: str | None = None, **figures: Any) -> CallProbe:
    probe = CallProbe(index)
    probe.figures.status, probe.figures.failure = status, failure
    for name, value in figures.items():
        setattr(probe.figures, name, value)
    return probe


def _result_of(probes: list[CallProbe]) -> dict[str, Any]:
    """build_result on a session holding ``probes`` (a session needs a running loop)."""
    built: dict[str, Any] = {}

    async def scenario() -> None:
        session = LoadSession(_no_dial, NodeWatch())
        session.probes = probes
        await session.snapshot()
        built.update(
            build_result(
                session,
                settings={"calls": len(probes)},
                target="ws://node/v1/streams/twilio",
                dialect="twilio",
                bot="embedded",
                started_wall=1.7e9,
                bridge_metrics=None,
            )
        )
        await session.stop()

    run(scenario())
    return built


def _run_of_five() -> list[CallProbe]:
    return [
        _probe(0, "completed", setup_ms=10.0, latencies_ms=[float(v) for v in range(1, 51)],
               frames_expected=1000, frames_lost=2, chunks_received=400, frames_sent=500),
        _probe(1, "dropped", "remote_hangup", setup_ms=30.0,
               latencies_ms=[float(v) for v in range(51, 101)], frames_expected=600,
               frames_lost=4, frames_late=3, chunks_received=300, frames_sent=310),
        _probe(2, "failed", "busy"),
        _probe(3, "failed", "busy"),
        _probe(4, "failed", "timeout"),
    ]  # fmt: skip


def test_calls_are_counted_by_outcome_and_failures_by_reason() -> None:
    result = _result_of(_run_of_five())
    assert (result["calls"], result["calls_answered"]) == (5, 2)
    assert (result["calls_failed"], result["calls_dropped"]) == (3, 1)
    assert result["failures"] == {"remote_hangup": 1, "busy": 2, "timeout": 1}
    assert result["setup_ms"] == {"min": 10.0, "p50": 20.0, "p90": 28.0, "p99": 29.8, "max": 30.0}
    assert (result["target"], result["dialect"], result["bot"]) == (
        "ws://node/v1/streams/twilio", "twilio", "embedded"
    )  # fmt: skip
    assert result["started_at"] == "2023-11-14T22:13:20Z"


def test_frames_and_latency_are_summed_over_the_calls() -> None:
    result = _result_of(_run_of_five())
    assert result["lost"] == 6
    assert result["frames"] == {
        "sent": 810, "expected": 1600, "received": 1594, "returned": 700, "lost": 6,
        "late": 3, "loss_ratio": 0.00375,
    }  # fmt: skip
    assert (result["p50"], result["p99"]) == (50.5, 99.01)
    assert result["latency_ms"] == {
        "min": 1.0, "p50": 50.5, "p90": 90.1, "p99": 99.01, "max": 100.0, "samples": 100
    }  # fmt: skip
    assert result["latency_samples_ms"] == [float(v) for v in range(1, 101)]


def test_per_call_lists_every_call() -> None:
    per_call = _result_of(_run_of_five())["per_call"]
    assert [call["index"] for call in per_call] == [0, 1, 2, 3, 4]
    assert per_call[1] | {"jitter_ms": 0.0} == per_call[1]
    first, failed = per_call[0], per_call[2]
    assert (first["status"], first["p50_ms"], first["p99_ms"]) == ("completed", 25.5, 49.51)
    assert (first["expected"], first["lost"], first["setup_ms"]) == (1000, 2, 10.0)
    assert (failed["status"], failed["failure"], failed["p50_ms"]) == ("failed", "busy", None)


def test_a_run_with_no_calls_has_no_figures() -> None:
    result = _result_of([])
    assert (result["calls"], result["p50"], result["p99"], result["lost"]) == (0, None, None, 0)
    assert result["frames"]["loss_ratio"] is None
    assert result["latency_samples_ms"] == [] and result["per_call"] == []
    assert result["jitter_histogram"]["counts"] == []


def test_the_cdf_keeps_at_most_max_samples_spread_evenly_and_sorted() -> None:
    values = [float(v) for v in range(3 * MAX_SAMPLES)]
    random.Random(11).shuffle(values)
    half = len(values) // 2
    probes = [
        _probe(0, "completed", setup_ms=1.0, latencies_ms=values[:half]),
        _probe(1, "completed", setup_ms=1.0, latencies_ms=values[half:]),
    ]
    samples = _result_of(probes)["latency_samples_ms"]
    assert len(samples) == MAX_SAMPLES
    assert samples == sorted(samples)
    assert (samples[0], samples[-1]) == (0.0, 3 * MAX_SAMPLES - 1.0)
    steps = np.diff(samples)
    assert steps.min() >= 2 and steps.max() <= 4  # about 3 apart: evenly spread


@pytest.mark.parametrize(
    ("value", "cleaned"),
    [
        (math.nan, None),
        (math.inf, None),
        (-math.inf, None),
        (1.5, 1.5),
        (3, 3),
        ("nan", "nan"),
        (None, None),
        ([1.0, math.nan, [math.inf, {"x": -math.inf}]], [1.0, None, [None, {"x": None}]]),
        ({"a": {"b": [math.nan, 2]}, "c": True}, {"a": {"b": [None, 2]}, "c": True}),
    ],
)
def test_finite_turns_every_nan_and_infinity_into_none(value: Any, cleaned: Any) -> None:
    assert finite(value) == cleaned


def test_a_result_with_nan_figures_is_valid_json_once_finite() -> None:
    probes = _run_of_five()
    probes[0].figures.jitter_ms = math.nan
    probes[0].figures.chunks_received = 2
    probes[1].figures.max_gap_ms = math.inf
    result = finite(_result_of(probes))
    text = json.dumps(result, allow_nan=False)
    assert json.loads(text) == result
    assert result["jitter_ms"]["mean"] is None and result["per_call"][0]["jitter_ms"] is None
    assert result["gaps"]["max_ms"] is None and result["per_call"][1]["max_gap_ms"] is None


def _walk(value: Any, visit: Callable[[Any], None]) -> None:
    visit(value)
    if isinstance(value, dict):
        for item in value.values():
            _walk(item, visit)
    elif isinstance(value, list):
        for item in value:
            _walk(item, visit)


def test_a_result_holds_nothing_json_cannot_carry() -> None:
    result = finite(_result_of(_run_of_five()))

    def plain(value: Any) -> None:
        assert value is None or isinstance(value, str | int | float | bool | dict | list), value

    _walk(result, plain)
