"""The relay's translator, by tables of vectors: call events to client events, and server
events to call actions, with the barge-in estimate on a clock the tests choose."""

from __future__ import annotations

import base64
import json
import logging
from typing import Any

import numpy as np
import pytest

from voxgate.bots.relay.realtime import (
    ClearAudio,
    Notice,
    Output,
    PlaceMark,
    PlayAudio,
    ToApi,
    Transcript,
    Translator,
    choose_audio,
    session_formats,
)
from voxgate.bots.sdk import Audio, Dtmf, Error, Event, Hold, Mark, Start, to_format, tone
from voxgate.codecs.formats import PCMA_8K, PCMU_8K, AudioFormat, Encoding, decode

PCM16_16K = AudioFormat(Encoding.PCM16, 16000)
PCM16_24K = AudioFormat(Encoding.PCM16, 24000)


def _start(**fields: Any) -> Start:
    return Start(
        call_id="call-1",
        stream_id="stream-1",
        media_format=fields.pop("media_format", PCMU_8K),
        audio_transport="json",
        **fields,
    )


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _server(kind: str, **fields: Any) -> str:
    return json.dumps({"type": kind, "event_id": "event_1", **fields})


def _delta(data: bytes, *, response: str = "resp_1", item: str = "item_1", ga: bool = False) -> str:
    kind = "response.output_audio.delta" if ga else "response.audio.delta"
    return _server(
        kind, response_id=response, item_id=item, output_index=0, content_index=0, delta=_b64(data)
    )


def _audio(data: bytes, fmt: AudioFormat = PCMU_8K) -> Audio:
    return Audio(data, 1, 0, fmt)


def _dominant_hz(samples: np.ndarray[Any, Any], rate: int) -> float:
    spectrum = np.abs(np.fft.rfft(samples.astype(np.float64)))
    return float(np.argmax(spectrum) * rate / len(samples))


# --- choosing the API's audio format -------------------------------------------------------

CHOICES = [
    ("auto", PCMU_8K, "g711_ulaw"),
    ("auto", PCMA_8K, "g711_alaw"),
    ("auto", PCM16_16K, "pcm16"),
    ("auto", PCM16_24K, "pcm16"),
    ("auto", AudioFormat(Encoding.PCMU, 16000), "pcm16"),
    ("auto", AudioFormat(Encoding.L16, 8000), "pcm16"),
    ("g711_ulaw", PCM16_16K, "g711_ulaw"),
    ("pcm16", PCMU_8K, "pcm16"),
]


@pytest.mark.parametrize(("choice", "call_format", "expected"), CHOICES)
def test_the_api_audio_format_follows_the_call(
    choice: str, call_format: AudioFormat, expected: str
) -> None:
    assert choose_audio(choice, call_format) == expected


def test_an_unknown_audio_choice_is_refused() -> None:
    with pytest.raises(ValueError, match="audio must be one of"):
        choose_audio("mp3", PCMU_8K)


# --- the call's start: session.update and the opening --------------------------------------

BETA_SESSION = {
    "type": "session.update",
    "session": {
        "modalities": ["audio", "text"],
        "instructions": "Sell shoes.",
        "voice": "alloy",
        "input_audio_format": "g711_ulaw",
        "output_audio_format": "g711_ulaw",
        "input_audio_transcription": {"model": "whisper-1"},
        "turn_detection": {"type": "server_vad"},
    },
}
GA_SESSION = {
    "type": "session.update",
    "session": {
        "type": "realtime",
        "output_modalities": ["audio"],
        "instructions": "Default instructions.",
        "audio": {
            "input": {
                "format": {"type": "audio/pcm", "rate": 24000},
                "transcription": {"model": "whisper-1"},
                "turn_detection": {"type": "server_vad"},
            },
            "output": {"format": {"type": "audio/pcm", "rate": 24000}, "voice": "verse"},
        },
    },
}
SAY_HELLO = {
    "type": "response.create",
    "response": {
        "instructions": "Say exactly the following to the caller, word for word, then stop: "
        "Hello, shoe shop!"
    },
}

