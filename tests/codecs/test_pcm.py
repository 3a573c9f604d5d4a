from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis.extra import numpy as hnp
from numpy.typing import NDArray

from voxgate.codecs.pcm import ByteOrder, pcm16_decode, pcm16_encode
from voxgate.errors import InvalidAudioError

# (samples, little-endian bytes, big-endian bytes): both directions.
VECTORS = [
    ([], b"", b""),
    ([0], b"\x00\x00", b"\x00\x00"),
    ([1], b"\x01\x00", b"\x00\x01"),
    ([-1], b"\xff\xff", b"\xff\xff"),
    ([256], b"\x00\x01", b"\x01\x00"),
    ([32767, -32768], b"\xff\x7f\x00\x80", b"\x7f\xff\x80\x00"),
    ([0x1234, -2], b"\x34\x12\xfe\xff", b"\x12\x34\xff\xfe"),
]


@pytest.mark.parametrize(("samples", "little", "big"), VECTORS)
def test_wire_vectors_both_ways(samples: list[int], little: bytes, big: bytes) -> None:
    pcm = np.array(samples, dtype=np.int16)
    assert pcm16_encode(pcm, "little") == little
    assert pcm16_encode(pcm, "big") == big
    assert pcm16_decode(little, "little").tolist() == samples
    assert pcm16_decode(big, "big").tolist() == samples


@given(hnp.arrays(np.int16, hnp.array_shapes(max_dims=1, max_side=500)))
def test_round_trip_in_both_byte_orders(samples: NDArray[np.int16]) -> None:
    orders: tuple[ByteOrder, ...] = ("little", "big")
    for order in orders:
        decoded = pcm16_decode(pcm16_encode(samples, order), order)
        assert decoded.dtype == np.int16
        assert np.array_equal(decoded, samples)


def test_decoded_samples_are_native_and_writable() -> None:
    decoded = pcm16_decode(b"\x12\x34", "big")
    assert decoded.dtype.isnative
    decoded[0] = 7  # not a read-only view of the bytes


@pytest.mark.parametrize("length", [1, 3, 161])
def test_odd_byte_count_is_an_error_not_a_truncation(length: int) -> None:
    with pytest.raises(InvalidAudioError, match=f"whole 2-byte samples, got {length} bytes"):
        pcm16_decode(b"\x00" * length)


def test_bad_arguments_are_named() -> None:
    with pytest.raises(InvalidAudioError, match="byte order must be 'little' or 'big'"):
        pcm16_decode(b"\x00\x00", "middle")  # type: ignore[arg-type]
    with pytest.raises(InvalidAudioError, match="must be bytes, not str"):
        pcm16_decode("ab")  # type: ignore[arg-type]
    with pytest.raises(InvalidAudioError, match="dtype int16, not float64"):
        pcm16_encode(np.zeros(3))  # type: ignore[arg-type]
