from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from numpy.typing import NDArray

from voxgate.codecs.resample import SUPPORTED_RATES, Resampler, lowpass
from voxgate.errors import InvalidAudioError, UnsupportedFormatError

PAIRS = [(a, b) for a, b in itertools.permutations(SUPPORTED_RATES, 2)]
REQUIRED_PAIRS = [
    (a, b) for a, b in itertools.permutations((8000, 16000, 24000, 48000), 2)
]  # what the media path must have; the rest come for free


def _tone(
    frequency: float, rate: int, seconds: float, amplitude: float = 12000.0
) -> NDArray[np.int16]:
    t = np.arange(int(rate * seconds)) / rate
    return np.round(amplitude * np.sin(2 * np.pi * frequency * t)).astype(np.int16)


def _noise(rate: int, seconds: float, seed: int = 7) -> NDArray[np.int16]:
    rng = np.random.default_rng(seed)
    return np.clip(rng.normal(0, 6000, int(rate * seconds)), -32768, 32767).astype(np.int16)


def _amplitude(signal: NDArray[np.float64], frequency: float, rate: int) -> float:
    """Amplitude of the sinusoid at ``frequency`` (least-squares fit with DC)."""
    t = np.arange(signal.size) / rate
    basis = np.column_stack(
        [np.sin(2 * np.pi * frequency * t), np.cos(2 * np.pi * frequency * t), np.ones_like(t)]
    )
    coefficients, *_ = np.linalg.lstsq(basis, signal, rcond=None)
    return float(np.hypot(coefficients[0], coefficients[1]))


def _settled(out: NDArray[np.int16], resampler: Resampler) -> NDArray[np.float64]:
    """The output without its first 5 ms (start-up transient)."""
    skip = int(resampler.rate_out * max(0.005, 2 * resampler.delay))
    return out[skip:].astype(np.float64)