STARTS = [
    # (dialect, voice, call format, start fields, expected outputs)
    ("beta", "alloy", PCMU_8K, {"system_prompt": "Sell shoes."}, [ToApi(BETA_SESSION)]),
    (
        "beta",
        "alloy",
        PCMU_8K,
        {"system_prompt": "Sell shoes.", "opening_text": "Hello, shoe shop!"},
        [ToApi(BETA_SESSION), ToApi(SAY_HELLO)],
    ),
    ("ga", "verse", PCM16_16K, {}, [ToApi(GA_SESSION)]),
]


@pytest.mark.parametrize(("dialect", "voice", "call_format", "fields", "expected"), STARTS)
def test_the_start_configures_the_session_and_says_the_opening(
    dialect: Any, voice: str, call_format: AudioFormat, fields: dict[str, Any], expected: Any
) -> None:
    translator = Translator(
        call_format=call_format,
        dialect=dialect,
        voice=voice,
        instructions="Default instructions.",
    )
    assert translator.on_start(_start(media_format=call_format, **fields)) == expected


# --- the call's events to client events -----------------------------------------------------

CODES = bytes(range(256))[:160]


def _append(data: bytes) -> ToApi:
    return ToApi({"type": "input_audio_buffer.append", "audio": _b64(data)}, audio=True)


CALL_EVENTS: list[tuple[str, list[Event], list[Output]]] = [
    ("20 ms of G.711 passes straight through", [_audio(CODES)], [_append(CODES)]),
    (
        "less than 20 ms waits for more",
        [_audio(CODES[:80]), _audio(CODES[80:])],
        [_append(CODES)],
    ),
    (
        "a key becomes a line of text and a response",
        [Dtmf("5")],
        [
            ToApi(
                {
                    "type": "conversation.item.create",
                    "item": {
                        "type": "message",
                        "role": "user",
                        "content": [{"type": "input_text", "text": "The caller pressed 5"}],
                    },
                }
            ),
            ToApi({"type": "response.create"}),
        ],
    ),
    ("hold is logged", [Hold(True)], [Notice(logging.INFO, "the caller is on hold")]),
    (
        "voxgate's errors are logged",
        [Error("queue_full", "too much")],
        [Notice(logging.WARNING, "voxgate reports queue_full: too much")],
    ),
    ("an unknown mark is ignored", [Mark("other")], []),
]


@pytest.mark.parametrize(
    ("events", "expected"), [case[1:] for case in CALL_EVENTS], ids=[c[0] for c in CALL_EVENTS]
)
def test_call_events_become_client_events(events: list[Event], expected: list[Output]) -> None:
    translator = Translator(call_format=PCMU_8K)
    outputs = [output for event in events for output in translator.on_call_event(event, 0.0)]
    assert outputs == expected


def test_caller_audio_is_resampled_to_24_khz_for_pcm16() -> None:
    translator = Translator(call_format=PCM16_16K)
    audio = to_format(tone(1000, 400, 16000), 16000, PCM16_16K)
    chunk = PCM16_16K.bytes_per(20)
    outputs = [
        output
        for offset in range(0, len(audio), chunk)
        for output in translator.on_call_event(_audio(audio[offset : offset + chunk], PCM16_16K), 0)
    ]
    assert all(isinstance(o, ToApi) and o.audio for o in outputs)
    sent = b"".join(base64.b64decode(o.event["audio"]) for o in outputs if isinstance(o, ToApi))
    assert len(outputs) >= 19  # every 20 ms chunk, give or take the resampler's first one
    assert abs(len(sent) - PCM16_24K.bytes_per(400)) <= PCM16_24K.bytes_per(20)
    assert _dominant_hz(decode(sent, PCM16_24K), 24000) == pytest.approx(1000, abs=10)
    assert translator.stats.caller_ms == pytest.approx(400)


# --- the API's events to call actions ------------------------------------------------------

PCMU_100MS = bytes([0x55]) * 800

