"""A bot's call: its actions as exact wire messages, and the semantics of its event stream.

Each test serves an SDK bot on loopback and calls it with the fake voxgate of
tests/support/fake_bridge.py, which validates every message either way against the
protocol's schema. Actions are tables of vectors (the action, the messages it must put on
the wire) run in both audio transports; a bot that returns is hung up by the SDK, so each
exchange ends with ``session.hangup`` (reason ``the bot finished``) unless the bot hung up.
"""

from __future__ import annotations

import asyncio
import base64
import logging
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import numpy.typing as npt
import pytest
import webrtcvad
from fake_bridge import Json, bot_call, run

from voxgate.bots.sdk import (
    Audio,
    Call,
    CallEndedError,
    Dtmf,
    Error,
    Event,
    Hold,
    Mark,
    SpeechEnded,
    SpeechStarted,
    Stop,
    load_audio,
    save_wav,
    to_format,
    tone,
)
from voxgate.bots.sdk.call import EVENT_QUEUE
from voxgate.codecs.formats import AudioFormat

Action = Callable[[Call], Awaitable[None]]
Wire = Json | bytes
TRANSPORTS = [pytest.param(False, id="json"), pytest.param(True, id="binary")]
BOT_FINISHED: Json = {"type": "session.hangup", "reason": "the bot finished"}
PCMU_8K = AudioFormat.parse("pcmu/8000")
PCM16_16K = AudioFormat.parse("pcm16/16000")


def on_wire(expected: list[Wire], binary: bool) -> list[Wire]:
    """Expected messages with audio (bytes) as the transport carries it."""
    return [
        (
            item
            if binary
            else {"type": "response.audio.delta", "audio": base64.b64encode(item).decode()}
        )
        if isinstance(item, bytes)
        else item
        for item in expected
    ]


async def exchange(
    action: Action, binary: bool, encoding: str = "pcmu", rate: int = 8000
) -> list[Wire]:
    """What the bot put on the wire doing ``action`` and returning (voxgate answers hangup)."""
    async with bot_call(
        action, binary=binary, encoding=encoding, sample_rate=rate, answer_hangup=True
    ) as bridge:
        assert await bridge.wait_closed() == 1000
    return bridge.received


def pattern(size: int) -> bytes:
    return bytes(i % 251 for i in range(size))


# --- actions -> wire -------------------------------------------------------------------------

PCMU_2500MS = pattern(20000)
PCM16_1500MS = pattern(48000)

