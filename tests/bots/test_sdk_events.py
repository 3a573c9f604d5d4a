"""What a bot hears: every bridge -> bot message becomes the right SDK event.

A fake voxgate (tests/support/fake_bridge.py, which validates every message it sends
against the protocol's schema) calls an SDK bot that records what it is given: ``call.start``
and the events of ``async for event in call``. Tables of wire messages and the events
expected, in both audio transports.
"""

from __future__ import annotations

import json
import logging
from typing import Any

import numpy as np
import pytest
from fake_bridge import CALL_ID, bot_call, run

from voxgate.bots.sdk import (
    Audio,
    Call,
    Carrier,
    Dtmf,
    Error,
    Event,
    Hold,
    Mark,
    Start,
    Stop,
)
from voxgate.codecs.formats import AudioFormat

PCMU_8K = AudioFormat.parse("pcmu/8000")
TRANSPORTS = [pytest.param(False, id="json"), pytest.param(True, id="binary")]


class Recorder:
    """A bot that keeps ``call.start`` and every event it is given."""

    def __init__(self) -> None:
        self.start: Start | None = None
        self.events: list[Event] = []

    async def handle(self, call: Call) -> None:
        self.start = call.start
        async for event in call:
            self.events.append(event)


# --- start ---------------------------------------------------------------------------------

TWILIO_START: dict[str, Any] = {
    "carrier": {"name": "twilio", "call_id": "CA42", "account_id": "AC7"},
    "custom_parameters": {"customer_tier": "gold", "lang": "fr"},
}
TELNYX_RECONNECTED: dict[str, Any] = {
    "call_id": "vx-7a01c2d9e4b35f60a1c8",
    "stream_id": "vx-7a01c2d9e4b35f60a1c8-2",
    "from": "+15557654321",
    "to": "+15551230000",
    "carrier": {"name": "telnyx", "call_id": "v3:call-control-id-456"},
    "opening_text": "Hello, this is the pharmacy.",
    "system_prompt": "You are a friendly pharmacy assistant.",
    "reconnected": True,
}
OUTBOUND_SIP: dict[str, Any] = {
    "direction": "outbound",
    "from": None,
    "to": "sip:alice@example.com",
    "carrier": {"call_id": "sip-call-1"},
}

START_VECTORS = [
    pytest.param(
        TWILIO_START,
        "pcmu",
        8000,
        Start(
            call_id=CALL_ID,
            stream_id=f"{CALL_ID}-1",
            media_format=PCMU_8K,
            audio_transport="json",
            from_number="+15551234567",
            to_number="+15557654321",
            carrier=Carrier("twilio", "CA42", "AC7"),
            custom_parameters={"customer_tier": "gold", "lang": "fr"},
        ),
        id="twilio-custom-parameters",
    ),
    pytest.param(
        TELNYX_RECONNECTED,
        "pcm16",
        16000,
        Start(
            call_id="vx-7a01c2d9e4b35f60a1c8",
            stream_id="vx-7a01c2d9e4b35f60a1c8-2",
            media_format=AudioFormat.parse("pcm16/16000"),
            audio_transport="json",
            from_number="+15557654321",
            to_number="+15551230000",
            carrier=Carrier("telnyx", "v3:call-control-id-456"),
            opening_text="Hello, this is the pharmacy.",
            system_prompt="You are a friendly pharmacy assistant.",
            reconnected=True,
        ),
        id="telnyx-reconnected-prompts",
    ),
    pytest.param(
        OUTBOUND_SIP,
        "l16",
        48000,
        Start(
            call_id=CALL_ID,
            stream_id=f"{CALL_ID}-1",
            media_format=AudioFormat.parse("l16/48000"),
            audio_transport="json",
            direction="outbound",
            to_number="sip:alice@example.com",
            carrier=Carrier(None, "sip-call-1"),
        ),
        id="outbound-no-carrier-name",
    ),
]


