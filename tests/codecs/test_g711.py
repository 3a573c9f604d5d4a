from __future__ import annotations

import io
from collections.abc import Callable
from functools import partial
from types import ModuleType
from typing import Any

import av
import numpy as np
import pytest
import soundfile
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from numpy.typing import NDArray

from voxgate.codecs import g711
from voxgate.errors import InvalidAudioError, VoxgateError

EVERY_SAMPLE = np.arange(-32768, 32768, dtype=np.int16)
EVERY_CODE = np.arange(256, dtype=np.uint8)

# (linear sample, mu-law code, A-law code): both directions are checked below.
ENCODE_VECTORS = [
    (0, 0xFF, 0xD5),
    (1, 0xFF, 0xD5),
    (3, 0xFF, 0xD5),
    (4, 0xFE, 0xD5),
    (-1, 0x7E, 0x55),
    (-5, 0x7E, 0x55),
    (100, 0xF2, 0xD3),
    (-100, 0x72, 0x53),
    (1000, 0xCE, 0xFA),
    (-1000, 0x4E, 0x7A),
    (8000, 0xA0, 0x8A),
    (-8000, 0x20, 0x0A),
    (31000, 0x81, 0xAB),
    (-31000, 0x01, 0x2B),
    (32767, 0x80, 0xAA),
    (-32768, 0x00, 0x2A),
]
# (code, mu-law value, A-law value)
DECODE_VECTORS = [
    (0x00, -32124, -5504),
    (0x0F, -16764, -6784),
    (0x55, -716, -8),
    (0x7E, -8, -880),
    (0x7F, 0, -848),
    (0x80, 32124, 5504),
    (0x8F, 16764, 6784),
    (0xD5, 716, 8),
    (0xFE, 8, 880),
    (0xFF, 0, 848),
]

Decoder = Callable[[NDArray[np.uint8] | bytes], NDArray[np.int16]]
Encoder = Callable[[NDArray[np.int16]], NDArray[np.uint8]]
LAWS: dict[str, tuple[Encoder, Decoder, str, str]] = {
    "ulaw": (g711.ulaw_encode, g711.ulaw_decode, "lin2ulaw", "ulaw2lin"),
    "alaw": (g711.alaw_encode, g711.alaw_decode, "lin2alaw", "alaw2lin"),
}


@pytest.mark.parametrize(("sample", "ulaw", "alaw"), ENCODE_VECTORS)
def test_encode_vectors(sample: int, ulaw: int, alaw: int) -> None:
    pcm = np.array([sample], dtype=np.int16)
    assert g711.ulaw_encode(pcm).tolist() == [ulaw]
    assert g711.alaw_encode(pcm).tolist() == [alaw]


@pytest.mark.parametrize(("code", "ulaw", "alaw"), DECODE_VECTORS)
def test_decode_vectors(code: int, ulaw: int, alaw: int) -> None:
    assert g711.ulaw_decode(bytes([code])).tolist() == [ulaw]
    assert g711.alaw_decode(bytes([code])).tolist() == [alaw]


@pytest.mark.parametrize("law", LAWS)
def test_encode_matches_audioop_for_every_sample(law: str, audioop: ModuleType) -> None:
    encode, _, reference, _ = LAWS[law]
    expected = getattr(audioop, reference)(EVERY_SAMPLE.tobytes(), 2)
    assert encode(EVERY_SAMPLE).tobytes() == expected


@pytest.mark.parametrize("law", LAWS)
@pytest.mark.parametrize("length", [0, 1, 2, 255, 256])
def test_decode_matches_audioop_for_every_code(law: str, length: int, audioop: ModuleType) -> None:
    _, decode, _, reference = LAWS[law]
    codes = np.resize(EVERY_CODE[::-1], length).tobytes()  # odd lengths take the tail path
    expected = getattr(audioop, reference)(codes, 2)
    assert decode(codes).tobytes() == expected


@given(codes=st.binary(max_size=700))
def test_decode_matches_audioop_on_any_bytes(codes: bytes, audioop: ModuleType) -> None:
    assert g711.ulaw_decode(codes).tobytes() == audioop.ulaw2lin(codes, 2)
    assert g711.alaw_decode(codes).tobytes() == audioop.alaw2lin(codes, 2)