ACTION_VECTORS: list[Any] = [
    pytest.param(
        "pcmu/8000",
        lambda c: c.send_audio(PCMU_2500MS),
        [PCMU_2500MS[:8000], PCMU_2500MS[8000:16000], PCMU_2500MS[16000:], BOT_FINISHED],
        id="send_audio-pcmu-split-at-1s",
    ),
    pytest.param(
        "pcm16/16000",
        lambda c: c.send_audio(PCM16_1500MS),
        [PCM16_1500MS[:32000], PCM16_1500MS[32000:], BOT_FINISHED],
        id="send_audio-pcm16-split-at-1s",
    ),
    pytest.param(
        "pcma/8000",
        lambda c: c.send_audio(bytearray(b"\xd5" * 10)),
        [b"\xd5" * 10, BOT_FINISHED],
        id="send_audio-bytearray",
    ),
    pytest.param(
        "l16/16000",
        lambda c: c.send_audio(memoryview(b"\x00\x01" * 8)),
        [b"\x00\x01" * 8, BOT_FINISHED],
        id="send_audio-memoryview",
    ),
    pytest.param(
        "pcmu/8000",
        lambda c: c.send_audio(b""),
        [BOT_FINISHED],
        id="send_audio-nothing",
    ),
    pytest.param(
        "pcmu/8000",
        lambda c: c.mark("greeting-done"),
        [{"type": "mark", "name": "greeting-done"}, BOT_FINISHED],
        id="mark",
    ),
    pytest.param(
        "pcmu/8000",
        lambda c: c.mark("é ✓ " * 10),
        [{"type": "mark", "name": "é ✓ " * 10}, BOT_FINISHED],
        id="mark-unicode",
    ),
    pytest.param(
        "pcmu/8000",
        lambda c: c.clear(),
        [{"type": "response.audio.clear"}, BOT_FINISHED],
        id="clear",
    ),
    pytest.param(
        "pcmu/8000",
        lambda c: c.send_dtmf("1"),
        [{"type": "dtmf.send", "digits": "1", "duration_ms": 100}, BOT_FINISHED],
        id="send_dtmf-default-duration",
    ),
    pytest.param(
        "pcmu/8000",
        lambda c: c.send_dtmf("0123456789*#ABCD", duration_ms=2000),
        [{"type": "dtmf.send", "digits": "0123456789*#ABCD", "duration_ms": 2000}, BOT_FINISHED],
        id="send_dtmf-every-key",
    ),
    pytest.param(
        "pcmu/8000",
        lambda c: c.send_dtmf("9" * 32, duration_ms=50),
        [{"type": "dtmf.send", "digits": "9" * 32, "duration_ms": 50}, BOT_FINISHED],
        id="send_dtmf-32-digits-50ms",
    ),
    pytest.param(
        "pcmu/8000",
        lambda c: c.transfer("+15551234567"),
        [{"type": "session.transfer", "target": "+15551234567"}, BOT_FINISHED],
        id="transfer-e164",
    ),
    pytest.param(
        "pcmu/8000",
        lambda c: c.transfer("sip:support@pbx.example.com"),
        [{"type": "session.transfer", "target": "sip:support@pbx.example.com"}, BOT_FINISHED],
        id="transfer-sip",
    ),
    pytest.param(
        "pcmu/8000",
        lambda c: c.transfer("sips:+15551234567@example.com;user=phone"),
        [
            {"type": "session.transfer", "target": "sips:+15551234567@example.com;user=phone"},
            BOT_FINISHED,
        ],
        id="transfer-sips",
    ),
    pytest.param(
        "pcmu/8000",
        lambda c: c.hangup(),
        [{"type": "session.hangup"}],
        id="hangup",
    ),
    pytest.param(
        "pcmu/8000",
        lambda c: c.hangup("task_complete"),
        [{"type": "session.hangup", "reason": "task_complete"}],
        id="hangup-with-reason",
    ),
    pytest.param(
        "pcmu/8000",
        lambda c: c.transcript("caller", "I'd like to refill my prescription."),
        [
            {
                "type": "transcript",
                "role": "caller",
                "text": "I'd like to refill my prescription.",
                "final": True,
            },
            BOT_FINISHED,
        ],
        id="transcript-caller",
    ),
    pytest.param(
        "pcmu/8000",
        lambda c: c.transcript("bot", "Hel", final=False),
        [{"type": "transcript", "role": "bot", "text": "Hel", "final": False}, BOT_FINISHED],
        id="transcript-bot-interim",
    ),
]


@pytest.mark.parametrize("binary", TRANSPORTS)
@pytest.mark.parametrize(("media_format", "action", "expected"), ACTION_VECTORS)
def test_action_puts_the_exact_message_on_the_wire(
    binary: bool, media_format: str, action: Action, expected: list[Wire]
) -> None:
    encoding, rate = media_format.split("/")

    async def body() -> None:
        received = await exchange(action, binary, encoding, int(rate))
        assert received == on_wire(expected, binary)

    run(body)


