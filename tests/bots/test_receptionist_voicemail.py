"""The receptionist's voicemail: a message recorded end to end, and the files it makes.

The end-to-end tests reuse test_receptionist.py's set-up (a bridge, the bot, a Twilio
stream with the caller's line sending 20 ms frames of silence or speech): the caller
presses 3 during the greeting, hears the voicemail prompt and the beep, and talks. The
message on disk is compared with what the carrier sent, decoded by CPython's audioop (the
mu-law oracle). The message files themselves are also checked without a call.
"""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import pytest
import soundfile
from receptionist_call import (
    FRAME,
    PCMU,
    RATE,
    TIMEOUT,
    call,
    framed,
    heard_since,
    over,
    played,
    press,
    prompt,
    seconds,
    speech,
    until,
)
from scenario import run

from voxgate.bots.receptionist.ivr import BEEP_HZ, BEEP_MS
from voxgate.bots.receptionist.voicemail import CALL_ID_CHARS, Recording, save_message
from voxgate.bots.sdk import Start, to_format, tone

SILENCE_S = 2.0  # --silence, the default
LEVEL_DB = 1.5
DURATION_S = 0.3


@pytest.fixture(autouse=True)
def _logs(caplog: pytest.LogCaptureFixture) -> Any:
    caplog.set_level(logging.INFO)
    yield
    assert [r.getMessage() for r in caplog.records if r.exc_info] == []


def beep() -> bytes:
    return to_format(tone(BEEP_HZ, BEEP_MS, RATE), RATE, PCMU)


def rms_db(samples: np.ndarray[Any, Any]) -> float:
    return float(10 * np.log10(np.mean(samples.astype(np.float64) ** 2)))


def message_files(directory: Path) -> tuple[dict[str, Any], np.ndarray[Any, Any], Any]:
    """The one message in ``directory``: its JSON record, its samples, its WAV's info."""
    (record_path,) = directory.glob("*.json")
    record = json.loads(record_path.read_text())
    wav = directory / record["wav"]
    assert sorted(p.name for p in directory.iterdir()) == sorted([record_path.name, wav.name])
    samples, _ = soundfile.read(str(wav), dtype="int16")
    return record, samples, soundfile.info(str(wav))


# --- end to end ------------------------------------------------------------------------------


def test_a_message_ends_after_the_silence_and_keeps_the_callers_voice(
    audioop: ModuleType, caplog: pytest.LogCaptureFixture
) -> None:
    said = speech("greeting", 1.5)
    began = datetime.now(UTC)

    async def scenario() -> None:
        async with call("telnyx") as (stream, line, _):  # Telnyx tells the numbers
            # --voicemail-dir: ./voicemail by default
            await stream.wait_for_audio(10 * FRAME)
            await press(stream, "3")
            intro = prompt("voicemail") + beep()
            await played(stream, len(intro))
            await line.say(said)  # then silence, as the line sends when nobody talks
            await until(lambda: any(Path("voicemail").glob("*.json")), SILENCE_S + TIMEOUT)
            goodbye = framed(intro) + prompt("saved")
            await stream.wait_for_close(seconds(goodbye) + TIMEOUT)
            assert heard_since(stream, 1) == framed(goodbye)
            await until(over(caplog, "bot_hangup"))

    run(scenario())
    record, samples, info = message_files(Path("voicemail"))
    assert (info.subtype, info.samplerate, info.channels) == ("PCM_16", RATE, 1)
    # What was said, then the silence that ended it.
    assert abs(len(samples) / RATE - (seconds(said) + SILENCE_S)) <= DURATION_S
    assert record["duration_s"] == pytest.approx(len(samples) / RATE, abs=0.001)
    assert record["ended_by"] == "silence"
    sent = np.frombuffer(audioop.ulaw2lin(said, 2), dtype="<i2")
    start = int(np.flatnonzero(samples)[0])  # the line was digital silence before the speech
    assert start < 0.1 * RATE  # the message starts when the caller does
    assert abs(rms_db(samples[start : start + len(sent)]) - rms_db(sent)) <= LEVEL_DB
    assert not samples[start + len(sent) :].any()  # the silence after it
    call_ids = {r.call_id for r in caplog.records if hasattr(r, "call_id")}
    assert [record["call_id"]] == list(call_ids)
    assert (record["from"], record["to"]) == ("+15550001111", "+15550002222")
    started_at = datetime.fromisoformat(record["started_at"])
    assert started_at.utcoffset() == timedelta(0)
    assert began < started_at < datetime.now(UTC)


