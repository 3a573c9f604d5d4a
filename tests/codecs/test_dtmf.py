"""Tests of voxgate.codecs.dtmf: the generator, the detector, and talk-off resistance."""

import itertools
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from numpy.typing import NDArray

from voxgate.codecs import dtmf as dtmf_module
from voxgate.codecs.dtmf import (
    COL_FREQS_HZ,
    DBM0_PEAK,
    DTMF_DIGITS,
    DTMF_FREQS_HZ,
    ROW_FREQS_HZ,
    DtmfDetector,
    DtmfDigit,
    dtmf_sequence,
    dtmf_tone,
)
from voxgate.errors import CodecError, InvalidAudioError, UnsupportedFormatError

FS = 8000
MS = FS // 1000  # samples per millisecond at 8 kHz
DURATION_TOLERANCE = 20 * MS

Signal = NDArray[np.float64]


# --- helpers ---------------------------------------------------------------------------------


def detect(
    signal: NDArray[np.int16], chunks: int | list[int] = 160, sample_rate: int = FS
) -> list[DtmfDigit]:
    """Feed ``signal`` in chunks of the given size(s), cycling, then flush."""
    detector = DtmfDetector(sample_rate)
    sizes = itertools.cycle([chunks] if isinstance(chunks, int) else chunks)
    found: list[DtmfDigit] = []
    position = 0
    while position < signal.size:
        size = next(sizes)
        found += detector.feed(signal[position : position + size])
        position += size
    return found + detector.flush()


def digits_of(found: list[DtmfDigit]) -> str:
    return "".join(d.digit for d in found)


def silence(ms: float, sample_rate: int = FS) -> NDArray[np.int16]:
    return np.zeros(round(ms * sample_rate / 1000), dtype=np.int16)


def padded(tone: NDArray[np.int16], before: int, after: int = 800) -> NDArray[np.int16]:
    return np.concatenate((np.zeros(before, dtype=np.int16), tone, np.zeros(after, dtype=np.int16)))


def to_int16(signal: Signal) -> NDArray[np.int16]:
    return np.clip(np.rint(signal), -32768, 32767).astype(np.int16)


def amplitude_spectrum(signal: NDArray[np.int16]) -> tuple[Signal, Signal]:
    """Frequencies and sine amplitudes (int16 units) of a signal, rectangular window."""
    spectrum = np.abs(np.fft.rfft(signal.astype(np.float64))) * 2 / signal.size
    return rfft_freqs(signal.size), spectrum


