"""How a call ends: reasons from a fixed set, the bot's own words kept out of them, and the
one summary line; and the caller's timestamps towards the bot."""

from __future__ import annotations

import logging

import pytest
from test_call import Driver

from voxgate.bridge.call_api import STOP_REASONS, CallEnded, CallPolicy, CloseCarrier, ToBot
from voxgate.bridge.events import (
    AudioSent,
    ClearRequested,
    DtmfReceived,
    HangupRequested,
    MarkRequested,
    MediaReceived,
    StreamStopped,
)
from voxgate.bridge.stamps import CLOCK_SLACK_MS
from voxgate.errors import ProtocolError

FORGED = 'bye\nvoxgate_calls_ended_total{reason="x"} 1e9\n' + "z" * 500


def test_stop_after_a_bot_hangup_says_bot_hangup_whatever_the_bot_wrote() -> None:
    driver = Driver(CallPolicy(hangup_after_playout=False))
    driver.connect()
    out = driver.bot(HangupRequested(FORGED))
    assert driver.sent_to(ToBot, out) == [StreamStopped("bot_hangup")]
    assert CallEnded("bot_hangup") in out
    assert CloseCarrier(1000, "bot_hangup") in out
    detail = driver.call.summary(driver.now)["bot_hangup_text"]
    assert isinstance(detail, str)
    assert "\n" not in detail
    assert len(detail) <= 200
    assert detail.startswith("bye voxgate_calls_ended_total")


def _end_with_carrier_garbage(driver: Driver) -> None:
    driver.call.carrier_protocol_error(ProtocolError("x", "y", fatal=True), driver.now)


@pytest.mark.parametrize(
    ("how", "reason"),
    [
        (lambda d: d.carrier(StreamStopped("the carrier's own words")), "caller_hangup"),
        (lambda d: d.call.carrier_closed(d.now), "caller_hangup"),
        (lambda d: d.bot(HangupRequested("anything")), "bot_hangup"),
        (lambda d: d.drop("closed", code=1000), "bot_hangup"),
        (lambda d: d.drop("closed", code=1008), "bot_error"),
        (lambda d: d.call.shutdown(d.now), "shutdown"),
        (lambda d: d.call.fail(d.now), "internal_error"),
        (_end_with_carrier_garbage, "carrier_error"),
    ],
)
def test_every_way_to_end_gives_a_reason_from_the_fixed_set(how: object, reason: str) -> None:
    driver = Driver(CallPolicy(hangup_after_playout=False))
    driver.connect()
    how(driver)  # type: ignore[operator]
    driver.collect()
    driver.run(20.0)
    (ended,) = driver.of(CallEnded)
    assert isinstance(ended, CallEnded)
    assert ended.reason == reason
    assert ended.reason in STOP_REASONS
    stops = [e for e in driver.sent_to(ToBot) if isinstance(e, StreamStopped)]
    assert all(stop.reason in STOP_REASONS for stop in stops)


def test_the_summary_counts_the_call_and_is_logged_once(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="voxgate.call")
    driver = Driver(CallPolicy(carrier_marks=False))
    driver.connect()
    for chunk in (1, 3, 2, 5):  # 3 before 2, 4 lost
        driver.carrier(MediaReceived(b"\xff" * 160, chunk=chunk))
    driver.run(0.2)
    driver.carrier(DtmfReceived("5"))
    driver.bot(AudioSent(b"\x01" * 1600))
    driver.bot(MarkRequested("m"))
    driver.run(0.3)
    driver.bot(AudioSent(b"\x01" * 1600))
    driver.bot(ClearRequested())
    driver.drop()
    driver.run(0.5)
    driver.connect()
    driver.now = 2.0
    out = driver.carrier(StreamStopped())
    ended = out[-1]
    assert isinstance(ended, CallEnded)
    summary = dict(ended.summary)
    assert summary == {
        "duration_s": 2.0,
        "reason": "caller_hangup",
        "ended_by": "caller",
        "frames_in": 4,
        "frames_to_bot": 4,
        "frames_out": summary["frames_out"],
        "frames_late": 0,
        "frames_padded": summary["frames_padded"],
        "frames_cleared": summary["frames_cleared"],
        "frames_dropped_disconnected": 0,
        "reorder_lost": 1,
        "reorder_reordered": 2,  # frames held for a gap: 3, then 5
        "reorder_resyncs": 0,
        "marks": 1,
        "dtmf_in": 1,
        "dtmf_out": 0,
        "bot_connects": 2,
        "reconnects": 1,
        "protocol_errors": 0,
        "refused": 0,
        "transcripts_dropped": 0,
    }
    assert isinstance(summary["frames_out"], int) and 1 <= summary["frames_out"] <= 10
    assert isinstance(summary["frames_cleared"], int) and summary["frames_cleared"] > 0
    lines = [r for r in caplog.records if r.getMessage().startswith("call ended")]
    assert len(lines) == 1
    assert lines[0].levelno == logging.INFO
    assert lines[0].call_id == "vx-1"  # type: ignore[attr-defined]
    assert lines[0].summary == summary  # type: ignore[attr-defined]
    assert driver.call.summary(9.0) == summary  # frozen at the end


# --- timestamps towards the bot ---------------------------------------------------------

# (wall time in s, carrier timestamp_ms) -> timestamp_ms sent to the bot
CLOCK_VECTORS = [
    (0.00, 0, 0),
    (0.02, 20, 20),
    (0.04, 10**30, 40),  # absurd: stamped right after the previous frame
    (0.06, 10**30 + 20, 60),  # ... and the carrier's clock followed from there
    (0.08, 40, 80),  # the counter went back
    (0.10, 60, 100),
    (0.12, None, 120),  # no timestamp: continues
    (0.14, 100, 140),
    (0.16, 100 + 10**9, 160),  # a jump far beyond the wall clock
    (0.18, 120 + 10**9, 180),
    (1.20, 1140 + 10**9, 1200),  # a real gap of a second shows
    (1.22, 1140 + 10**9, 1200),  # a repeated timestamp stays (never decreases)
]


def _stamps(vectors: list[tuple[float, int | None, int]]) -> list[int | None]:
    driver = Driver()
    driver.connect()
    for when, carrier_ms, _ in vectors:
        driver.now = when
        driver.carrier(MediaReceived(b"\xff" * 160, timestamp_ms=carrier_ms))
    return [e.timestamp_ms for e in driver.sent_to(ToBot) if isinstance(e, MediaReceived)]


def test_timestamps_to_the_bot_never_decrease_and_stay_sane() -> None:
    assert _stamps(CLOCK_VECTORS) == [expected for _, _, expected in CLOCK_VECTORS]


def test_an_absurd_first_timestamp_starts_the_clock_at_zero() -> None:
    assert _stamps([(0.0, 10**30, 0), (0.02, 10**30 + 20, 20)]) == [0, 20]
    assert _stamps([(0.0, -5, 0), (0.02, 15, 20)]) == [0, 20]


def test_the_carrier_clock_may_run_ahead_only_by_the_slack() -> None:
    most = 20 + CLOCK_SLACK_MS  # 20 ms of wall time, and the slack
    assert _stamps([(0.0, 0, 0), (0.02, most, most)]) == [0, most]
    assert _stamps([(0.0, 0, 0), (0.02, most + 1, 20)]) == [0, 20]


def test_without_a_carrier_clock_the_dialect_counts_samples() -> None:
    assert _stamps([(0.0, None, 0), (0.02, None, 0)]) == [None, None]