BAD_ACTIONS = [
    pytest.param(lambda c: c.send_audio(b"\x00\x01\x02"), id="odd-bytes-in-pcm16"),
    pytest.param(lambda c: c.send_audio(np.zeros((2, 80), dtype=np.int16), 16000), id="2-d-audio"),
    pytest.param(lambda c: c.send_audio(np.array(["a", "b"])), id="audio-of-strings"),
    pytest.param(lambda c: c.play(np.zeros(80, dtype=np.int16)), id="play-samples-no-rate"),
    pytest.param(lambda c: c.mark(""), id="empty-mark"),
    pytest.param(lambda c: c.send_dtmf("X"), id="digit-X"),
    pytest.param(lambda c: c.send_dtmf(""), id="no-digits"),
    pytest.param(lambda c: c.send_dtmf("1" * 33), id="33-digits"),
    pytest.param(lambda c: c.send_dtmf("1", duration_ms=49), id="dtmf-49ms"),
    pytest.param(lambda c: c.send_dtmf("1", duration_ms=2001), id="dtmf-2001ms"),
    pytest.param(lambda c: c.transfer("12345"), id="target-12345"),
    pytest.param(lambda c: c.transfer("+0123456"), id="target-leading-0"),
    pytest.param(lambda c: c.transfer("+1234567890123456"), id="target-16-digits"),
    pytest.param(lambda c: c.transfer("tel:+15551234567"), id="target-tel-uri"),
    pytest.param(lambda c: c.transcript("robot", "hi"), id="role-robot"),
]


@pytest.mark.parametrize("binary", TRANSPORTS)
@pytest.mark.parametrize("action", BAD_ACTIONS)
def test_a_bad_value_raises_value_error_and_sends_nothing(binary: bool, action: Action) -> None:
    raised: list[BaseException] = []

    async def bot(call: Call) -> None:
        try:
            await action(call)
        except ValueError as error:
            raised.append(error)
        await call.mark("after")

    async def body() -> None:
        received = await exchange(bot, binary, "pcm16", 16000)
        assert received == [{"type": "mark", "name": "after"}, BOT_FINISHED]

    run(body)
    assert len(raised) == 1, "no ValueError"


# --- audio converted from samples ----------------------------------------------------------


def sine(frequency: float, seconds: float, rate: int, amplitude: float) -> npt.NDArray[np.float64]:
    return amplitude * np.sin(2 * np.pi * frequency * np.arange(round(seconds * rate)) / rate)


def dominant_frequency(samples: npt.NDArray[Any], rate: int) -> float:
    spectrum = np.abs(np.fft.rfft(samples.astype(np.float64) * np.hanning(len(samples))))
    return float(np.argmax(spectrum) * rate / len(samples))


def rms_dbfs(samples: npt.NDArray[Any]) -> float:
    values = samples.astype(np.float64)
    return float(20 * np.log10(np.sqrt(np.mean(values**2)) / 32767))


def pcm16_of(data: bytes) -> npt.NDArray[np.int16]:
    return np.frombuffer(data, dtype="<i2")


SINE_RMS_DB = 20 * np.log10(np.sqrt(0.5))  # a sine's RMS below its peak: -3.01 dB


@pytest.mark.parametrize("binary", TRANSPORTS)
def test_send_audio_converts_int16_at_another_rate(binary: bool, audioop: ModuleType) -> None:
    """1 s of a 1 kHz int16 tone at 16 kHz, to a pcmu/8000 call: 8000 bytes, same tone."""
    samples = tone(1000, 1000, 16000, level_dbfs=-12)

    async def body() -> None:
        received = await exchange(lambda c: c.send_audio(samples, 16000), binary)
        *audio, hangup = received
        assert hangup == BOT_FINISHED
        assert len(audio) == 1
        data = audio[0] if isinstance(audio[0], bytes) else base64.b64decode(audio[0]["audio"])
        assert len(data) == 8000
        decoded = np.frombuffer(audioop.ulaw2lin(data, 2), dtype=np.int16)
        steady = decoded[400:-400]  # away from the tone's ramps and the resampler's delay
        assert dominant_frequency(steady, 8000) == pytest.approx(1000, abs=2)
        assert rms_dbfs(steady) == pytest.approx(-12 + SINE_RMS_DB, abs=0.3)

    run(body)