@pytest.mark.parametrize(("rate_in", "rate_out"), PAIRS)
def test_frame_by_frame_equals_whole_signal(rate_in: int, rate_out: int) -> None:
    signal = _noise(rate_in, 0.5)
    whole = Resampler(rate_in, rate_out).process(signal)
    streaming = Resampler(rate_in, rate_out)
    frame = rate_in // 50
    frames = [streaming.process(signal[i : i + frame]) for i in range(0, signal.size, frame)]
    assert all(f.size == rate_out // 50 for f in frames)  # 20 ms in, 20 ms out, every time
    assert np.array_equal(np.concatenate(frames), whole)
    assert whole.size == signal.size * rate_out // rate_in


@settings(max_examples=40, deadline=None)
@given(
    pair=st.sampled_from(PAIRS),
    cuts=st.lists(st.integers(0, 4000), max_size=25),
)
def test_any_chunking_equals_whole_signal(pair: tuple[int, int], cuts: list[int]) -> None:
    rate_in, rate_out = pair
    signal = _noise(rate_in, 4000 / rate_in, seed=len(cuts))
    whole = Resampler(rate_in, rate_out).process(signal)
    streaming = Resampler(rate_in, rate_out)
    pieces = [streaming.process(piece) for piece in np.split(signal, sorted(cuts))]
    joined = np.concatenate(pieces)
    assert np.array_equal(joined, whole)


@pytest.mark.parametrize(("rate_in", "rate_out"), PAIRS)
def test_filter_meets_passband_and_stopband_bounds(rate_in: int, rate_out: int) -> None:
    resampler = Resampler(rate_in, rate_out)
    taps = resampler.prototype / (resampler.prototype_rate // rate_in)
    proto_rate = resampler.prototype_rate
    lower_nyquist = min(rate_in, rate_out) / 2
    response = np.abs(np.fft.rfft(taps, 1 << 17))
    freqs = np.fft.rfftfreq(1 << 17, 1 / proto_rate)
    passband = 20 * np.log10(response[freqs <= 0.9 * lower_nyquist])
    stopband = 20 * np.log10(response[freqs >= 1.1 * lower_nyquist].max())
    assert passband.max() - passband.min() <= 0.5
    assert np.abs(passband).max() <= 0.25
    assert stopband <= -60.0
    assert resampler.delay < 0.002


@pytest.mark.parametrize(("rate_in", "rate_out"), REQUIRED_PAIRS)
def test_tones_in_the_passband_keep_their_level(rate_in: int, rate_out: int) -> None:
    lower_nyquist = min(rate_in, rate_out) / 2
    for fraction in (0.05, 0.3, 0.6, 0.9):
        frequency = fraction * lower_nyquist
        resampler = Resampler(rate_in, rate_out)
        out = _settled(resampler.process(_tone(frequency, rate_in, 0.2)), resampler)
        gain_db = 20 * np.log10(_amplitude(out, frequency, rate_out) / 12000.0)
        assert abs(gain_db) <= 0.25, (frequency, gain_db)


@pytest.mark.parametrize(("rate_in", "rate_out"), [p for p in REQUIRED_PAIRS if p[0] > p[1]])
def test_decimation_rejects_what_would_alias(rate_in: int, rate_out: int) -> None:
    lower_nyquist = rate_out / 2
    for frequency in np.linspace(1.1 * lower_nyquist, 0.98 * rate_in / 2, 7):
        resampler = Resampler(rate_in, rate_out)
        out = _settled(resampler.process(_tone(frequency, rate_in, 0.2, 30000.0)), resampler)
        alias = abs(rate_out * round(frequency / rate_out) - frequency)
        level_db = 20 * np.log10(max(_amplitude(out, alias, rate_out), 1e-3) / 30000.0)
        assert level_db <= -60.0, (frequency, level_db)


@pytest.mark.parametrize(("rate_in", "rate_out"), [p for p in REQUIRED_PAIRS if p[0] < p[1]])
def test_interpolation_leaves_no_images(rate_in: int, rate_out: int) -> None:
    for frequency in (300.0, 1000.0, 0.85 * rate_in / 2):
        resampler = Resampler(rate_in, rate_out)
        out = _settled(resampler.process(_tone(frequency, rate_in, 0.3, 30000.0)), resampler)
        spectrum = np.abs(np.fft.rfft(out * np.blackman(out.size)))
        freqs = np.fft.rfftfreq(out.size, 1 / rate_out)
        images = spectrum[freqs >= 1.1 * rate_in / 2].max()
        assert 20 * np.log10(images / spectrum.max()) <= -60.0, frequency


def test_1khz_round_trip_8k_24k_8k_has_50db_snr() -> None:
    tone = _tone(1000.0, 8000, 1.0)
    up = Resampler(8000, 24000)
    down = Resampler(24000, 8000)
    out = np.concatenate(
        [down.process(up.process(tone[i : i + 160])) for i in range(0, tone.size, 160)]
    )
    settled = out[400:].astype(np.float64)
    t = np.arange(settled.size) / 8000
    basis = np.column_stack([np.sin(2 * np.pi * 1000 * t), np.cos(2 * np.pi * 1000 * t)])
    fit, *_ = np.linalg.lstsq(basis, settled, rcond=None)
    residual = settled - basis @ fit
    snr = 10 * np.log10(np.mean((basis @ fit) ** 2) / np.mean(residual**2))
    assert snr >= 50.0
    # and the round trip delays by exactly the two stated group delays
    delay_samples = (up.delay + down.delay) * 8000
    lag = np.angle(complex(fit[0], fit[1])) / (2 * np.pi) * 8  # cycles -> samples at 1 kHz
    assert abs(-lag % 8 - delay_samples % 8) < 0.05


@pytest.mark.parametrize(("rate_in", "rate_out"), PAIRS)
def test_impulse_response_is_the_prototype_filter_at_the_stated_delay(
    rate_in: int, rate_out: int
) -> None:
    resampler = Resampler(rate_in, rate_out)
    up = resampler.prototype_rate // rate_in
    down = resampler.prototype_rate // rate_out
    impulse = np.zeros(rate_in // 25, dtype=np.int16)
    at = rate_in // 100  # 10 ms in
    impulse[at] = 30000
    out = resampler.process(impulse)
    # Output n sits at prototype instant n*down, the impulse at at*up.
    lags = np.arange(out.size) * down - at * up
    inside = (lags >= 0) & (lags < resampler.prototype.size)
    expected = np.zeros(out.size)
    expected[inside] = np.rint(30000 * resampler.prototype[lags[inside]])
    assert np.array_equal(out, expected)
    assert np.argmax(out) / rate_out == pytest.approx(0.010 + resampler.delay)
    assert (resampler.delay * rate_out).is_integer()
    assert (resampler.delay * rate_in).is_integer()


def test_full_scale_input_saturates_instead_of_wrapping() -> None:
    square = np.where(np.arange(8000) % 40 < 20, 32767, -32768).astype(np.int16)
    out = Resampler(8000, 16000).process(square).astype(np.int32)
    # The band-limited square overshoots full scale: clipped, it touches both rails...
    assert out.max() == 32767
    assert out.min() == -32768
    # ...whereas a wrap-around would jump by about 65536 between neighbours.
    assert np.abs(np.diff(out)).max() < 40000


def test_reset_forgets_history() -> None:
    resampler = Resampler(8000, 16000)
    first = resampler.process(_noise(8000, 0.02))
    resampler.process(_noise(8000, 0.05, seed=3))
    resampler.reset()
    assert np.array_equal(resampler.process(_noise(8000, 0.02)), first)


def test_same_rate_is_identity() -> None:
    signal = _noise(16000, 0.02)
    resampler = Resampler(16000, 16000)
    assert np.array_equal(resampler.process(signal), signal)
    assert resampler.delay == 0.0


def test_lowpass_has_unit_dc_gain_and_is_symmetric() -> None:
    taps = lowpass(6, 45)
    assert taps.size == 91
    assert taps.sum() == pytest.approx(1.0)
    assert np.array_equal(taps, taps[::-1])


@pytest.mark.parametrize("rate", [0, -8000, 11025, 22050, 44100, 96000])
def test_unsupported_rates_are_refused(rate: int) -> None:
    with pytest.raises(UnsupportedFormatError, match=f"sample rate {rate} Hz is not supported"):
        Resampler(rate, 8000)
    with pytest.raises(UnsupportedFormatError, match=f"sample rate {rate} Hz"):
        Resampler(8000, rate)


@pytest.mark.parametrize(
    "bad", [np.zeros(160, np.float64), np.zeros((2, 80), np.int16), b"\x00" * 320]
)
def test_bad_audio_is_refused(bad: object) -> None:
    with pytest.raises(InvalidAudioError):
        Resampler(8000, 16000).process(bad)  # type: ignore[arg-type]


def test_prepare_filters_designs_every_pair_once_and_resamplers_share_them() -> None:
    from voxgate.codecs import resample  # noqa: PLC0415  (the module's private cache)

    resample.prepare_filters()
    pairs = {
        (b // math.gcd(a, b), a // math.gcd(a, b))
        for a in resample.SUPPORTED_RATES
        for b in resample.SUPPORTED_RATES
        if a != b
    }
    assert resample._coefficient_matrix.cache_info().currsize >= len(pairs)
    misses = resample._coefficient_matrix.cache_info().misses
    one, two = resample.Resampler(8000, 48000), resample.Resampler(8000, 48000)
    assert resample._coefficient_matrix.cache_info().misses == misses  # nothing designed
    assert one.prototype is two.prototype
    assert not one.prototype.flags.writeable  # shared: nobody may change it
