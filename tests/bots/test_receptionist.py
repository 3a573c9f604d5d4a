"""The receptionist bot end to end: the menu, barge-in, transfers, no input, business hours.

Each test runs the real pieces over loopback in one event loop: the bot served by the SDK
(``serve_bot``), voxgate (``running_bridge``) with the carriers' REST APIs played by the
stand-in, and a Twilio media stream (Telnyx or Plivo where a test says so) played by the
carrier emulator. The emulator plays voxgate's audio out in real time, while the caller's
line sends 20 ms frames of silence, or of speech (a prompt WAV), as a carrier does. What
the caller hears is checked byte for byte against the prompt WAVs. A barge-in is the
carrier getting voxgate's ``clear``, timed from just before the key or the first frame of
speech left the emulator to the clear's arrival there. The content of a voicemail is
checked in test_receptionist_voicemail.py.
"""

from __future__ import annotations

import argparse
import json
import logging
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from receptionist_call import (
    BARGE_IN_S,
    FRAME,
    NO_INPUT,
    PCMU,
    RATE,
    TIMEOUT,
    call,
    framed,
    frames_since,
    heard_since,
    over,
    played,
    press,
    prompt,
    seconds,
    speech,
    talk_over,
    until,
)
from scenario import run

from voxgate.bots import receptionist
from voxgate.bots.receptionist.hours import parse_hours
from voxgate.bots.receptionist.ivr import BEEP_HZ, BEEP_MS
from voxgate.bots.receptionist.options import Settings
from voxgate.bots.sdk import to_format, tone
from voxgate.bots.sdk.runner import parse_options


@pytest.fixture(autouse=True)
def _logs(caplog: pytest.LogCaptureFixture) -> Any:
    caplog.set_level(logging.INFO)
    yield
    assert [r.getMessage() for r in caplog.records if r.exc_info] == []


# --- the tests -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("key", "department", "target"),
    [("1", "sales", "+15557770001"), ("2", "support", "sips:support@pbx.example.com")],
)
def test_a_key_stops_the_greeting_at_once_and_transfers_after_telling_the_caller(
    key: str, department: str, target: str, caplog: pytest.LogCaptureFixture
) -> None:
    async def scenario() -> None:
        async with call(**{department: target}) as (stream, line, rest):
            await stream.wait_for_audio(10 * FRAME)
            assert await press(stream, key) <= BARGE_IN_S
            assert prompt("greeting").startswith(heard_since(stream, 0))
            told = prompt(f"transfer_{department}")
            await until(lambda: len(heard_since(stream, 1)) >= 10 * FRAME)
            await stream.send_dtmf("3")  # ignored: the transfer is under way
            await until(lambda: bool(rest.accepted("transfer")), seconds(told) + TIMEOUT)
            assert heard_since(stream, 1) == framed(told)  # before the call moved
            (request,) = rest.accepted("transfer")
            assert (request.call_id, request.target) == (stream.call_id, target)
            assert len(stream.clears) == 1
            await line.hang_up()  # the carrier ends the stream once the call moved
            await until(over(caplog, "transferred"))

    run(scenario())


def test_an_invalid_key_then_pound_replay_the_menu_and_zero_reaches_the_operator(
    caplog: pytest.LogCaptureFixture,
) -> None:
    operator = "sip:operator@pbx.example.com"

    async def scenario() -> None:
        async with call(operator=operator) as (stream, line, rest):
            await stream.wait_for_audio(10 * FRAME)
            assert await press(stream, "9") <= BARGE_IN_S
            await until(lambda: len(heard_since(stream, 1)) >= 25 * FRAME)
            assert await press(stream, "#") <= BARGE_IN_S
            assert prompt("invalid").startswith(heard_since(stream, 1))
            await until(lambda: len(heard_since(stream, 2)) >= 25 * FRAME)
            assert await press(stream, "0") <= BARGE_IN_S
            assert prompt("menu").startswith(heard_since(stream, 2))
            told = prompt("transfer_operator")
            await until(lambda: bool(rest.accepted("transfer")), seconds(told) + TIMEOUT)
            assert heard_since(stream, 3) == framed(told)
            (request,) = rest.accepted("transfer")
            assert request.target == operator
            await line.hang_up()
            await until(over(caplog, "transferred"))

    run(scenario())