@pytest.mark.parametrize("binary", TRANSPORTS)
def test_send_audio_converts_floats_and_splits_at_1s(binary: bool) -> None:
    """1.5 s of a float 440 Hz sine at 24 kHz, to a pcm16/16000 call: 32000 + 16000 bytes."""
    samples = sine(440, 1.5, 24000, amplitude=0.25)

    async def body() -> None:
        received = await exchange(lambda c: c.send_audio(samples, 24000), binary, "pcm16", 16000)
        *audio, hangup = received
        assert hangup == BOT_FINISHED
        chunks = [a if isinstance(a, bytes) else base64.b64decode(a["audio"]) for a in audio]
        assert [len(chunk) for chunk in chunks] == [32000, 16000]
        decoded = pcm16_of(b"".join(chunks))[160:-160]
        assert dominant_frequency(decoded, 16000) == pytest.approx(440, abs=2)
        assert rms_dbfs(decoded) == pytest.approx(20 * np.log10(0.25) + SINE_RMS_DB, abs=0.3)

    run(body)


def test_send_audio_in_pieces_equals_send_audio_whole() -> None:
    """Streaming 20 ms float pieces keeps the resampler's state: no clicks at the joins."""
    samples = sine(440, 1.0, 24000, amplitude=0.5)

    async def pieces(call: Call) -> None:
        for start in range(0, len(samples), 480):
            await call.send_audio(samples[start : start + 480], 24000)

    async def body() -> None:
        whole = await exchange(lambda c: c.send_audio(samples, 24000), True, "pcm16", 16000)
        pieced = await exchange(pieces, True, "pcm16", 16000)
        whole_audio = b"".join(m for m in whole if isinstance(m, bytes))
        pieced_audio = b"".join(m for m in pieced if isinstance(m, bytes))
        assert len(pieced_audio) == len(whole_audio) == 32000
        difference = pcm16_of(whole_audio).astype(int) - pcm16_of(pieced_audio)
        assert np.max(np.abs(difference)) <= 1

    run(body)


@pytest.mark.parametrize("binary", TRANSPORTS)
def test_play_a_wav_file_in_200ms_pieces_then_the_mark(binary: bool) -> None:
    path = Path("prompt.wav")
    save_wav(path, tone(440, 1100, 16000), 16000)  # 1.1 s: 8800 bytes of pcmu
    samples, rate = load_audio(path)
    expected_audio = to_format(samples, rate, PCMU_8K)
    assert len(expected_audio) == 8800

    async def body() -> None:
        received = await exchange(lambda c: c.play(path, mark="prompt"), binary)
        pieces = [expected_audio[i : i + 1600] for i in range(0, 8800, 1600)]
        assert [len(p) for p in pieces] == [1600] * 5 + [800]
        assert received == on_wire(
            [*pieces, {"type": "mark", "name": "prompt"}, BOT_FINISHED], binary
        )

    run(body)


@pytest.mark.parametrize("binary", TRANSPORTS)
def test_play_samples_at_their_rate(binary: bool) -> None:
    """0.5 s of float samples at 48 kHz to pcm16/16000: 6400 + 6400 + 3200 bytes, no mark."""
    samples = sine(1000, 0.5, 48000, amplitude=0.5)

    async def body() -> None:
        received = await exchange(
            lambda c: c.play(samples, sample_rate=48000), binary, "pcm16", 16000
        )
        *audio, hangup = received
        assert hangup == BOT_FINISHED
        chunks = [a if isinstance(a, bytes) else base64.b64decode(a["audio"]) for a in audio]
        assert [len(chunk) for chunk in chunks] == [6400, 6400, 3200]
        assert b"".join(chunks) == to_format(samples, 48000, PCM16_16K)
        decoded = pcm16_of(b"".join(chunks))[80:-80]
        assert dominant_frequency(decoded, 16000) == pytest.approx(1000, abs=3)

    run(body)


# --- the event stream --------------------------------------------------------------------