@pytest.mark.parametrize(("fields", "encoding", "rate", "expected"), START_VECTORS)
def test_start_fields_reach_the_bot(
    fields: dict[str, Any], encoding: str, rate: int, expected: Start
) -> None:
    bot = Recorder()

    async def body() -> None:
        async with bot_call(bot.handle, fields, encoding=encoding, sample_rate=rate) as bridge:
            await bridge.stop()
            assert await bridge.wait_closed() == 1000

    run(body)
    assert bot.start == expected
    assert bot.events == [Stop("caller_hangup")]


def test_start_names_the_negotiated_binary_transport() -> None:
    bot = Recorder()

    async def body() -> None:
        async with bot_call(bot.handle, binary=True) as bridge:
            assert bridge.transport == "binary"
            await bridge.stop()
            await bridge.wait_closed()

    run(body)
    assert bot.start is not None
    assert bot.start.audio_transport == "binary"


# --- every message after start -------------------------------------------------------------

CONTROL_VECTORS: list[tuple[dict[str, Any], Event]] = [
    (
        {"type": "dtmf", "digit": "5", "duration_ms": 120, "method": "rfc4733"},
        Dtmf("5", 120, "rfc4733"),
    ),
    ({"type": "dtmf", "digit": "#"}, Dtmf("#")),
    ({"type": "dtmf", "digit": "D", "method": "twilio"}, Dtmf("D", None, "twilio")),
    ({"type": "hold", "on_hold": True}, Hold(True)),
    ({"type": "hold", "on_hold": False}, Hold(False)),
    ({"type": "mark", "name": "greeting-done"}, Mark("greeting-done")),
    ({"type": "mark", "name": "é ✓"}, Mark("é ✓")),
    (
        {"type": "error", "code": "bad_audio", "message": "'audio' is not base64"},
        Error("bad_audio", "'audio' is not base64"),
    ),
    (
        {"type": "error", "code": "transfer_unavailable", "message": ""},
        Error("transfer_unavailable", ""),
    ),
]

STOP_VECTORS = [
    pytest.param("caller_hangup", id="caller_hangup"),
    pytest.param("bot_hangup", id="bot_hangup"),
    pytest.param("shutdown", id="shutdown"),
    pytest.param("a-reason-of-a-later-version", id="unknown-reason"),
    pytest.param(None, id="no-reason"),
]


@pytest.mark.parametrize("binary", TRANSPORTS)
def test_every_control_message_becomes_its_event(binary: bool) -> None:
    bot = Recorder()

    async def body() -> None:
        async with bot_call(bot.handle, binary=binary) as bridge:
            for message, _ in CONTROL_VECTORS:
                await bridge.send(message)
            await bridge.stop()
            await bridge.wait_closed()

    run(body)
    assert bot.events == [event for _, event in CONTROL_VECTORS] + [Stop("caller_hangup")]


@pytest.mark.parametrize("reason", STOP_VECTORS)
def test_stop_ends_the_events_with_its_reason(reason: str | None) -> None:
    bot = Recorder()

    async def body() -> None:
        async with bot_call(bot.handle) as bridge:
            await bridge.send_dtmf("1")
            await bridge.stop(reason)
            await bridge.wait_closed()

    run(body)
    assert bot.events == [Dtmf("1"), Stop(reason)]


CHUNKS = [bytes(range(160)), b"\xff" * 160, bytes(range(96, 176)), b"\x7f" * 320]


def test_json_media_keeps_its_seq_and_timestamp() -> None:
    bot = Recorder()
    stamps = [0, 20, 1000, 1010]  # a jump: audio lost during a reconnection

    async def body() -> None:
        async with bot_call(bot.handle) as bridge:
            for chunk, stamp in zip(CHUNKS, stamps, strict=True):
                await bridge.send_media(chunk, timestamp_ms=stamp)
            await bridge.stop()
            await bridge.wait_closed()

    run(body)
    expected = [
        Audio(chunk, seq, stamp, PCMU_8K)
        for seq, (chunk, stamp) in enumerate(zip(CHUNKS, stamps, strict=True), 1)
    ]
    assert bot.events == [*expected, Stop("caller_hangup")]