def test_when_the_carrier_cannot_transfer_the_caller_can_leave_a_message(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Plivo moves a call only by fetching XML from a URL voxgate does not serve."""

    async def scenario() -> None:
        async with call("plivo") as (stream, line, rest):
            await stream.wait_for_audio(10 * FRAME)
            assert await press(stream, "1") <= BARGE_IN_S
            told = framed(prompt("transfer_sales"))  # played out: then voxgate tried
            await until(lambda: len(heard_since(stream, 1)) > len(told), seconds(told) + TIMEOUT)
            assert (told + prompt("voicemail")).startswith(heard_since(stream, 1))
            await line.hang_up()
            await until(over(caplog, "caller_hangup"))
            assert rest.accepted("transfer") == []
            assert any("the transfer failed" in r.getMessage() for r in caplog.records)

    run(scenario())


def test_speech_stops_a_prompt_at_once_and_two_silences_end_the_call(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async def scenario() -> None:
        async with call() as (stream, line, rest):
            await stream.wait_for_audio(10 * FRAME)
            assert await talk_over(stream, line, speech("menu", 0.3)) <= BARGE_IN_S
            assert prompt("greeting").startswith(heard_since(stream, 0))
            # No key (speech is not one): "no_input" and the menu, --no-input s later.
            await until(lambda: len(heard_since(stream, 1)) >= 10 * FRAME, NO_INPUT + TIMEOUT)
            waited = frames_since(stream, 1)[0].arrival - stream.clears[0]
            assert NO_INPUT <= waited <= NO_INPUT + 0.5
            assert (prompt("no_input") + prompt("menu")).startswith(heard_since(stream, 1))
            assert await talk_over(stream, line, speech("greeting", 0.3)) <= BARGE_IN_S
            # No key again: goodbye, heard to its end, then the call ends.
            goodbye = prompt("goodbye")
            await until(lambda: len(heard_since(stream, 2)) >= 10 * FRAME, NO_INPUT + TIMEOUT)
            waited = frames_since(stream, 2)[0].arrival - stream.clears[1]
            assert NO_INPUT <= waited <= NO_INPUT + 0.5
            await stream.send_dtmf("1")  # ignored: the goodbye plays on
            await stream.wait_for_close(seconds(goodbye) + TIMEOUT)
            assert heard_since(stream, 2) == framed(goodbye)
            assert len(stream.clears) == 2
            await until(lambda: bool(rest.accepted("hangup")))
            assert rest.accepted("transfer") == []
            await until(over(caplog, "bot_hangup"))

    run(scenario())


def test_the_no_input_timer_starts_once_the_menu_has_played(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async def scenario() -> None:
        async with call() as (stream, line, rest):
            offered = prompt("greeting") + prompt("menu")
            await stream.wait_for_audio(len(offered) + FRAME, seconds(offered) + TIMEOUT)
            assert stream.clears == []
            frames = stream.media
            received = np.cumsum([len(frame.payload) for frame in frames])
            last = int(np.searchsorted(received, len(offered)))  # the menu's last frame
            waited = frames[last + 1].arrival - frames[last].arrival
            assert NO_INPUT <= waited <= NO_INPUT + 0.5
            assert (offered + prompt("no_input")).startswith(stream.received_audio())
            await line.hang_up()  # in the middle of "no_input": the bot ends cleanly
            await until(over(caplog, "caller_hangup"))
            assert rest.requests == []

    run(scenario())


def test_after_hours_the_caller_can_leave_a_message_kept_even_if_they_hang_up(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async def scenario() -> None:
        async with call(hours=parse_hours("never"), voicemail_dir=Path("messages")) as (
            stream,
            line,
            _,
        ):
            intro = prompt("after_hours") + to_format(tone(BEEP_HZ, BEEP_MS, RATE), RATE, PCMU)
            await played(stream, len(intro))
            assert stream.received_audio() == framed(intro)  # and a beep
            said = speech("greeting", 1.0)
            await line.say(said)
            await line.said()
            await line.hang_up()
            await until(over(caplog, "caller_hangup"))
        (path,) = Path("messages").glob("*.json")
        record = json.loads(path.read_text())
        assert record["ended_by"] == "hangup"
        assert abs(record["duration_s"] - seconds(said)) <= 0.3

    run(scenario())


# --- the options -----------------------------------------------------------------------------


def test_options_have_defaults_and_environment_variables() -> None:
    options = parse_options(
        "receptionist",
        receptionist,
        ["--support", "sip:help@pbx.example.com", "--no-input", "2.5"],
        {"RECEPTIONIST_BOT_SALES": "+442071234567", "RECEPTIONIST_BOT_SUPPORT": "+15550000000"},
    )
    assert options.sales == "+442071234567"
    assert options.support == "sip:help@pbx.example.com"  # the option wins
    assert options.operator == "+15550100000"
    assert options.no_input == 2.5
    assert (options.max_message, options.silence) == (60.0, 2.0)
    assert options.voicemail_dir == Path("voicemail")
    assert str(options.hours) == "always"
    assert str(options.timezone) == "UTC"


@pytest.mark.parametrize(
    ("argv", "complaint"),
    [
        (["--sales", "5550100"], "+E.164"),
        (["--operator", "+0123"], "+E.164"),
        (["--support", "http://example.com"], "sip:"),
        (["--no-input", "0"], "seconds"),
        (["--max-message", "nan"], "seconds"),
        (["--silence", "soon"], "seconds"),
    ],
)
def test_bad_options_are_refused_when_the_bot_starts(
    argv: list[str], complaint: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exit_:
        parse_options("receptionist", receptionist, argv, {})
    assert exit_.value.code == 2
    assert complaint in capsys.readouterr().err


def test_a_bad_environment_variable_is_named() -> None:
    with pytest.raises(ValueError, match="RECEPTIONIST_BOT_OPERATOR"):
        parse_options("receptionist", receptionist, [], {"RECEPTIONIST_BOT_OPERATOR": "0"})


def test_settings_take_the_defaults_of_options_not_given() -> None:
    """``serve_bot(receptionist.handle)`` without options serves calls all the same."""
    settings = Settings.of(argparse.Namespace(sales="+15550009999"))
    assert (settings.sales, settings.operator) == ("+15550009999", "+15550100000")
    assert (settings.no_input, settings.voicemail_dir) == (8.0, Path("voicemail"))
    assert settings.hours.is_open(datetime(2025, 1, 5, 3, 0))


def test_the_help_explains_every_option(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        parse_options("receptionist", receptionist, ["--help"], {})
    assert exit_.value.code == 0
    text = " ".join(capsys.readouterr().out.split())
    assert text.split("options:")[0].endswith("transfers callers or takes a message. ")
    for option in ("sales", "support", "operator", "voicemail-dir", "hours", "timezone"):
        assert f"--{option}" in text
    for option in ("no-input", "max-message", "silence"):
        assert f"RECEPTIONIST_BOT_{option.replace('-', '_').upper()}" in text
    assert "mon-fri 09:00-12:00,13:00-17:00; sat 10:00-14:00" in text