def _level_rank(decode: Decoder, codes: NDArray[np.uint8]) -> NDArray[np.intp]:
    """Index of each code's decoded value among all the law's distinct levels."""
    levels = np.unique(decode(EVERY_CODE))
    ranks: NDArray[np.intp] = np.searchsorted(levels, decode(codes))
    return ranks


def _libsndfile_encode(samples: NDArray[np.int16], subtype: str) -> NDArray[np.uint8]:
    buffer = io.BytesIO()
    soundfile.write(buffer, samples, 8000, subtype=subtype, format="RAW")
    return np.frombuffer(buffer.getvalue(), dtype=np.uint8)


def _libsndfile_decode(codes: NDArray[np.uint8] | bytes, subtype: str) -> NDArray[np.int16]:
    samples, _ = soundfile.read(
        io.BytesIO(bytes(codes)),
        dtype="int16",
        format="RAW",
        subtype=subtype,
        samplerate=8000,
        channels=1,
    )
    return samples  # type: ignore[no-any-return]


def _ffmpeg_encode(samples: NDArray[np.int16], codec: str) -> NDArray[np.uint8]:
    context: Any = av.CodecContext.create(codec, "w")
    context.sample_rate = 8000
    context.format = "s16"
    context.layout = "mono"
    frame = av.AudioFrame.from_ndarray(samples.reshape(1, -1), format="s16", layout="mono")
    frame.sample_rate = 8000
    packets = context.encode(frame) + context.encode(None)
    return np.frombuffer(b"".join(bytes(packet) for packet in packets), dtype=np.uint8)


def _ffmpeg_decode(codes: NDArray[np.uint8] | bytes, codec: str) -> NDArray[np.int16]:
    context: Any = av.CodecContext.create(codec, "r")
    context.sample_rate = 8000
    context.layout = "mono"
    frames = context.decode(av.Packet(bytes(codes)))
    return np.concatenate([frame.to_ndarray().reshape(-1) for frame in frames])


def _second_opinions() -> dict[str, tuple[str, Encoder, Decoder]]:
    opinions: dict[str, tuple[str, Encoder, Decoder]] = {}
    for law, sndfile_subtype, ffmpeg_codec in (
        ("ulaw", "ULAW", "pcm_mulaw"),
        ("alaw", "ALAW", "pcm_alaw"),
    ):
        opinions[f"libsndfile-{law}"] = (
            law,
            partial(_libsndfile_encode, subtype=sndfile_subtype),
            partial(_libsndfile_decode, subtype=sndfile_subtype),
        )
        opinions[f"ffmpeg-{law}"] = (
            law,
            partial(_ffmpeg_encode, codec=ffmpeg_codec),
            partial(_ffmpeg_decode, codec=ffmpeg_codec),
        )
    return opinions


SECOND_OPINIONS = _second_opinions()


@pytest.mark.parametrize("library", SECOND_OPINIONS)
def test_cross_check_with_an_independent_implementation(library: str) -> None:
    """libsndfile and FFmpeg agree on every decoded value and within one level on encoding.

    G.711 fixes the decoder, so all 256 codes must decode identically. The
    encoders' decision points differ slightly for some inputs (libsndfile
    rounds negative samples toward zero, FFmpeg picks the nearest level where
    the G.711 reference code truncates): there the two codes must be
    neighbouring quantisation levels, never further apart.
    """
    law, other_encode, other_decode = SECOND_OPINIONS[library]
    encode, decode, _, _ = LAWS[law]
    assert np.array_equal(other_decode(EVERY_CODE), decode(EVERY_CODE))
    ours = _level_rank(decode, encode(EVERY_SAMPLE))
    theirs = _level_rank(decode, other_encode(EVERY_SAMPLE))
    assert np.abs(ours - theirs).max() <= 1
    assert np.count_nonzero(ours != theirs) < 0.02 * EVERY_SAMPLE.size


