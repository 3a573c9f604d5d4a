"""What one bot can make its call hold is bounded: queued audio, marks, mark names, transcripts.

An overflow is an ``error`` to that bot; the offending message is ignored and the call goes on.
"""

from __future__ import annotations

import logging

import pytest
from test_call import Driver

from voxgate.bridge.call_api import CallPolicy, CallState, ToBot, ToCarrier
from voxgate.bridge.events import (
    AudioSent,
    DtmfSendRequested,
    ErrorReported,
    MarkPlayed,
    MarkRequested,
    TranscriptReceived,
)


def _errors(driver: Driver) -> list[str]:
    return [e.code for e in driver.sent_to(ToBot) if isinstance(e, ErrorReported)]


def _full(driver: Driver) -> bool:
    return driver.call.full


def _frames(driver: Driver) -> int:
    return sum(isinstance(e, AudioSent) for e in driver.sent_to(ToCarrier))


def test_audio_over_max_queued_audio_is_refused_and_the_call_goes_on() -> None:
    driver = Driver(CallPolicy(max_queued_audio=1.0, carrier_marks=False))
    driver.connect()
    driver.bot(AudioSent(b"\x01" * 6400))  # 0.8 s
    driver.bot(AudioSent(b"\x02" * 4000))  # 0.5 s more: over the bound
    assert _errors(driver) == ["queue_full"]
    driver.bot(AudioSent(b"\x03" * 1600))  # 0.2 s: fits
    driver.run(5.0)
    assert _frames(driver) == 50
    assert driver.state() is CallState.ACTIVE
    assert driver.call.summary(driver.now)["refused"] == 1


def test_dtmf_over_the_bound_is_refused_like_audio() -> None:
    driver = Driver(CallPolicy(max_queued_audio=0.5))
    driver.connect()
    driver.bot(AudioSent(b"\x01" * 3200))  # 0.4 s
    driver.bot(DtmfSendRequested("1"))  # 100 ms of tone and a 60 ms gap
    assert _errors(driver) == ["queue_full"]
    assert driver.call.stats.dtmf_out == 0


def test_full_holds_only_while_the_next_message_might_not_fit() -> None:
    driver = Driver(CallPolicy(max_queued_audio=60.0, carrier_marks=False))
    driver.connect()
    assert not _full(driver)
    driver.bot(AudioSent(b"\x01" * 8000 * 30))  # 30 s; a message may carry 32.8 s of pcmu
    assert _full(driver)
    driver.run(4.0)  # played out in real time
    assert not _full(driver)
    tiny = Driver(CallPolicy(max_queued_audio=1.0))
    tiny.connect()
    assert not _full(tiny)  # never for an empty queue, whatever the bound


def test_marks_over_max_marks_are_refused() -> None:
    driver = Driver(CallPolicy(max_marks=3, carrier_marks=False))
    driver.connect()
    driver.bot(AudioSent(b"\x01" * 1600))
    for name in "abcd":
        driver.bot(MarkRequested(name))
    assert _errors(driver) == ["queue_full"]
    driver.run(1.0)
    played = [e.name for e in driver.sent_to(ToBot) if isinstance(e, MarkPlayed)]
    assert played == ["a", "b", "c"]
    driver.bot(MarkRequested("e"))  # room again
    driver.run(2.0)
    assert [e.name for e in driver.sent_to(ToBot) if isinstance(e, MarkPlayed)][-1] == "e"


def test_a_mark_name_over_max_mark_name_bytes_is_refused() -> None:
    driver = Driver(CallPolicy(max_mark_name=8, carrier_marks=False))
    driver.connect()
    driver.bot(MarkRequested("\u00e9" * 4))  # 8 bytes of UTF-8: fits
    driver.bot(MarkRequested("\u00e9" * 5))  # 5 characters, 10 bytes: refused
    assert _errors(driver) == ["missing_field"]
    played = [e.name for e in driver.sent_to(ToBot) if isinstance(e, MarkPlayed)]
    assert played == ["\u00e9" * 4]


@pytest.mark.parametrize("name", ["\x00voxgate-hangup", "\x00hangup", "\x00transfer"])
def test_a_bot_cannot_name_an_internal_mark(name: str) -> None:
    driver = Driver(CallPolicy(carrier_rest=True, carrier_marks=False))
    driver.connect()
    driver.bot(MarkRequested(name))
    driver.run(1.0)
    assert driver.sent_to(ToBot)[-1] == MarkPlayed(name)
    assert driver.state() is CallState.ACTIVE


def test_transcripts_over_the_byte_budget_are_dropped_and_reported_once() -> None:
    driver = Driver(CallPolicy(max_transcript_bytes=10))
    driver.connect()
    for text in ("hello", "w\u00f6rl", "again", "more"):  # 5, 5, then over
        driver.bot(TranscriptReceived("caller", text))
    assert [t.text for t in driver.call.transcripts] == ["hello", "w\u00f6rl"]
    assert _errors(driver) == ["queue_full"]
    assert driver.call.summary(driver.now)["transcripts_dropped"] == 2
    assert driver.state() is CallState.ACTIVE


def test_transcripts_never_reach_the_log_with_their_words(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG, logger="voxgate")
    driver = Driver()
    driver.connect()
    driver.bot(TranscriptReceived("caller", "my card number is 4111"))
    assert "4111" not in caplog.text
    assert all(r.levelno < logging.INFO for r in caplog.records if "transcript" in r.message)


def test_refusals_count_towards_max_bot_errors() -> None:
    driver = Driver(CallPolicy(max_marks=1, max_bot_errors=3))
    driver.connect()
    driver.bot(AudioSent(b"\x01" * 1600))
    for n in range(5):
        driver.bot(MarkRequested(f"m{n}"))
    assert driver.call.end_reason == "bot_error"
