from __future__ import annotations

import itertools

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from numpy.typing import NDArray

from voxgate.codecs import g711
from voxgate.codecs.formats import (
    PCMU_8K,
    AudioFormat,
    Encoding,
    Transcoder,
    decode,
    encode,
    parse_encoding,
)
from voxgate.errors import InvalidAudioError, UnsupportedFormatError

PCM16_16K = AudioFormat(Encoding.PCM16, 16000)
PCM16_24K = AudioFormat(Encoding.PCM16, 24000)
PCMA_8K = AudioFormat(Encoding.PCMA, 8000)
L16_8K = AudioFormat(Encoding.L16, 8000)


def _tone(rate: int, seconds: float = 1.0, frequency: float = 440.0) -> NDArray[np.int16]:
    t = np.arange(int(rate * seconds)) / rate
    return np.round(10000 * np.sin(2 * np.pi * frequency * t)).astype(np.int16)


def _snr_db(reference: NDArray[np.int16], test: NDArray[np.int16]) -> float:
    error = reference.astype(np.float64) - test
    return float(10 * np.log10(np.mean(reference.astype(np.float64) ** 2) / np.mean(error**2)))


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("pcmu", AudioFormat(Encoding.PCMU, 8000)),
        ("PCMU/8000", AudioFormat(Encoding.PCMU, 8000)),
        ("audio/x-mulaw", AudioFormat(Encoding.PCMU, 8000)),
        ("g711_alaw", AudioFormat(Encoding.PCMA, 8000)),
        ("pcm16/24000", AudioFormat(Encoding.PCM16, 24000)),
        ("l16/16000", AudioFormat(Encoding.L16, 16000)),
        ("audio/x-mulaw/8000", AudioFormat(Encoding.PCMU, 8000)),
    ],
)
def test_parse_and_print(text: str, expected: AudioFormat) -> None:
    parsed = AudioFormat.parse(text)
    assert parsed == expected
    assert AudioFormat.parse(str(parsed)) == parsed


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("opus", "unknown audio encoding 'opus'"),
        ("pcm16/44100", "sample rate 44100 Hz is not supported"),
        ("pcm16/fast", "unknown audio encoding 'pcm16/fast'"),
        ("audio/x-mulaw/16000/", "unknown audio encoding"),
        ("", "unknown audio encoding ''"),
    ],
)
def test_parse_refuses_with_a_reason(text: str, words: str) -> None:
    with pytest.raises(UnsupportedFormatError, match=words):
        AudioFormat.parse(text)


def test_format_checks() -> None:
    with pytest.raises(UnsupportedFormatError, match="only mono audio is supported, not 2"):
        AudioFormat(Encoding.PCM16, 16000, channels=2)
    with pytest.raises(UnsupportedFormatError, match="encoding must be an Encoding"):
        AudioFormat("pcmu", 8000)  # type: ignore[arg-type]
    assert parse_encoding(" Audio/PCMA ") is Encoding.PCMA


def test_frame_sizes() -> None:
    assert PCMU_8K.bytes_per(20) == 160
    assert PCM16_16K.bytes_per(20) == 640
    assert PCM16_24K.samples_per(20) == 480


def test_equal_formats_pass_the_same_bytes_object_through() -> None:
    transcoder = Transcoder(PCMU_8K, PCMU_8K)
    chunk = bytes(range(160))
    assert transcoder.is_passthrough
    assert transcoder.convert(chunk) is chunk
    assert transcoder.delay == 0.0
    assert transcoder.convert(bytearray(chunk)) == chunk


def test_mu_law_to_a_law_is_a_translation_without_resampling() -> None:
    transcoder = Transcoder(PCMU_8K, PCMA_8K)
    codes = bytes(range(256))
    assert transcoder.convert(codes) == g711.alaw_encode(g711.ulaw_decode(codes)).tobytes()
    back = g711.ulaw_decode(Transcoder(PCMA_8K, PCMU_8K).convert(transcoder.convert(codes)))
    original = g711.ulaw_decode(codes).astype(np.int32)
    # A-law is coarser than mu-law near zero (step 16 against 8): a step's worth may go.
    assert np.all(np.abs(back - original) <= np.abs(original) // 16 + 16)


@pytest.mark.parametrize("bot", [PCM16_16K, PCM16_24K, AudioFormat(Encoding.L16, 16000)])
def test_carrier_to_bot_and_back_keeps_the_signal(bot: AudioFormat) -> None:
    """PCMU 8k -> PCM16 bot rate -> PCMU 8k, 20 ms at a time, as a call does it."""
    tone = _tone(8000)
    carrier = encode(tone, PCMU_8K)
    to_bot = Transcoder(PCMU_8K, bot)
    to_carrier = Transcoder(bot, PCMU_8K)
    sent = [to_bot.convert(carrier[i : i + 160]) for i in range(0, len(carrier), 160)]
    assert {len(chunk) for chunk in sent} == {bot.bytes_per(20)}
    back = b"".join(to_carrier.convert(chunk) for chunk in sent)
    delay = round((to_bot.delay + to_carrier.delay) * 8000)
    through = decode(back, PCMU_8K)[delay + 80 :]
    reference = decode(carrier, PCMU_8K)[80 : len(carrier) - delay]
    assert _snr_db(reference, through) >= 30.0  # two mu-law quantisations dominate


def test_linear_formats_differ_only_in_byte_order() -> None:
    samples = _tone(8000, 0.02)
    big = Transcoder(AudioFormat(Encoding.PCM16, 8000), L16_8K).convert(encode(samples, PCM16_16K))
    assert big == samples.astype(">i2").tobytes()


@settings(max_examples=30, deadline=None)
@given(cuts=st.lists(st.integers(0, 1600), max_size=10))
def test_streaming_transcode_equals_one_shot(cuts: list[int]) -> None:
    carrier = encode(_tone(8000, 0.2), PCMU_8K)
    whole = Transcoder(PCMU_8K, PCM16_24K).convert(carrier)
    streaming = Transcoder(PCMU_8K, PCM16_24K)
    edges = [0, *sorted(cuts), len(carrier)]
    parts = [streaming.convert(carrier[a:b]) for a, b in itertools.pairwise(edges)]
    assert b"".join(parts) == whole


@pytest.mark.parametrize("source", [PCM16_16K, L16_8K])
def test_partial_16_bit_sample_is_an_error(source: AudioFormat) -> None:
    for target in (source, PCMU_8K):
        with pytest.raises(InvalidAudioError, match="whole 2-byte samples, got 321 bytes"):
            Transcoder(source, target).convert(b"\x00" * 321)


def test_non_bytes_input_is_refused() -> None:
    with pytest.raises(InvalidAudioError, match="must be bytes, not str"):
        Transcoder(PCMU_8K, PCM16_16K).convert("hello")  # type: ignore[arg-type]
    with pytest.raises(InvalidAudioError, match="must be bytes, not list"):
        Transcoder(PCMU_8K, PCMU_8K).convert([1, 2])  # type: ignore[arg-type]