def rfft_freqs(n: int) -> Signal:
    freqs: Signal = np.arange(n // 2 + 1, dtype=np.float64) * (FS / n)
    return freqs


# --- generator -------------------------------------------------------------------------------


def test_keypad_layout() -> None:
    assert DTMF_DIGITS == "123A456B789C*0#D"
    assert ROW_FREQS_HZ == (697.0, 770.0, 852.0, 941.0)
    assert COL_FREQS_HZ == (1209.0, 1336.0, 1477.0, 1633.0)
    assert DTMF_FREQS_HZ["1"] == (697.0, 1209.0)
    assert DTMF_FREQS_HZ["5"] == (770.0, 1336.0)
    assert DTMF_FREQS_HZ["C"] == (852.0, 1633.0)
    assert DTMF_FREQS_HZ["*"] == (941.0, 1209.0)
    assert DTMF_FREQS_HZ["0"] == (941.0, 1336.0)
    assert DTMF_FREQS_HZ["#"] == (941.0, 1477.0)
    assert pytest.approx(32124 / 10 ** (3.17 / 20)) == DBM0_PEAK
    assert pytest.approx(22301.3, abs=0.1) == DBM0_PEAK


@pytest.mark.parametrize("digit", DTMF_DIGITS)
def test_tone_spectrum_has_both_tones_at_requested_level(digit: str) -> None:
    tone = dtmf_tone(digit, 1000, level_dbm0=-10.0)
    assert tone.dtype == np.int16
    assert tone.shape == (FS,)
    freqs, spectrum = amplitude_spectrum(tone)
    peaks = sorted(freqs[np.argsort(spectrum)[-2:]])
    assert peaks == [pytest.approx(f, abs=1) for f in DTMF_FREQS_HZ[digit]]
    # 1 s at 8 kHz: 1 Hz bins, and every DTMF frequency falls on one
    for f in DTMF_FREQS_HZ[digit]:
        level = 20 * math.log10(spectrum[round(f)] / DBM0_PEAK)
        assert level == pytest.approx(-10.0, abs=0.1)  # the 2.5 ms ramps cost 0.02 dB
    off_peaks = np.delete(spectrum, [round(f) for f in DTMF_FREQS_HZ[digit]])
    assert off_peaks.max() < spectrum.max() / 100


def test_tone_twist_and_frequency_error() -> None:
    row, col = 860, 1447  # +0.94 % and -2.03 %, on 1 Hz bins
    tone = dtmf_tone(
        "9", 1000, level_dbm0=-12.0, twist_db=6.0, freq_error=(row / 852 - 1, col / 1477 - 1)
    )
    _, spectrum = amplitude_spectrum(tone)
    assert 20 * math.log10(spectrum[row] / DBM0_PEAK) == pytest.approx(-15.0, abs=0.15)
    assert 20 * math.log10(spectrum[col] / DBM0_PEAK) == pytest.approx(-9.0, abs=0.15)
    both = dtmf_tone("9", 1000, freq_error=0.02)
    freqs, spectrum = amplitude_spectrum(both)
    peaks = sorted(freqs[np.argsort(spectrum)[-2:]])
    assert peaks == [pytest.approx(852 * 1.02, abs=1), pytest.approx(1477 * 1.02, abs=1)]


def test_tone_lengths_rates_and_saturation() -> None:
    assert dtmf_tone("1", 40).shape == (320,)
    assert dtmf_tone("1", 40, sample_rate=16000).shape == (640,)
    assert dtmf_tone("1", 0).shape == (0,)
    assert dtmf_tone("a", 10).tolist() == dtmf_tone("A", 10).tolist()
    loud = dtmf_tone("D", 100, level_dbm0=0.0)  # peaks add to 44 600: saturates
    assert loud.max() == 32767
    assert loud.min() == -32768
    quiet = dtmf_tone("D", 100, level_dbm0=-20.0)
    assert np.abs(quiet).max() <= 2 * DBM0_PEAK * 10 ** (-20 / 20) + 1


def test_sequence_layout() -> None:
    sequence = dtmf_sequence("19#", tone_ms=50, gap_ms=30)
    assert sequence.dtype == np.int16
    assert sequence.shape == ((3 * 50 + 2 * 30) * MS,)
    assert np.array_equal(sequence[: 50 * MS], dtmf_tone("1", 50))
    assert not sequence[50 * MS : 80 * MS].any()
    assert np.array_equal(sequence[80 * MS : 130 * MS], dtmf_tone("9", 50))
    assert dtmf_sequence("").shape == (0,)


@pytest.mark.parametrize("digit", ["E", "", "12", "x", " ", "+", 5, None])
def test_unknown_digit_is_rejected(digit: str) -> None:
    with pytest.raises(UnsupportedFormatError, match="DTMF digit"):
        dtmf_tone(digit, 100)


@pytest.mark.parametrize("digits", ["12E4", "1 2", "1,2", "#5p"])
def test_sequence_with_unknown_digit_is_rejected(digits: str) -> None:
    with pytest.raises(UnsupportedFormatError, match="DTMF digit"):
        dtmf_sequence(digits)


@pytest.mark.parametrize("rate", [0, -8000, 4000, 7999, 8000.0, True])
def test_generator_rejects_bad_sample_rate(rate: int) -> None:
    with pytest.raises(UnsupportedFormatError, match="sample rate"):
        dtmf_tone("1", 100, sample_rate=rate)
    with pytest.raises(UnsupportedFormatError, match="sample rate"):
        dtmf_sequence("1", sample_rate=rate)


def test_generator_rejects_bad_numbers() -> None:
    with pytest.raises(CodecError, match="duration_ms"):
        dtmf_tone("1", -5)
    with pytest.raises(CodecError, match="gap_ms"):
        dtmf_sequence("12", gap_ms=-1)
    with pytest.raises(CodecError, match="level_dbm0"):
        dtmf_tone("1", 100, level_dbm0=math.nan)
    with pytest.raises(CodecError, match="freq_error"):
        dtmf_tone("1", 100, freq_error=(0.0, math.inf))


# --- detector: API and errors ----------------------------------------------------------------


@pytest.mark.parametrize("rate", [0, 11025, 44100, 48000, 8000.5, True])
def test_detector_rejects_unsupported_rate(rate: int) -> None:
    with pytest.raises(UnsupportedFormatError, match="sample rate"):
        DtmfDetector(rate)


@pytest.mark.parametrize(
    ("audio", "complaint"),
    [
        (np.zeros(160, dtype=np.float32), "dtype int16, not float32"),
        (np.zeros(160, dtype=np.int32), "dtype int16, not int32"),
        (np.zeros(160, dtype=np.uint8), "dtype int16, not uint8"),
        (np.zeros((80, 2), dtype=np.int16), "one-dimensional, not 2-D"),
        (np.zeros((), dtype=np.int16), "one-dimensional, not 0-D"),
        (b"\x00" * 320, "numpy int16 array, not bytes"),
        ([0] * 160, "numpy int16 array, not list"),
    ],
)
def test_detector_rejects_bad_audio(audio: NDArray[np.int16], complaint: str) -> None:
    with pytest.raises(InvalidAudioError, match=complaint):
        DtmfDetector().feed(audio)


def test_digit_record_and_empty_feeds() -> None:
    detector = DtmfDetector()
    assert detector.sample_rate == FS
    assert detector.feed(np.zeros(0, dtype=np.int16)) == []
    assert detector.flush() == []
    digit = DtmfDigit("5", 100, 800)
    with pytest.raises(AttributeError):
        digit.digit = "6"  # type: ignore[misc]


def test_flush_ends_a_tone_still_sounding() -> None:
    detector = DtmfDetector()
    signal = np.concatenate((silence(100), dtmf_tone("7", 200)))
    assert detector.feed(signal) == []
    (found,) = detector.flush()
    assert found.digit == "7"
    assert abs(found.start - 100 * MS) <= 5 * MS
    assert found.start + found.duration <= signal.size
    assert abs(found.duration - 200 * MS) <= DURATION_TOLERANCE
    assert detector.flush() == []
    # the detector carries on: positions keep counting from the first sample fed
    after = detector.feed(np.concatenate((silence(100), dtmf_tone("8", 100), silence(100))))
    assert [d.digit for d in after] == ["8"]
    assert abs(after[0].start - 400 * MS) <= 5 * MS


# --- detector: finding tones -----------------------------------------------------------------


def assert_found(found: list[DtmfDigit], digits: str, starts: list[int], duration: int) -> None:
    assert digits_of(found) == digits
    for digit, start in zip(found, starts, strict=True):
        assert abs(digit.start - start) <= DURATION_TOLERANCE
        assert abs(digit.duration - duration) <= DURATION_TOLERANCE


@pytest.mark.parametrize(("tone_ms", "gap_ms"), [(100, 60), (40, 40), (60, 20)])
def test_all_digits_in_20ms_frames(tone_ms: int, gap_ms: int) -> None:
    signal = np.concatenate(
        (silence(50), dtmf_sequence(DTMF_DIGITS, tone_ms=tone_ms, gap_ms=gap_ms))
    )
    found = detect(signal, 160)
    starts = [(50 + i * (tone_ms + gap_ms)) * MS for i in range(16)]
    assert_found(found, DTMF_DIGITS, starts, tone_ms * MS)


def test_repeated_digit_is_reported_each_time() -> None:
    signal = dtmf_sequence("55500", tone_ms=40, gap_ms=40)
    assert digits_of(detect(signal)) == "55500"


def test_back_to_back_digits_and_short_gaps_are_separated() -> None:
    no_gap = np.concatenate([dtmf_tone(digit, 80) for digit in "12AD"])
    assert digits_of(detect(no_gap)) == "12AD"
    for offset in range(0, 80, 8):
        ten_ms_gaps = padded(dtmf_sequence("5555", tone_ms=50, gap_ms=10), offset)
        assert digits_of(detect(ten_ms_gaps)) == "5555"


def test_digits_at_16khz() -> None:
    signal = np.concatenate((silence(50, 16000), dtmf_sequence(DTMF_DIGITS, sample_rate=16000)))
    found = detect(signal, 320, 16000)
    starts = [(50 + i * 160) * 16 for i in range(16)]
    assert digits_of(found) == DTMF_DIGITS
    for digit, start in zip(found, starts, strict=True):
        assert abs(digit.start - start) <= 20 * 16
        assert abs(digit.duration - 100 * 16) <= 20 * 16


@pytest.mark.parametrize("tone_ms", [35, 40, 45, 60])
def test_tones_from_35ms_are_found_at_any_frame_alignment(tone_ms: int) -> None:
    for offset in range(0, 160, 5):
        found = detect(padded(dtmf_tone("6", tone_ms), 800 + offset))
        assert_found(found, "6", [800 + offset], tone_ms * MS)


@pytest.mark.parametrize("tone_ms", [10, 20, 24])
def test_blips_up_to_24ms_are_never_found(tone_ms: int) -> None:
    for offset in range(0, 160, 2):
        assert detect(padded(dtmf_tone("6", tone_ms), 800 + offset)) == []


def test_detection_delay_is_under_25ms_after_tone_end() -> None:
    delays = []
    for offset in range(0, 80, 4):
        tone_end = 800 + offset + 100 * MS
        signal = padded(dtmf_tone("#", 100), 800 + offset, 400 * MS)
        detector = DtmfDetector()
        for position in range(0, signal.size, 8):
            if detector.feed(signal[position : position + 8]):
                delays.append(position + 8 - tone_end)
                break
    assert len(delays) == 20
    assert min(delays) >= 10 * MS
    assert max(delays) <= 25 * MS


@pytest.mark.parametrize("group", ["row", "column"])
@pytest.mark.parametrize("index", range(4))
@pytest.mark.parametrize("sign", [1, -1])
def test_frequency_tolerance(group: str, index: int, sign: int) -> None:
    digit = DTMF_DIGITS[index * 4 + 1] if group == "row" else DTMF_DIGITS[4 + index]

    def tone(error: float) -> NDArray[np.int16]:
        errors = (sign * error, 0.0) if group == "row" else (0.0, sign * error)
        return padded(dtmf_tone(digit, 100, freq_error=errors), 400)

    assert digits_of(detect(tone(0.015))) == digit
    assert detect(tone(0.035)) == []
    assert detect(tone(0.05)) == []


@pytest.mark.parametrize("twist_db", [-8.0, -4.0, 4.0, 8.0])
def test_twist_up_to_8db_either_way(twist_db: float) -> None:
    for digit in DTMF_DIGITS:
        found = detect(padded(dtmf_tone(digit, 60, twist_db=twist_db), 400))
        assert digits_of(found) == digit


@pytest.mark.parametrize("twist_db", [-8.0, 8.0])
@pytest.mark.parametrize("freq_error", [-0.015, 0.015])
def test_twist_detuning_and_low_level_together(twist_db: float, freq_error: float) -> None:
    """The accepted extremes combined: the weak tone is at -29 dBm0 and 1.5 % off."""
    for digit in DTMF_DIGITS:
        tone = dtmf_tone(digit, 60, level_dbm0=-25.0, twist_db=twist_db, freq_error=freq_error)
        assert digits_of(detect(padded(tone, 400))) == digit


@pytest.mark.parametrize("twist_db", [-14.0, 14.0])
def test_excessive_twist_is_rejected(twist_db: float) -> None:
    assert detect(padded(dtmf_tone("5", 100, twist_db=twist_db), 400)) == []


@pytest.mark.parametrize("level_dbm0", [0.0, -3.0, -10.0, -20.0, -25.0, -30.0])
def test_levels_from_0_to_minus_30_dbm0(level_dbm0: float) -> None:
    signal = dtmf_sequence(DTMF_DIGITS, tone_ms=50, gap_ms=50, level_dbm0=level_dbm0)
    assert digits_of(detect(signal)) == DTMF_DIGITS


@pytest.mark.parametrize("level_dbm0", [-40.0, -50.0, -60.0])
def test_quiet_tones_are_rejected(level_dbm0: float) -> None:
    assert detect(dtmf_sequence("159D", level_dbm0=level_dbm0)) == []


def test_silence_gate_hides_nothing_the_analysis_would_accept(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Around the -36 dBm0 floor, with twist, detection is the same with the gate switched off."""
    cases = [(level, twist) for level in np.arange(-33.0, -38.5, -0.5) for twist in (-8, 0, 8)]
    signals = [
        padded(dtmf_tone("D", 60, level_dbm0=level + abs(twist) / 2, twist_db=twist), 400)
        for level, twist in cases
    ]
    gated = [digits_of(detect(signal)) for signal in signals]
    monkeypatch.setattr(dtmf_module, "_SILENCE_POWER", 0.0)
    ungated = [digits_of(detect(signal)) for signal in signals]
    assert gated == ungated
    assert "D" in gated  # the sweep does cross the detection floor...
    assert "" in gated  # ...from both sides


@pytest.mark.parametrize(("snr_db", "seed"), [(20.0, 1), (15.0, 2), (15.0, 3), (12.0, 4)])
def test_white_noise(snr_db: float, seed: int) -> None:
    """SNR: power of the dual tone over power of the noise (which spans the whole 0-4 kHz)."""
    tones = padded(dtmf_sequence(DTMF_DIGITS), 400, 400).astype(np.float64)
    tone_power = 2 * (DBM0_PEAK * 10 ** (-7 / 20)) ** 2 / 2
    rng = np.random.default_rng(seed)
    noise = rng.normal(scale=math.sqrt(tone_power / 10 ** (snr_db / 10)), size=tones.size)
    found = detect(to_int16(tones + noise))
    starts = [(50 + i * 160) * MS for i in range(16)]
    assert_found(found, DTMF_DIGITS, starts, 100 * MS)


# --- talk-off: speech, noise and music must not trigger the detector --------------------------

VOWEL_FORMANTS_HZ = [
    (730, 1090, 2440),
    (270, 2290, 3010),
    (300, 870, 2240),
    (530, 1840, 2480),
    (570, 840, 2410),
    (660, 1720, 2410),
    (440, 1020, 2240),
    (490, 1350, 1690),
    (390, 1990, 2550),
    (640, 1190, 2390),
]
FORMANT_BANDWIDTHS_HZ = (80.0, 100.0, 150.0)


def formant_response(freqs: Signal, formants: tuple[int, int, int]) -> NDArray[np.complex128]:
    """Frequency response of a cascade of two-pole resonators, unity gain at 0 Hz."""
    z1: NDArray[np.complex128] = np.exp(-2j * np.pi * freqs / FS)
    response: NDArray[np.complex128] = np.ones_like(z1)
    for centre, bandwidth in zip(formants, FORMANT_BANDWIDTHS_HZ, strict=True):
        radius = math.exp(-math.pi * bandwidth / FS)
        a1 = -2 * radius * math.cos(2 * math.pi * centre / FS)
        response = response * (1 + a1 + radius**2) / (1 + a1 * z1 + radius**2 * z1**2)
    return response


def glottal_pulses(pitch_hz: Signal) -> Signal:
    """One unit pulse per pitch period of a (time-varying) pitch contour."""
    cycles = np.floor(np.cumsum(pitch_hz / FS))
    pulses = np.zeros(pitch_hz.size)
    pulses[np.flatnonzero(np.diff(cycles)) + 1] = 1.0
    return pulses


def syllable(rng: np.random.Generator) -> Signal:
    """A voiced syllable: a gliding, wobbling pulse train through one vowel's formants."""
    n = int(rng.uniform(0.1, 0.4) * FS)
    t = np.arange(n) / FS
    pitch = rng.uniform(80, 300) * (1 + rng.uniform(-0.3, 0.3) * t / t[-1])
    pitch *= 1 + 0.02 * np.sin(2 * np.pi * rng.uniform(3, 7) * t)
    pitch = np.clip(pitch, 80, 300)
    padded_n = n + 1024
    freqs = rfft_freqs(padded_n)
    formants = VOWEL_FORMANTS_HZ[rng.integers(len(VOWEL_FORMANTS_HZ))]
    glottal_tilt = 1 / np.sqrt(1 + (freqs / 200) ** 2)
    spectrum: NDArray[np.complex128] = np.fft.rfft(glottal_pulses(pitch), padded_n)
    shaped = spectrum * formant_response(freqs, formants) * glottal_tilt
    voiced = np.fft.irfft(shaped, padded_n)
    voiced *= np.sin(np.pi * np.arange(padded_n) / padded_n) ** rng.uniform(0.5, 2)
    rms = math.sqrt(float(np.mean(voiced**2))) + 1e-9
    result: Signal = voiced / rms * rng.uniform(300, 8000)
    return result


def noise_burst(rng: np.random.Generator, max_ms: float = 150) -> Signal:
    """A fricative- or plosive-like burst: white or high-passed noise under a Hann envelope."""
    n = int(rng.uniform(0.02, max_ms / 1000) * FS)
    noise = rng.normal(size=n)
    if rng.random() < 0.5:
        noise = np.diff(noise, prepend=0.0)
    result: Signal = noise * np.hanning(n) * rng.uniform(200, 6000)
    return result


def speech_like(seconds: float, seed: int) -> NDArray[np.int16]:
    rng = np.random.default_rng(seed)
    parts: list[Signal] = []
    length = 0
    while length < seconds * FS:
        parts.append(syllable(rng))
        if rng.random() < 0.4:
            parts.append(noise_burst(rng))
        if rng.random() < 0.3:
            parts.append(np.zeros(int(rng.uniform(0.02, 0.2) * FS)))
        length = sum(p.size for p in parts)
    return to_int16(np.concatenate(parts)[: int(seconds * FS)])


def noise_bursts(seconds: float, seed: int) -> NDArray[np.int16]:
    rng = np.random.default_rng(seed)
    parts: list[Signal] = []
    while sum(p.size for p in parts) < seconds * FS:
        parts.append(noise_burst(rng, 400))
        parts.append(np.zeros(int(rng.uniform(0.0, 0.1) * FS)))
    return to_int16(np.concatenate(parts)[: int(seconds * FS)])


def note_hz(semitones_from_a4: int) -> float:
    return 440.0 * 2 ** (semitones_from_a4 / 12)


F5, A_SHARP5, G5 = note_hz(8), note_hz(13), note_hz(10)  # 698.5, 932.3, 784.0 Hz
E6, F_SHARP6, G_SHARP6 = note_hz(19), note_hz(21), note_hz(23)  # 1318.5, 1480.0, 1661.2 Hz


def instrument_note(
    f0: float, seconds: float, rng: np.random.Generator, *, decay_s: float | None
) -> Signal:
    """Every harmonic below 4 kHz at amplitude 1/k, random phases, 10 ms attack and release."""
    n = int(seconds * FS)
    t = np.arange(n) / FS
    harmonics = np.arange(1, int(3999 // f0) + 1)
    phases = rng.uniform(0, 2 * np.pi, harmonics.size)
    tone = (np.sin(2 * np.pi * f0 * np.outer(t, harmonics) + phases) / harmonics).sum(axis=1)
    envelope = np.minimum(1.0, np.minimum(t, t[::-1]) / 0.01)
    if decay_s is not None:
        envelope *= np.exp(-t / decay_s)
    result: Signal = tone * envelope
    return result


def chord(
    notes: list[float], seconds: float, rng: np.random.Generator, *, decay_s: float | None
) -> Signal:
    result: Signal = np.sum([instrument_note(f, seconds, rng, decay_s=decay_s) for f in notes], 0)
    return result


DTMF_LIKE_CHORDS = [
    (F5, F_SHARP6),  # '3': 0.2 % and 0.2 % off
    (A_SHARP5, E6),  # '0': 0.9 % and 1.3 % off
    (F5, E6),  # '2'
    (A_SHARP5, F_SHARP6),  # '#'
    (G5, G_SHARP6),  # 'C' region: 1.8 % and 1.7 % off
]


def music(seconds: float, seed: int) -> NDArray[np.int16]:
    """Melodies over chords, with the DTMF-like chords above held and struck at many levels."""
    rng = np.random.default_rng(seed)
    parts: list[Signal] = []
    for low, high in DTMF_LIKE_CHORDS:
        for decay in (None, 0.4):
            for notes in ([low, high], [low, high, low / 2], [low / 2, low, high]):
                parts.append(chord(notes, 0.4, rng, decay_s=decay) * rng.uniform(500, 9000))
    while sum(p.size for p in parts) < seconds * FS:
        note_s = rng.uniform(0.1, 0.5)
        melody = note_hz(int(rng.integers(-12, 27)))  # A3 .. B6
        root = note_hz(int(rng.integers(-24, 4)))
        triad = [root, root * 2 ** (4 / 12), root * 2 ** (7 / 12)]
        decay = None if rng.random() < 0.5 else float(rng.uniform(0.1, 1.0))
        mix = chord([melody], note_s, rng, decay_s=decay) * 2 + chord(
            triad, note_s, rng, decay_s=decay
        )
        parts.append(mix * rng.uniform(300, 4000))
    return to_int16(np.concatenate(parts)[: int(seconds * FS)])


TALK_OFF_SECONDS = {"speech": 36.0, "noise bursts": 8.0, "music": 40.0}


@pytest.mark.parametrize("name", ["speech", "noise bursts", "music"])
def test_talk_off(name: str) -> None:
    seconds = TALK_OFF_SECONDS[name]
    if name == "speech":
        signal = np.concatenate([speech_like(seconds / 3, seed) for seed in range(3)])
    elif name == "noise bursts":
        signal = noise_bursts(seconds, 10)
    else:
        signal = np.concatenate([music(seconds / 2, seed) for seed in (20, 21)])
    assert signal.size == round(seconds * FS)
    assert np.abs(signal).max() > 10000  # loud enough to matter
    assert detect(signal, 160) == []
    assert detect(signal, signal.size) == []


def test_talk_off_material_is_at_least_60_seconds() -> None:
    assert sum(TALK_OFF_SECONDS.values()) >= 60


@pytest.mark.parametrize(("low", "high", "digit"), [(F5, F_SHARP6, "3"), (A_SHARP5, E6, "0")])
def test_pure_sines_on_a_music_chord_are_dtmf(low: float, high: float, digit: str) -> None:
    """The chords that must not trigger do trigger without their harmonics: purity decides."""
    t = np.arange(100 * MS) / FS
    pure = 4000 * (np.sin(2 * np.pi * low * t) + np.sin(2 * np.pi * high * t))
    assert digits_of(detect(padded(to_int16(pure), 400))) == digit


# --- feeding: chunking must not matter -------------------------------------------------------


def mixed_signal() -> NDArray[np.int16]:
    rng = np.random.default_rng(99)
    tones = dtmf_sequence("0123456789*#ABCD", tone_ms=45, gap_ms=45).astype(np.float64)
    noisy = tones + rng.normal(scale=300, size=tones.size)
    return np.concatenate((speech_like(1.0, 5), to_int16(noisy), music(1.0, 6), to_int16(tones)))


@pytest.mark.parametrize("chunks", [7, 333, [1, 500, 13, 160, 2], 10**6])
def test_chunking_does_not_change_the_result(chunks: int | list[int]) -> None:
    signal = mixed_signal()
    reference = detect(signal, 160)
    assert digits_of(reference) == "0123456789*#ABCD" * 2
    assert detect(signal, chunks) == reference


@settings(max_examples=40, deadline=None)
@given(
    digits=st.text(alphabet=DTMF_DIGITS, min_size=1, max_size=6),
    tone_ms=st.integers(40, 150),
    gap_ms=st.integers(40, 120),
    lead_samples=st.integers(0, 400),
    chunks=st.lists(st.integers(1, 600), min_size=1, max_size=4),
)
def test_sequences_round_trip(
    digits: str, tone_ms: int, gap_ms: int, lead_samples: int, chunks: list[int]
) -> None:
    signal = padded(dtmf_sequence(digits, tone_ms=tone_ms, gap_ms=gap_ms), lead_samples, 0)
    found = detect(signal, chunks)
    starts = [lead_samples + i * (tone_ms + gap_ms) * MS for i in range(len(digits))]
    assert_found(found, digits, starts, tone_ms * MS)
    assert detect(signal, signal.size) == found