def test_binary_frames_are_counted_like_voxgate_counts_them() -> None:
    """The n-th frame has seq n; its timestamp is the samples before it in ms, rounded down."""
    bot = Recorder()
    chunks = [bytes(160), bytes(80), bytes(7), bytes(160)]  # 20, 10, 0.875, 20 ms

    async def body() -> None:
        async with bot_call(bot.handle, binary=True) as bridge:
            for chunk in chunks:
                await bridge.send_media(chunk)
            await bridge.stop()
            await bridge.wait_closed()

    run(body)
    expected = [
        Audio(chunk, seq, stamp, PCMU_8K)
        for seq, (chunk, stamp) in enumerate(zip(chunks, [0, 20, 30, 30], strict=True), 1)
    ]
    assert bot.events == [*expected, Stop("caller_hangup")]


# Bytes on the wire and the int16 samples they stand for (ITU-T G.711; L16 is big-endian as
# on RTP, pcm16 little-endian).
SAMPLE_VECTORS = [
    pytest.param("pcmu", 8000, bytes([0xFF, 0x80, 0x00, 0x7F]), [0, 32124, -32124, 0], id="pcmu"),
    pytest.param("pcma", 8000, bytes([0xD5, 0x55, 0xAA, 0x2A]), [8, -8, 32256, -32256], id="pcma"),
    pytest.param(
        "pcm16", 16000, b"\x01\x00\xff\x7f\x00\x80\xfe\xff", [1, 32767, -32768, -2], id="pcm16"
    ),
    pytest.param(
        "l16", 24000, b"\x00\x01\x7f\xff\x80\x00\xff\xfe", [1, 32767, -32768, -2], id="l16"
    ),
]


@pytest.mark.parametrize("binary", TRANSPORTS)
@pytest.mark.parametrize(("encoding", "rate", "data", "samples"), SAMPLE_VECTORS)
def test_audio_samples_decode_each_encoding(
    binary: bool, encoding: str, rate: int, data: bytes, samples: list[int]
) -> None:
    bot = Recorder()

    async def body() -> None:
        async with bot_call(bot.handle, binary=binary, encoding=encoding, sample_rate=rate) as b:
            await b.send_media(data)
            await b.stop()
            await b.wait_closed()

    run(body)
    audio, stop = bot.events
    assert isinstance(audio, Audio)
    assert stop == Stop("caller_hangup")
    assert audio.data == data
    assert audio.media_format == AudioFormat.parse(f"{encoding}/{rate}")
    decoded = audio.samples()
    assert decoded.dtype == np.int16
    assert decoded.tolist() == samples
    assert audio.duration_ms == pytest.approx(1000 * len(samples) / rate)


# --- what voxgate should never send ----------------------------------------------------------

BAD_MESSAGES = [
    pytest.param("this is not JSON", id="bad-json"),
    pytest.param("[1, 2]", id="not-an-object"),
    pytest.param(json.dumps({"type": "bogus"}), id="unknown-type"),
    pytest.param(json.dumps({"no": "type"}), id="no-type"),
    pytest.param(json.dumps({"type": "dtmf", "digit": "X"}), id="bad-digit"),
    pytest.param(
        json.dumps({"type": "media", "seq": 1, "timestamp_ms": 0, "audio": "%%"}), id="bad-base64"
    ),
    pytest.param(json.dumps({"type": "mark", "name": ""}), id="empty-mark"),
    pytest.param(json.dumps({"type": "start"}), id="second-start"),
    pytest.param(b"\x01\x02", id="binary-on-json-socket"),
]


@pytest.mark.parametrize("message", BAD_MESSAGES)
def test_a_bad_message_is_logged_and_ignored(
    message: str | bytes, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="voxgate.bots.sdk")
    bot = Recorder()

    async def body() -> None:
        async with bot_call(bot.handle) as bridge:
            await bridge.send_raw(message)
            await bridge.send_dtmf("7")  # the call goes on
            await bridge.stop()
            assert await bridge.wait_closed() == 1000

    run(body)
    assert bot.events == [Dtmf("7"), Stop("caller_hangup")]
    (warning,) = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert "should not send" in warning.getMessage()
    assert CALL_ID in warning.getMessage()
    assert getattr(warning, "call_id", None) == CALL_ID