API_EVENTS: list[tuple[str, list[str], list[Output]]] = [
    ("audio plays", [_delta(PCMU_100MS)], [PlayAudio(PCMU_100MS)]),
    ("GA audio plays", [_delta(PCMU_100MS, ga=True)], [PlayAudio(PCMU_100MS)]),
    (
        "a mark follows each item's audio",
        [
            _delta(PCMU_100MS),
            _server("response.audio.done", response_id="resp_1", item_id="item_1"),
        ],
        [PlayAudio(PCMU_100MS), PlaceMark("relay-1")],
    ),
    (
        "GA audio done marks too",
        [
            _delta(PCMU_100MS, ga=True),
            _server("response.output_audio.done", response_id="resp_1", item_id="item_1"),
        ],
        [PlayAudio(PCMU_100MS), PlaceMark("relay-1")],
    ),
    (
        "a response without audio.done is marked at response.done",
        [_delta(PCMU_100MS), _server("response.done", response={"id": "resp_1"})],
        [PlayAudio(PCMU_100MS), PlaceMark("relay-1")],
    ),
    (
        "another response's end does not mark an item still playing",
        [
            _delta(PCMU_100MS, response="resp_2", item="item_2"),
            _server("response.done", response={"id": "resp_1", "status": "cancelled"}),
        ],
        [PlayAudio(PCMU_100MS)],
    ),
    (
        "the model's transcript",
        [_server("response.audio_transcript.done", item_id="i", transcript=" Hi there. ")],
        [Transcript("bot", "Hi there.")],
    ),
    (
        "the model's transcript, GA",
        [_server("response.output_audio_transcript.done", item_id="i", transcript="Hi.")],
        [Transcript("bot", "Hi.")],
    ),
    (
        "the caller's transcript",
        [
            _server(
                "conversation.item.input_audio_transcription.completed",
                item_id="i",
                content_index=0,
                transcript="I need shoes.\n",
            )
        ],
        [Transcript("caller", "I need shoes.")],
    ),
    (
        "an empty transcript is no transcript",
        [_server("conversation.item.input_audio_transcription.completed", transcript=" ")],
        [],
    ),
    (
        "errors are logged",
        [
            _server(
                "error",
                error={"type": "invalid_request_error", "code": "bad_value", "message": "No."},
            )
        ],
        [Notice(logging.WARNING, "the API reports invalid_request_error (bad_value): No.")],
    ),
    (
        "an error without details",
        [_server("error")],
        [Notice(logging.WARNING, "the API reports error (-): (no message)")],
    ),
    (
        "the session as asked",
        [
            _server(
                "session.updated",
                session={"input_audio_format": "g711_ulaw", "output_audio_format": "g711_ulaw"},
            )
        ],
        [Notice(logging.INFO, "the model's session is ready (g711_ulaw audio)")],
    ),
    (
        "a session not as asked",
        [
            _server(
                "session.updated",
                session={"input_audio_format": "pcm16", "output_audio_format": "g711_ulaw"},
            )
        ],
        [
            Notice(
                logging.WARNING,
                "the API set audio in pcm16 / out g711_ulaw, not g711_ulaw as asked",
            )
        ],
    ),
    (
        "a failed response",
        [_server("response.done", response={"id": "r", "status": "failed", "status_details": 1})],
        [Notice(logging.WARNING, "a response ended failed: 1")],
    ),
    ("events a relay has no use for", [_server("rate_limits.updated", rate_limits=[])], []),
    (
        "not JSON",
        ["{"],
        [Notice(logging.WARNING, "ignoring a message from the API that is not JSON")],
    ),
    (
        "no type",
        ['{"delta": 1}'],
        [Notice(logging.WARNING, "ignoring a JSON message from the API without a type")],
    ),
    (
        "a malformed delta",
        [_server("response.audio.delta", response_id="r", item_id="i", delta="!!")],
        [
            Notice(
                logging.WARNING,
                "ignoring a malformed response.audio.delta (Error: Only base64 data is allowed)",
            )
        ],
    ),
    (
        "a delta without its response",
        [_server("response.audio.delta", delta="")],
        [
            Notice(
                logging.WARNING,
                "ignoring a malformed response.audio.delta (KeyError: 'response_id')",
            )
        ],
    ),
]


@pytest.mark.parametrize(
    ("messages", "expected"), [case[1:] for case in API_EVENTS], ids=[c[0] for c in API_EVENTS]
)
def test_server_events_become_call_actions(messages: list[str], expected: list[Output]) -> None:
    translator = Translator(call_format=PCMU_8K)
    outputs = [output for message in messages for output in translator.on_api_message(message, 0)]
    assert outputs == expected


