"""The SDK's audio helpers: int16 conversion, whole-signal resampling, encoding to the call's
format (whole and streamed), WAV files and tones."""

from __future__ import annotations

from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import numpy.typing as npt
import pytest
import soundfile

from voxgate.bots.sdk import as_int16, load_audio, save_wav, to_format, tone
from voxgate.bots.sdk.audio import StreamEncoder, resample_whole
from voxgate.codecs.formats import AudioFormat

RATES = [8000, 16000, 24000, 32000, 48000]


def dominant_frequency(samples: npt.NDArray[Any], rate: int) -> float:
    spectrum = np.abs(np.fft.rfft(samples.astype(np.float64) * np.hanning(len(samples))))
    return float(np.argmax(spectrum) * rate / len(samples))


def pcm16(data: bytes) -> npt.NDArray[np.int16]:
    return np.frombuffer(data, dtype="<i2")


# --- as_int16 ------------------------------------------------------------------------------

AS_INT16_VECTORS = [
    pytest.param(
        np.array([0.0, 0.5, -0.5, 1.0, -1.0]), [0, 16384, -16384, 32767, -32767], id="floats-scaled"
    ),
    pytest.param(
        np.array([2.0, -2.0, 1.5, -1.00004]), [32767, -32768, 32767, -32768], id="floats-clipped"
    ),
    pytest.param(np.array([0.25, -0.25], dtype=np.float32), [8192, -8192], id="float32"),
    pytest.param(
        np.array([40000, -40000, 5, -5], dtype=np.int32), [32767, -32768, 5, -5], id="int32-clipped"
    ),
    pytest.param(np.array([2**40, -(2**40)], dtype=np.int64), [32767, -32768], id="int64-clipped"),
    pytest.param(np.array([200, 0], dtype=np.uint8), [200, 0], id="uint8"),
    pytest.param(
        np.array([1, -32768, 32767], dtype=np.int16), [1, -32768, 32767], id="int16-as-is"
    ),
    pytest.param(np.array([], dtype=np.float64), [], id="empty"),
]


@pytest.mark.parametrize(("samples", "expected"), AS_INT16_VECTORS)
def test_as_int16(samples: npt.NDArray[Any], expected: list[int]) -> None:
    converted = as_int16(samples)
    assert converted.dtype == np.int16
    assert converted.ndim == 1
    assert converted.tolist() == expected


def test_as_int16_keeps_int16_arrays_as_they_are() -> None:
    samples = np.arange(10, dtype=np.int16)
    assert as_int16(samples) is samples


@pytest.mark.parametrize(
    "samples",
    [
        pytest.param(np.zeros((2, 10)), id="2-d-stereo"),
        pytest.param(np.zeros((10, 1), dtype=np.int16), id="2-d-column"),
        pytest.param(np.float64(0.5), id="0-d"),
        pytest.param(np.array(["a", "b"]), id="strings"),
        pytest.param(np.array([True, False]), id="booleans"),
    ],
)
def test_as_int16_refuses_what_is_not_mono_numbers(samples: npt.NDArray[Any]) -> None:
    with pytest.raises(ValueError, match=r"mono|integer or float"):
        as_int16(samples)


# --- resampling and encoding -------------------------------------------------------------

PAIRS = [(a, b) for a in RATES for b in RATES if a != b]