def test_a_long_message_ends_at_the_maximum_length(
    audioop: ModuleType, caplog: pytest.LogCaptureFixture
) -> None:
    said = speech("menu", 5.0)

    async def scenario() -> None:
        async with call(max_message=3.0) as (stream, line, _):
            await stream.wait_for_audio(10 * FRAME)
            await press(stream, "3")
            await played(stream, len(prompt("voicemail") + beep()))
            await line.say(said)
            await until(lambda: any(Path("voicemail").glob("*.json")), 3.0 + TIMEOUT)
            await line.hang_up()
            await until(over(caplog, "caller_hangup"))

    run(scenario())
    record, samples, _ = message_files(Path("voicemail"))
    assert record["ended_by"] == "length"
    assert abs(len(samples) / RATE - 3.0) <= DURATION_S
    start = int(np.flatnonzero(samples)[0])
    assert start < 0.1 * RATE  # the caller spoke right after the beep, and on to the end
    sent = np.frombuffer(audioop.ulaw2lin(said, 2), dtype="<i2")[: len(samples) - start]
    assert abs(rms_db(samples[start:]) - rms_db(sent)) <= LEVEL_DB


def test_without_speech_nothing_is_kept_and_the_caller_hears_goodbye(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async def scenario() -> None:
        async with call() as (stream, _, rest):
            await stream.wait_for_audio(10 * FRAME)
            await press(stream, "3")
            goodbye = framed(prompt("voicemail") + beep()) + prompt("goodbye")
            await stream.wait_for_close(seconds(goodbye) + 1.0 + TIMEOUT)  # --no-input 1 s
            assert heard_since(stream, 1) == framed(goodbye)
            await until(lambda: bool(rest.accepted("hangup")))
            await until(over(caplog, "bot_hangup"))

    run(scenario())
    assert not Path("voicemail").exists()


# --- the files -------------------------------------------------------------------------------


def _start(call_id: str) -> Start:
    return Start(call_id, "stream-1", PCMU, "json", from_number="+15550001111", to_number=None)


def test_a_recording_keeps_at_most_its_maximum_length() -> None:
    recording = Recording(8000, max_seconds=0.05)  # 400 samples
    full = []
    for value in (7, 9, 11):
        recording.add(np.full(300, value, dtype=np.int16))
        full.append(recording.full)
    assert full == [False, True, True]
    assert recording.duration_s == 0.05
    assert recording.samples().tolist() == [7] * 300 + [9] * 100


def test_an_empty_recording_has_no_samples() -> None:
    recording = Recording(16000, max_seconds=1.0)
    assert recording.samples().dtype == np.int16
    assert (recording.duration_s, len(recording.samples())) == (0.0, 0)


def test_a_message_is_a_wav_at_the_calls_rate_and_a_json_record(tmp_path: Path) -> None:
    recording = Recording(16000, max_seconds=60.0)
    recording.speech_heard, recording.ended_by = True, "silence"
    voice = (np.sin(np.arange(16000) / 5) * 8000).astype(np.int16)
    recording.add(voice)
    directory = tmp_path / "new" / "messages"
    path = save_message(recording, directory, _start("vx-0123"))
    record, samples, info = message_files(directory)
    assert path.name == f"{recording.started_at:%Y%m%dT%H%M%SZ}-vx-0123.json"
    assert record == {
        "call_id": "vx-0123",
        "from": "+15550001111",
        "to": None,
        "started_at": recording.started_at.isoformat(timespec="milliseconds"),
        "duration_s": 1.0,
        "ended_by": "silence",
        "wav": path.with_suffix(".wav").name,
    }
    assert (info.samplerate, info.subtype) == (16000, "PCM_16")
    assert np.array_equal(samples, voice)


def test_a_file_name_never_takes_a_path_from_the_call_id(tmp_path: Path) -> None:
    recording = Recording(8000, max_seconds=1.0)
    path = save_message(recording, tmp_path, _start("../../etc/x y" + "z" * 200))
    assert path.parent == tmp_path
    kept = "______etc_x_y" + "z" * (CALL_ID_CHARS - 13)
    assert path.name.endswith(f"-{kept}.json")
    assert json.loads(path.read_text())["call_id"].startswith("../../etc/x y")