def test_binary_messages_are_ignored() -> None:
    translator = Translator(call_format=PCMU_8K)
    notice = Notice(logging.WARNING, "ignoring a binary message from the API")
    assert translator.on_api_message(b"\x00", 0) == [notice]


def test_pcm16_deltas_cut_mid_sample_are_joined() -> None:
    translator = Translator(call_format=PCM16_16K)
    assert translator.on_api_message(_delta(b"\x01\x02\x03"), 0) == [PlayAudio(b"\x01\x02")]
    assert translator.on_api_message(_delta(b"\x04"), 0) == [PlayAudio(b"\x03\x04")]


SESSIONS = [
    ({"input_audio_format": "pcm16", "output_audio_format": "g711_alaw"}, ("pcm16", "g711_alaw")),
    (
        {
            "type": "realtime",
            "audio": {
                "input": {"format": {"type": "audio/pcmu"}},
                "output": {"format": {"type": "audio/pcm", "rate": 24000}},
            },
        },
        ("g711_ulaw", "pcm16"),
    ),
    ({"type": "realtime", "audio": {"input": {}}}, (None, None)),
    (None, (None, None)),
]


@pytest.mark.parametrize(("session", "expected"), SESSIONS)
def test_session_formats_read_both_interfaces(session: Any, expected: Any) -> None:
    assert session_formats(session) == expected


# --- barge-in: what was heard ----------------------------------------------------------------

CREATED = _server("response.created", response={"id": "resp_1", "status": "in_progress"})
SPEECH = _server("input_audio_buffer.speech_started", audio_start_ms=900, item_id="user_1")
PCMU_1S = bytes([0x55]) * 8000
PCMU_500MS = PCMU_1S[:4000]


def _truncate(item: str, ms: int) -> ToApi:
    event = {"type": "conversation.item.truncate", "item_id": item, "content_index": 0}
    return ToApi({**event, "audio_end_ms": ms})


CANCEL = ToApi({"type": "response.cancel", "response_id": "resp_1"})
CANCEL_2 = ToApi({"type": "response.cancel", "response_id": "resp_2"})
AUDIO_DONE_1 = _server("response.audio.done", response_id="resp_1", item_id="item_1")
DONE = _server("response.done", response={"id": "resp_1", "status": "completed"})


def _barge_in(*outputs: Output, done: str) -> list[Output]:
    """The outputs of a barge-in, and its log line saying what was ``done``."""
    return [*outputs, Notice(logging.INFO, f"barge-in: the caller spoke over the model; {done}")]


CLEARED, CANCELLED = "playback cleared", "response resp_1 cancelled"