def test_async_for_ends_after_the_final_stop() -> None:
    seen: list[Event] = []
    after: list[object] = []

    async def bot(call: Call) -> None:
        async for event in call:
            seen.append(event)
        after.append(call.ended)
        after.extend([event async for event in call])  # nothing more
        try:
            await call.next_event(1.0)
        except CallEndedError as error:
            after.append(error)

    async def body() -> None:
        async with bot_call(bot) as bridge:
            await bridge.send_dtmf("1")
            await bridge.stop("caller_hangup")
            assert await bridge.wait_closed() == 1000

    run(body)
    assert seen == [Dtmf("1"), Stop("caller_hangup")]
    assert after[0] is True
    assert len(after) == 2 and isinstance(after[1], CallEndedError)


def test_a_socket_closed_without_stop_ends_with_stop_none() -> None:
    seen: list[Event] = []
    ended: list[bool] = []

    async def bot(call: Call) -> None:
        async for event in call:
            seen.append(event)
        ended.append(call.ended)

    async def body() -> None:
        async with bot_call(bot) as bridge:
            await bridge.send_hold(True)
            await bridge.connection.close(1001, "going away")

        async with asyncio.timeout(5):
            while not ended:
                await asyncio.sleep(0.01)

    run(body)
    assert seen == [Hold(True), Stop(None)]
    assert ended == [True]


def test_next_event_returns_none_on_timeout_then_raises_after_the_end() -> None:
    results: list[object] = []

    async def bot(call: Call) -> None:
        began = time.monotonic()
        results.append(await call.next_event(0.3))
        results.append(time.monotonic() - began)
        await call.transcript("bot", "ready")
        results.append(await call.next_event(5))
        results.append(await call.next_event(5))
        try:
            await call.next_event(5)
        except CallEndedError:
            results.append("ended")

    async def body() -> None:
        async with bot_call(bot) as bridge:
            await bridge.wait_for_type("transcript")
            await bridge.send_dtmf("#")
            await bridge.stop("api_hangup")
            assert await bridge.wait_closed() == 1000

    run(body)
    nothing, waited, dtmf, stop, ended = results
    assert nothing is None
    assert isinstance(waited, float) and waited >= 0.29
    assert (dtmf, stop, ended) == (Dtmf("#"), Stop("api_hangup"), "ended")


VOICED_RATE = 8000