@pytest.mark.parametrize(("rate_in", "rate_out"), PAIRS)
def test_resample_whole_keeps_a_click_in_place(rate_in: int, rate_out: int) -> None:
    """A click at sample n lands at n * rate_out / rate_in, within one sample."""
    samples = np.zeros(rate_in // 2, dtype=np.int16)  # 0.5 s
    click = rate_in // 5  # at 200 ms
    samples[click] = 30000
    out = resample_whole(samples, rate_in, rate_out)
    assert out.dtype == np.int16
    assert len(out) == len(samples) * rate_out // rate_in
    assert abs(int(np.argmax(np.abs(out))) - click * rate_out / rate_in) <= 1


def test_resample_whole_at_the_same_rate_is_the_signal() -> None:
    samples = np.arange(-100, 100, dtype=np.int16)
    assert resample_whole(samples, 16000, 16000) is samples


FORMAT_LENGTHS = [
    pytest.param(16000, "pcmu/8000", 8000, id="16k-to-pcmu"),
    pytest.param(8000, "pcma/8000", 8000, id="8k-to-pcma"),
    pytest.param(16000, "pcm16/16000", 32000, id="16k-to-pcm16"),
    pytest.param(48000, "l16/24000", 48000, id="48k-to-l16-24k"),
    pytest.param(8000, "pcm16/48000", 96000, id="8k-to-pcm16-48k"),
    pytest.param(24000, "pcm16/32000", 64000, id="24k-to-pcm16-32k"),
]


@pytest.mark.parametrize(("rate", "fmt", "length"), FORMAT_LENGTHS)
def test_to_format_lengths_for_one_second(rate: int, fmt: str, length: int) -> None:
    data = to_format(tone(1000, 1000, rate), rate, AudioFormat.parse(fmt))
    assert isinstance(data, bytes)
    assert len(data) == length


def test_to_format_encodes_as_the_format_says(audioop: ModuleType) -> None:
    samples = tone(440, 100, 8000)
    assert to_format(samples, 8000, AudioFormat.parse("pcmu/8000")) == audioop.lin2ulaw(
        samples.astype("<i2").tobytes(), 2
    )
    assert (
        to_format(samples, 8000, AudioFormat.parse("pcm16/8000")) == samples.astype("<i2").tobytes()
    )
    assert (
        to_format(samples, 8000, AudioFormat.parse("l16/8000")) == samples.astype(">i2").tobytes()
    )


@pytest.mark.parametrize("piece", [1, 7, 160, 480, 1001])
@pytest.mark.parametrize(
    ("rate_in", "fmt"), [(24000, "pcm16/16000"), (48000, "pcm16/8000"), (8000, "l16/16000")]
)
def test_stream_encoder_in_pieces_equals_one_piece(piece: int, rate_in: int, fmt: str) -> None:
    media_format = AudioFormat.parse(fmt)
    samples = tone(697, 700, rate_in) // 2 + tone(1209, 700, rate_in) // 2  # a DTMF "1"
    whole = StreamEncoder(media_format).encode(samples, rate_in)
    encoder = StreamEncoder(media_format)
    pieces = b"".join(
        encoder.encode(samples[start : start + piece], rate_in)
        for start in range(0, len(samples), piece)
    )
    decode = (lambda d: np.frombuffer(d, dtype=">i2")) if media_format.encoding == "l16" else pcm16
    assert len(pieces) == len(whole)  # a rate ratio's remainder waits for the next piece
    assert np.max(np.abs(decode(whole).astype(int) - decode(pieces)), initial=0) <= 1


def test_stream_encoder_at_the_call_rate_is_plain_encoding() -> None:
    samples = tone(440, 200, 16000)
    encoder = StreamEncoder(AudioFormat.parse("pcm16/16000"))
    assert encoder.encode(samples, 16000) == samples.astype("<i2").tobytes()


def test_stream_encoder_starts_afresh_at_a_new_input_rate() -> None:
    fmt = AudioFormat.parse("pcm16/16000")
    encoder = StreamEncoder(fmt)
    encoder.encode(tone(440, 200, 24000), 24000)
    second = encoder.encode(tone(440, 200, 48000), 48000)
    assert second == StreamEncoder(fmt).encode(tone(440, 200, 48000), 48000)


# --- WAV files -----------------------------------------------------------------------------


@pytest.mark.parametrize("rate", [8000, 16000, 44100])
def test_save_wav_then_load_audio_round_trip(rate: int) -> None:
    samples = tone(523, 300, rate) - 7
    save_wav("mono.wav", samples, rate)
    info = soundfile.info("mono.wav")
    assert (info.channels, info.samplerate, info.subtype, info.format) == (1, rate, "PCM_16", "WAV")
    loaded, loaded_rate = load_audio(Path("mono.wav"))
    assert loaded_rate == rate
    assert loaded.dtype == np.int16 and loaded.ndim == 1
    assert np.array_equal(loaded, samples)


def test_save_wav_takes_floats() -> None:
    save_wav("floats.wav", np.array([0.0, 0.5, -1.0, 2.0]), 8000)
    loaded, _ = load_audio("floats.wav")
    assert loaded.tolist() == [0, 16384, -32767, 32767]


def test_a_stereo_file_is_mixed_down_to_mono() -> None:
    left = tone(440, 200, 16000, level_dbfs=-6)
    right = tone(1000, 200, 16000, level_dbfs=-6)
    soundfile.write("stereo.wav", np.stack([left, right], axis=1), 16000, subtype="PCM_16")
    loaded, rate = load_audio("stereo.wav")
    assert rate == 16000
    assert loaded.ndim == 1 and len(loaded) == len(left)
    mean = (left.astype(np.int32) + right) / 2
    assert np.max(np.abs(loaded - mean)) <= 1


def test_load_audio_of_a_missing_file_raises() -> None:
    with pytest.raises(soundfile.LibsndfileError):
        load_audio("missing.wav")


# --- tones ---------------------------------------------------------------------------------

TONES = [
    pytest.param(440, 1000, 8000, -12.0, id="440Hz-8k--12dB"),
    pytest.param(1000, 500, 16000, -3.0, id="1kHz-16k--3dB"),
    pytest.param(3000, 250, 48000, -30.0, id="3kHz-48k--30dB"),
    pytest.param(350, 1000, 24000, 0.0, id="350Hz-24k-full-scale"),
]


@pytest.mark.parametrize(("frequency", "duration_ms", "rate", "level"), TONES)
def test_tone_has_its_frequency_level_length_and_ramps(
    frequency: float, duration_ms: int, rate: int, level: float
) -> None:
    samples = tone(frequency, duration_ms, rate, level_dbfs=level)
    assert samples.dtype == np.int16
    assert len(samples) == rate * duration_ms // 1000
    ramp = rate * 5 // 1000
    steady = samples[ramp:-ramp]
    peak = 32767 * 10 ** (level / 20)
    assert np.max(np.abs(steady)) == pytest.approx(peak, rel=0.01, abs=2)
    rms = np.sqrt(np.mean(steady.astype(np.float64) ** 2))
    assert 20 * np.log10(rms / 32767) == pytest.approx(level - 3.01, abs=0.1)
    assert dominant_frequency(samples, rate) == pytest.approx(frequency, abs=1000 / duration_ms + 1)
    assert samples[0] == 0 and abs(int(samples[-1])) <= 1  # no click at either end
    assert np.max(np.abs(samples[: ramp // 4])) < peak / 4  # faded in


def test_tone_default_level_is_minus_12_dbfs() -> None:
    assert np.max(np.abs(tone(1000, 100, 8000))) == pytest.approx(
        32767 * 10 ** (-12 / 20), rel=0.01
    )


def test_very_short_tones() -> None:
    assert len(tone(440, 0, 8000)) == 0
    assert len(tone(440, 4, 8000)) == 32  # shorter than two ramps: ramps of half each


def test_as_int16_takes_nan_as_silence_and_infinities_as_full_scale() -> None:
    samples = np.array([np.nan, np.inf, -np.inf, 0.5])
    assert as_int16(samples).tolist() == [0, 32767, -32767, 16384]