# Each step: (now, a server message or a call event, the outputs expected).
Step = tuple[float, str | Event, list[Output]]
BARGE_INS: list[tuple[str, list[Step]]] = [
    (
        "mid-response: clear, cancel, truncate at what was heard; late audio dropped",
        [
            (0.0, CREATED, []),
            (0.0, _delta(PCMU_1S), [PlayAudio(PCMU_1S)]),
            (
                0.4,
                SPEECH,
                _barge_in(
                    ClearAudio(),
                    CANCEL,
                    _truncate("item_1", 400),
                    done=f"{CLEARED}, {CANCELLED}, item item_1 cut at 400 ms",
                ),
            ),
            (0.5, _delta(PCMU_1S), []),
        ],
    ),
    (
        "the clock runs from the first audio, and not past what was sent",
        [
            (1.0, _delta(PCMU_500MS), [PlayAudio(PCMU_500MS)]),
            (1.2, _delta(PCMU_500MS), [PlayAudio(PCMU_500MS)]),
            (
                1.25,
                SPEECH,
                _barge_in(
                    ClearAudio(),
                    CANCEL,
                    _truncate("item_1", 250),
                    done=f"{CLEARED}, {CANCELLED}, item item_1 cut at 250 ms",
                ),
            ),
        ],
    ),
    (
        "items queued one after the other: each is cut where the clock is",
        [
            (0.0, _delta(PCMU_500MS), [PlayAudio(PCMU_500MS)]),
            (0.0, AUDIO_DONE_1, [PlaceMark("relay-1")]),
            (0.0, _delta(PCMU_500MS, item="item_2"), [PlayAudio(PCMU_500MS)]),
            (
                0.7,
                SPEECH,
                _barge_in(
                    ClearAudio(),
                    CANCEL,
                    _truncate("item_1", 500),
                    _truncate("item_2", 200),
                    done=f"{CLEARED}, {CANCELLED}, item item_1 cut at 500 ms, "
                    "item item_2 cut at 200 ms",
                ),
            ),
        ],
    ),
    (
        "after the mark came back nothing is left to stop",
        [
            (0.0, CREATED, []),
            (0.0, _delta(PCMU_500MS), [PlayAudio(PCMU_500MS)]),
            (0.0, AUDIO_DONE_1, [PlaceMark("relay-1")]),
            (0.0, DONE, []),
            (0.6, Mark("relay-1"), []),
            (0.7, SPEECH, []),
        ],
    ),
    (
        "heard to the end by the clock but not confirmed: cut at its end",
        [
            (0.0, _delta(PCMU_500MS), [PlayAudio(PCMU_500MS)]),
            (0.0, AUDIO_DONE_1, [PlaceMark("relay-1")]),
            (0.0, DONE, []),
            (
                0.9,
                SPEECH,
                _barge_in(
                    ClearAudio(),
                    _truncate("item_1", 500),
                    done=f"{CLEARED}, item item_1 cut at 500 ms",
                ),
            ),
        ],
    ),
    (
        "the caller's queue ran dry between two pieces: the gap was not heard",
        [
            (0.0, _delta(PCMU_500MS), [PlayAudio(PCMU_500MS)]),
            (0.8, _delta(PCMU_500MS), [PlayAudio(PCMU_500MS)]),
            (
                1.0,
                SPEECH,
                _barge_in(
                    ClearAudio(),
                    CANCEL,
                    _truncate("item_1", 700),
                    done=f"{CLEARED}, {CANCELLED}, item item_1 cut at 700 ms",
                ),
            ),
        ],
    ),
    (
        "a response that has sent nothing yet is cancelled",
        [(0.0, CREATED, []), (0.1, SPEECH, _barge_in(CANCEL, done=CANCELLED))],
    ),
    ("nothing playing, nothing coming", [(0.0, SPEECH, [])]),
    (
        "audio after a barge-in plays from the caller's present",
        [
            (0.0, _delta(PCMU_1S), [PlayAudio(PCMU_1S)]),
            (
                0.2,
                SPEECH,
                _barge_in(
                    ClearAudio(),
                    CANCEL,
                    _truncate("item_1", 200),
                    done=f"{CLEARED}, {CANCELLED}, item item_1 cut at 200 ms",
                ),
            ),
            (2.0, _delta(PCMU_1S, response="resp_2", item="item_9"), [PlayAudio(PCMU_1S)]),
            (
                2.3,
                SPEECH,
                _barge_in(
                    ClearAudio(),
                    CANCEL_2,
                    _truncate("item_9", 300),
                    done=f"{CLEARED}, response resp_2 cancelled, item item_9 cut at 300 ms",
                ),
            ),
        ],
    ),
]


@pytest.mark.parametrize("steps", [case[1] for case in BARGE_INS], ids=[c[0] for c in BARGE_INS])
def test_barge_in_stops_what_the_caller_has_not_heard(steps: list[Step]) -> None:
    translator = Translator(call_format=PCMU_8K)
    for now, given, expected in steps:
        if isinstance(given, str):
            outputs = translator.on_api_message(given, now)
        else:
            outputs = translator.on_call_event(given, now)
        assert outputs == expected, (now, given)


def test_the_statistics_count_what_happened() -> None:
    translator = Translator(call_format=PCMU_8K)
    for now, message in [
        (0.0, CREATED),
        (0.0, _delta(PCMU_1S)),
        (0.4, SPEECH),
        (0.5, _delta(PCMU_1S)),
    ]:
        translator.on_api_message(message, now)
    translator.on_call_event(_audio(CODES), 0.6)
    stats = translator.stats
    assert (stats.responses, stats.barge_ins, stats.late_audio_dropped) == (1, 1, 1)
    assert (stats.model_ms, stats.caller_ms) == (1000, 20)