def test_libsndfile_mu_law_is_ours_with_rounding_toward_zero() -> None:
    """libsndfile computes ``|x| / 4`` before the mu-law table; G.711's code shifts ``x >> 2``."""
    toward_zero = (np.trunc(EVERY_SAMPLE / 4) * 4).astype(np.int16)
    theirs = _libsndfile_encode(EVERY_SAMPLE, "ULAW")
    assert np.array_equal(g711.ulaw_decode(theirs), g711.ulaw_decode(g711.ulaw_encode(toward_zero)))


@pytest.mark.parametrize("law", LAWS)
def test_every_code_survives_decode_then_encode(law: str) -> None:
    encode, decode, _, _ = LAWS[law]
    again = encode(decode(EVERY_CODE))
    changed = EVERY_CODE[again != EVERY_CODE].tolist()
    assert changed == ([0x7F] if law == "ulaw" else [])  # mu-law's "negative zero" becomes +0


@given(hnp.arrays(np.int16, st.integers(0, 400)))
def test_quantisation_error_is_within_one_step(samples: NDArray[np.int16]) -> None:
    for encode, decode, _, _ in LAWS.values():
        error = np.abs(decode(encode(samples)).astype(np.int32) - samples)
        # G.711's step grows with the segment: 1/16 of the segment's base, so the error of a
        # logarithmic quantiser is bounded by a fraction of the magnitude plus the first step.
        assert np.all(error <= np.abs(samples.astype(np.int32)) // 16 + 132)


def test_mu_law_a_law_translation_goes_through_linear() -> None:
    codes = EVERY_CODE.tobytes()
    assert g711.ulaw_to_alaw(codes) == g711.alaw_encode(g711.ulaw_decode(codes)).tobytes()
    assert g711.alaw_to_ulaw(codes) == g711.ulaw_encode(g711.alaw_decode(codes)).tobytes()


def test_accepts_bytes_like_and_strided_input() -> None:
    codes = bytes(range(10))
    expected = g711.ulaw_decode(codes)
    assert np.array_equal(g711.ulaw_decode(bytearray(codes)), expected)
    assert np.array_equal(g711.ulaw_decode(memoryview(codes)), expected)
    assert np.array_equal(g711.ulaw_decode(np.frombuffer(codes, np.uint8)), expected)
    strided = EVERY_SAMPLE[::7]
    assert np.array_equal(g711.alaw_encode(strided), g711.alaw_encode(strided.copy()))
    codes_strided = g711.ulaw_encode(strided)[::3]
    assert np.array_equal(g711.ulaw_decode(codes_strided), g711.ulaw_decode(codes_strided.copy()))


@pytest.mark.parametrize(
    ("bad", "words"),
    [
        (np.zeros(4, dtype=np.float32), "dtype int16, not float32"),
        (np.zeros(4, dtype=np.int32), "dtype int16, not int32"),
        (np.zeros((2, 2), dtype=np.int16), "one-dimensional, not 2-D"),
        ([0, 1, 2], "numpy int16 array, not list"),
        (b"\x00\x00", "numpy int16 array, not bytes"),
    ],
)
def test_encode_rejects_what_is_not_int16_audio(bad: object, words: str) -> None:
    for encode in (g711.ulaw_encode, g711.alaw_encode):
        with pytest.raises(InvalidAudioError, match=words) as raised:
            encode(bad)  # type: ignore[arg-type]
        assert isinstance(raised.value, VoxgateError)
        assert isinstance(raised.value, ValueError)


@pytest.mark.parametrize(
    ("bad", "words"),
    [
        (np.zeros(4, dtype=np.int16), "dtype uint8, not int16"),
        (np.zeros((2, 2), dtype=np.uint8), "one-dimensional, not 2-D"),
        ("abc", "bytes or a uint8 array, not str"),
        (None, "not NoneType"),
    ],
)
def test_decode_rejects_what_is_not_codes(bad: object, words: str) -> None:
    for decode in (g711.ulaw_decode, g711.alaw_decode):
        with pytest.raises(InvalidAudioError, match=words):
            decode(bad)  # type: ignore[arg-type]