def voiced(milliseconds: int, rate: int = VOICED_RATE) -> npt.NDArray[np.int16]:
    """A 150 Hz sawtooth (rich in harmonics, like a voice) at -20 dBFS RMS."""
    t = np.arange(rate * milliseconds // 1000) / rate
    sawtooth = 2 * ((150 * t) % 1.0) - 1  # RMS 1/sqrt(3)
    samples: npt.NDArray[np.int16] = np.rint(sawtooth * 3276.7 * np.sqrt(3)).astype(np.int16)
    return samples


def test_the_synthetic_voice_is_voiced_for_webrtcvad() -> None:
    signal = voiced(1000)
    assert rms_dbfs(signal) == pytest.approx(-20, abs=0.1)
    vad = webrtcvad.Vad(2)
    frames = [signal[i : i + 160].tobytes() for i in range(0, len(signal), 160)]
    assert all(vad.is_speech(frame, VOICED_RATE) for frame in frames)
    assert not any(webrtcvad.Vad(2).is_speech(bytes(320), VOICED_RATE) for _ in range(50))


def pcmu_chunks(samples: npt.NDArray[np.int16]) -> list[bytes]:
    data = to_format(samples, VOICED_RATE, PCMU_8K)
    return [data[i : i + 160] for i in range(0, len(data), 160)]


SILENCE_CHUNK = b"\xff" * 160  # 20 ms of pcmu zeros


def test_detect_speech_puts_speech_events_right_after_the_audio_that_revealed_them() -> None:
    seen: list[Event] = []

    async def bot(call: Call) -> None:
        call.detect_speech()  # start_ms 20, hangover_ms 300
        async for event in call:
            seen.append(event)
            if isinstance(event, SpeechEnded):
                call.stop_detecting_speech()
                await call.transcript("bot", "detection off")

    async def body() -> None:
        async with bot_call(bot) as bridge:
            for chunk in [SILENCE_CHUNK] * 25 + pcmu_chunks(voiced(600)) + [SILENCE_CHUNK] * 50:
                await bridge.send_media(chunk)
            await bridge.wait_for_type("transcript")
            for chunk in pcmu_chunks(voiced(600)) + [SILENCE_CHUNK] * 50:
                await bridge.send_media(chunk)
            await bridge.stop()
            await bridge.wait_closed()

    run(body)
    speech = [(i, e) for i, e in enumerate(seen) if isinstance(e, SpeechStarted | SpeechEnded)]
    assert [type(e) for _, e in speech] == [SpeechStarted, SpeechEnded]
    (i_start, started), (i_end, ended) = speech
    assert isinstance(started, SpeechStarted) and isinstance(ended, SpeechEnded)
    assert started.at_ms == 500  # the first voiced frame
    assert 1100 <= ended.at_ms <= 1400  # the voice stops at 1100 ms (webrtcvad lingers a bit)
    revealing_start, revealing_end = seen[i_start - 1], seen[i_end - 1]
    assert isinstance(revealing_start, Audio) and isinstance(revealing_end, Audio)
    assert revealing_start.timestamp_ms == started.at_ms  # one 20 ms frame is enough
    assert revealing_end.timestamp_ms + 20 == ended.at_ms + 300  # after the 300 ms hangover
    audio = [e for e in seen if isinstance(e, Audio)]
    assert len(audio) == 25 + 30 + 50 + 30 + 50
    assert seen[-1] == Stop("caller_hangup")


class Handlers:
    """dispatch() target: every on_* method records its call."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, Event]] = []

    async def on_audio(self, event: Audio) -> None:
        self.calls.append(("on_audio", event))

    async def on_dtmf(self, event: Dtmf) -> None:
        self.calls.append(("on_dtmf", event))

    async def on_hold(self, event: Hold) -> None:
        self.calls.append(("on_hold", event))

    async def on_mark(self, event: Mark) -> None:
        self.calls.append(("on_mark", event))

    async def on_error(self, event: Error) -> None:
        self.calls.append(("on_error", event))

    async def on_speech_started(self, event: SpeechStarted) -> None:
        self.calls.append(("on_speech_started", event))

    async def on_speech_ended(self, event: SpeechEnded) -> None:
        self.calls.append(("on_speech_ended", event))

    async def on_stop(self, event: Stop) -> None:
        self.calls.append(("on_stop", event))


class OnlyDtmf:
    def __init__(self) -> None:
        self.digits: list[str] = []

    async def on_dtmf(self, event: Dtmf) -> None:
        self.digits.append(event.digit)


def test_dispatch_calls_the_on_methods_until_the_end() -> None:
    handlers = Handlers()

    async def bot(call: Call) -> None:
        call.detect_speech()
        await call.dispatch(handlers)

    async def body() -> None:
        async with bot_call(bot) as bridge:
            for chunk in pcmu_chunks(voiced(200)) + [SILENCE_CHUNK] * 25:
                await bridge.send_media(chunk)
            await bridge.send_dtmf("3", 80, "inband")
            await bridge.send_hold(True)
            await bridge.report_mark("m")
            await bridge.send_error("queue_full", "too much audio")
            await bridge.stop("transferred")
            await bridge.wait_closed()

    run(body)
    names = [name for name, _ in handlers.calls]
    assert set(names) == {
        "on_audio",
        "on_speech_started",
        "on_speech_ended",
        "on_dtmf",
        "on_hold",
        "on_mark",
        "on_error",
        "on_stop",
    }
    assert names.count("on_audio") == 35
    assert handlers.calls[-5:] == [
        ("on_dtmf", Dtmf("3", 80, "inband")),
        ("on_hold", Hold(True)),
        ("on_mark", Mark("m")),
        ("on_error", Error("queue_full", "too much audio")),
        ("on_stop", Stop("transferred")),
    ]
    expected_names = {
        Audio: "on_audio",
        SpeechStarted: "on_speech_started",
        SpeechEnded: "on_speech_ended",
        Dtmf: "on_dtmf",
        Hold: "on_hold",
        Mark: "on_mark",
        Error: "on_error",
        Stop: "on_stop",
    }
    assert all(name == expected_names[type(event)] for name, event in handlers.calls)


def test_dispatch_skips_the_events_without_a_method() -> None:
    handlers = OnlyDtmf()

    async def bot(call: Call) -> None:
        await call.dispatch(handlers)

    async def body() -> None:
        async with bot_call(bot) as bridge:
            await bridge.send_media(SILENCE_CHUNK)
            await bridge.send_dtmf("1")
            await bridge.send_hold(False)
            await bridge.send_dtmf("2")
            await bridge.stop()
            assert await bridge.wait_closed() == 1000

    run(body)
    assert handlers.digits == ["1", "2"]


# --- marks -------------------------------------------------------------------------------


def test_wait_mark_is_true_once_reported() -> None:
    results: list[object] = []

    async def bot(call: Call) -> None:
        await call.send_audio(SILENCE_CHUNK * 10)
        await call.mark("greeting")
        results.append(await call.wait_mark("greeting", 5))
        results.append(await call.wait_mark("greeting", 0))  # already reported: at once

    async def body() -> None:
        async with bot_call(bot, answer_hangup=True) as bridge:
            await bridge.wait_for(lambda: bridge.pending_marks == ["greeting"])
            assert not results
            await bridge.play_out()
            await bridge.wait_closed()

    run(body)
    assert results == [True, True]


def test_wait_mark_with_voxgate_reporting_marks_as_they_come() -> None:
    results: list[bool] = []

    async def bot(call: Call) -> None:
        await call.play(tone(440, 300, 8000), sample_rate=8000, mark="beep")
        results.append(await call.wait_mark("beep", 5))

    async def body() -> None:
        async with bot_call(bot, auto_marks=True, answer_hangup=True) as bridge:
            await bridge.wait_closed()
        assert bridge.of_type("mark") == [{"type": "mark", "name": "beep"}]

    run(body)
    assert results == [True]


def test_wait_mark_is_false_on_timeout() -> None:
    results: list[object] = []

    async def bot(call: Call) -> None:
        await call.mark("never")
        began = time.monotonic()
        results.append(await call.wait_mark("never", 0.3))
        results.append(time.monotonic() - began)
        results.append(await call.wait_mark("not-even-sent", 0.05))

    async def body() -> None:
        async with bot_call(bot, answer_hangup=True) as bridge:
            await bridge.wait_closed()

    run(body)
    timed_out, waited, other = results
    assert timed_out is False and other is False
    assert isinstance(waited, float) and 0.29 <= waited < 3


def test_wait_mark_is_false_when_the_call_ends() -> None:
    results: list[object] = []

    async def bot(call: Call) -> None:
        await call.mark("goodbye")
        began = time.monotonic()
        results.append(await call.wait_mark("goodbye", 15))
        results.append(time.monotonic() - began)
        results.append(await call.wait_mark("goodbye", 15))  # still ended: at once

    async def body() -> None:
        async with bot_call(bot) as bridge:
            await bridge.wait_for_type("mark")
            await bridge.stop("caller_hangup")  # the mark is never reported
            await bridge.wait_closed()
            async with asyncio.timeout(5):
                while len(results) < 3:
                    await asyncio.sleep(0.01)

    run(body)
    ended, waited, again = results
    assert ended is False and again is False
    assert isinstance(waited, float) and waited < 5


def test_wait_mark_works_when_the_bot_does_not_read_a_few_events() -> None:
    """Marks are recorded as they arrive, read or not (within the event queue's bound)."""
    results: list[bool] = []

    async def bot(call: Call) -> None:
        await call.mark("m")
        results.append(await call.wait_mark("m", 5))

    async def body() -> None:
        async with bot_call(bot, answer_hangup=True) as bridge:
            await bridge.wait_for_type("mark")
            for _ in range(100):  # 2 s of the caller's audio the bot never reads
                await bridge.send_media(SILENCE_CHUNK)
            await bridge.play_out()
            await bridge.wait_closed()

    run(body)
    assert results == [True]


def test_wait_mark_works_while_the_caller_talks_for_longer_than_the_queue_holds() -> None:
    """A goodbye of 12 s while the caller's audio keeps coming; the bot only waits for its mark."""
    results: list[bool] = []
    unread: list[Event] = []

    async def bot(call: Call) -> None:
        await call.mark("goodbye")
        results.append(await call.wait_mark("goodbye", 3))
        unread.extend([event async for event in call])  # lets the SDK's reader finish

    async def body() -> None:
        async with bot_call(bot, answer_hangup=True) as bridge:
            await bridge.wait_for_type("mark")
            for _ in range(EVENT_QUEUE + 100):
                await bridge.send_media(SILENCE_CHUNK)
            await bridge.play_out()
            async with asyncio.timeout(5):
                while not results:
                    await asyncio.sleep(0.01)
            await bridge.stop()

    run(body)
    assert results == [True]


# --- after the end, and a bot that does not read ------------------------------------------


async def every_action(call: Call) -> None:
    await call.send_audio(SILENCE_CHUNK)
    await call.send_audio(np.zeros(160, dtype=np.int16), 8000)
    await call.play(np.zeros(800, dtype=np.int16), sample_rate=8000, mark="late")
    await call.mark("late")
    await call.clear()
    await call.send_dtmf("1")
    await call.transfer("+15551234567")
    await call.transcript("bot", "too late")
    await call.hangup("too late")


@pytest.mark.parametrize("close", [False, True], ids=["stop-only", "stop-and-close"])
def test_actions_after_the_end_do_nothing(close: bool) -> None:
    outcome: list[object] = []

    async def bot(call: Call) -> None:
        async for _ in call:
            pass
        if close:
            await call.wait_ended(5)
        try:
            await every_action(call)
        except Exception as error:
            outcome.append(error)
        else:
            outcome.append("no exception")

    async def body() -> None:
        async with bot_call(bot) as bridge:
            await bridge.stop("caller_hangup", close=close)
            assert await bridge.wait_closed() == 1000
        assert bridge.received == []

    run(body)
    assert outcome == ["no exception"]


def test_a_bot_that_does_not_read_loses_its_oldest_audio_and_nothing_else(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The SDK's reader never waits on the bot: past EVENT_QUEUE unread events the oldest
    caller audio goes (one warning), while keys, marks and the stop are kept."""
    seen: list[Event] = []
    dropped: list[int] = []
    chunks = EVENT_QUEUE + 200

    async def bot(call: Call) -> None:
        await call.mark("m")
        assert await call.wait_ended(10)  # the stop is seen with 700 events unread
        seen.extend([event async for event in call])
        dropped.append(call.audio_dropped)

    async def body() -> None:
        async with bot_call(bot) as bridge:
            await bridge.wait_for_type("mark")
            for _ in range(chunks // 2):
                await bridge.send_media(SILENCE_CHUNK)
            await bridge.send_dtmf("7")
            await bridge.play_out()  # voxgate reports the mark
            for _ in range(chunks - chunks // 2):
                await bridge.send_media(SILENCE_CHUNK)
            await bridge.stop()
            assert await bridge.wait_closed() == 1000

    with caplog.at_level(logging.WARNING):
        run(body, timeout=60)
    audio = [e.seq for e in seen if isinstance(e, Audio)]
    others = [e for e in seen if not isinstance(e, Audio)]
    assert len(seen) == EVENT_QUEUE
    assert others == [Dtmf("7"), Mark("m"), Stop("caller_hangup")]
    assert audio == list(range(chunks - len(audio) + 1, chunks + 1))  # the newest, in order
    assert dropped == [chunks - len(audio)]
    warnings = [r for r in caplog.records if "dropping the oldest audio" in r.getMessage()]
    assert len(warnings) == 1
