"""Audio for /play: WAV and raw G.711/PCM16 into the call's format."""

from __future__ import annotations

import io
import wave

import numpy as np
import pytest

from voxgate.bridge.control.play import audio_for_call
from voxgate.codecs.formats import PCMU_8K, AudioFormat, Encoding, decode
from voxgate.errors import ApiError


def _wav(samples: np.ndarray, rate: int, channels: int = 1, width: int = 2) -> bytes:
    out = io.BytesIO()
    with wave.open(out, "wb") as writer:
        writer.setnchannels(channels)
        writer.setsampwidth(width)
        writer.setframerate(rate)
        writer.writeframes(samples.tobytes())
    return out.getvalue()


def test_a_16k_wav_becomes_8k_mulaw_of_the_same_length_and_level() -> None:
    tone = (np.sin(2 * np.pi * 440 * np.arange(16000) / 16000) * 8000).astype("<i2")
    audio = audio_for_call(_wav(tone, 16000), "wav", 8000, PCMU_8K)
    assert len(audio) == 8000  # one second at 8 kHz, one byte a sample
    level = np.sqrt(np.mean(decode(audio, PCMU_8K)[1000:].astype(float) ** 2))
    assert 5000 < level < 6300  # 8000 / sqrt(2), within G.711's and the filter's error


def test_stereo_is_mixed_down_and_raw_formats_are_read() -> None:
    stereo = np.array([[1000, 3000]] * 800, dtype="<i2")
    audio = audio_for_call(
        _wav(stereo, 8000, channels=2), "wav", 8000, AudioFormat(Encoding.PCM16, 8000)
    )
    assert np.all(np.frombuffer(audio, "<i2") == 2000)
    assert audio_for_call(b"\xff" * 160, "mulaw", 8000, PCMU_8K) == b"\xff" * 160
    assert len(audio_for_call(b"\x00\x00" * 320, "pcm16", 16000, PCMU_8K)) == 160


@pytest.mark.parametrize(
    ("data", "kind", "problem"),
    [
        (b"RIFF....WAVEjunk", "wav", "not a PCM WAV"),
        (_wav(np.zeros(100, "u1"), 8000, width=1), "wav", "16-bit"),
        (_wav(np.zeros(100, "<i2"), 44100), "wav", "44100"),
        (b"", "mulaw", "no samples"),
        (b"\x00", "pcm16", "no samples"),
    ],
)
def test_unreadable_audio_is_a_422_naming_the_problem(data: bytes, kind: str, problem: str) -> None:
    with pytest.raises(ApiError) as caught:
        audio_for_call(data, kind, 8000, PCMU_8K)
    assert caught.value.status == 422 and problem in caught.value.message
