from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest

from voxgate.bridge.rtp.jitter import MAX_JUMP, RESYNC_RUN, Frame, JitterBuffer
from voxgate.codecs.g711 import alaw_decode, alaw_encode, ulaw_decode, ulaw_encode
from voxgate.codecs.pcm import Pcm, pcm16_decode, pcm16_encode
from voxgate.errors import UnsupportedFormatError

SAMPLES = 160
TONE = (8000 * np.sin(np.arange(SAMPLES) * 2 * np.pi * 400 / 8000)).astype(np.int16)
LOUD = ulaw_encode(TONE).tobytes()


def _frame(sequence: int) -> bytes:
    """A distinct, recognisable mu-law payload per sequence number."""
    return bytes([sequence % 256]) + LOUD[1:]


def _good(*sequences: int) -> list[Frame]:
    return [Frame(_frame(sequence), concealed=False) for sequence in sequences]


def _buffer(**options: float) -> JitterBuffer:
    return JitterBuffer("pcmu", SAMPLES, **options)  # type: ignore[arg-type]


def _rms(payload: bytes) -> float:
    return float(np.sqrt(np.mean(ulaw_decode(payload).astype(np.float64) ** 2)))


def test_a_clean_path_yields_each_frame_at_once() -> None:
    buffer = _buffer()
    for n in range(100):
        assert buffer.push(1000 + n, _frame(n + 1000), n * 0.020) == _good(1000 + n)
        assert buffer.next_due() is None
    assert (buffer.lost, buffer.concealed, buffer.reordered, buffer.late) == (0, 0, 0, 0)


def test_a_clean_path_across_the_sequence_wrap() -> None:
    buffer = _buffer()
    out = [frame for n in (65534, 65535, 0, 1) for frame in buffer.push(n, _frame(n), 0.0)]
    assert out == _good(65534, 65535, 0, 1)


@pytest.mark.parametrize(
    ("order", "releases", "reordered"),
    [
        pytest.param([1, 3, 2, 4], [[1], [], [2, 3], [4]], 1, id="swap"),
        pytest.param([1, 4, 3, 2], [[1], [], [], [2, 3, 4]], 2, id="reversed-three"),
        pytest.param([65535, 1, 0, 2], [[65535], [], [0, 1], [2]], 1, id="swap-across-wrap"),
    ],
)
def test_reordering(order: list[int], releases: list[list[int]], reordered: int) -> None:
    buffer = _buffer()
    assert [buffer.push(n, _frame(n), 0.001 * i) for i, n in enumerate(order)] == [
        _good(*release) for release in releases
    ]
    assert buffer.lost == 0
    assert buffer.reordered == reordered  # frames that arrived after a later one
    assert buffer.next_due() is None


def test_a_gap_given_up_is_concealed_with_fading_frames() -> None:
    buffer = _buffer()
    assert buffer.push(0, LOUD, 0.0) == [Frame(LOUD, concealed=False)]
    assert buffer.push(4, _frame(4), 0.080) == []
    assert buffer.push(5, _frame(5), 0.100) == []
    assert buffer.push(6, _frame(6), 0.120) == []
    out = buffer.push(7, _frame(7), 0.140)  # a 4th held frame: the gap of 3 is given up
    assert [frame.concealed for frame in out] == [True, True, True, False, False, False, False]
    assert out[3:] == _good(4, 5, 6, 7)
    levels = [_rms(frame.payload) for frame in out[:3]]
    assert _rms(LOUD) > levels[0] > levels[1] > levels[2] > 0
    assert all(len(frame.payload) == SAMPLES for frame in out)
    assert (buffer.lost, buffer.concealed) == (3, 3)


def test_the_fade_is_6_db_per_frame() -> None:
    buffer = JitterBuffer("l16", 2 * SAMPLES)
    steady = pcm16_encode(np.full(SAMPLES, 10000, dtype=np.int16), "big")
    buffer.push(0, steady, 0.0)
    buffer.push(3, steady, 0.060)
    out = buffer.tick(0.060 + 0.060)
    assert [frame.concealed for frame in out] == [True, True, False]
    first, second = (pcm16_decode(frame.payload, "big") for frame in out[:2])
    assert (first[0], first[-1]) == (10000, pytest.approx(5000, abs=40))
    assert (second[0], second[-1]) == (5000, pytest.approx(2500, abs=20))


def test_a_long_gap_is_concealed_for_60_ms_then_skipped() -> None:
    buffer = _buffer()
    buffer.push(0, LOUD, 0.0)
    out = []
    for n in range(20, 24):
        out += buffer.push(n, _frame(n), 0.4 + n * 0.020)
    assert [frame.concealed for frame in out] == [True] * 3 + [False] * 4
    assert (buffer.lost, buffer.concealed) == (19, 3)


def test_concealment_count_is_configurable() -> None:
    buffer = _buffer(max_concealed=1)
    buffer.push(0, LOUD, 0.0)
    buffer.push(5, _frame(5), 0.1)
    assert [frame.concealed for frame in buffer.tick(1.0)] == [True, False]


def test_frames_of_a_gap_given_up_are_late() -> None:
    buffer = _buffer()
    buffer.push(0, LOUD, 0.0)
    buffer.push(2, _frame(2), 0.040)
    assert len(buffer.tick(0.100)) == 2  # concealed 1, then 2
    assert buffer.push(1, _frame(1), 0.110) == []
    assert (buffer.late, buffer.duplicates) == (1, 0)
    assert buffer.push(3, _frame(3), 0.120) == _good(3)


def test_duplicates_are_dropped() -> None:
    buffer = _buffer()
    buffer.push(0, _frame(0), 0.0)
    assert buffer.push(0, _frame(0), 0.0) == []  # delivered already
    buffer.push(2, _frame(2), 0.0)
    assert buffer.push(2, _frame(2), 0.0) == []  # held already
    assert buffer.push(1, _frame(1), 0.0) == _good(1, 2)
    assert buffer.push(1, _frame(1), 0.0) == []
    assert (buffer.duplicates, buffer.late, buffer.lost) == (3, 0, 0)


def test_tick_releases_after_max_wait() -> None:
    buffer = _buffer()
    buffer.push(0, LOUD, 0.0)
    assert buffer.push(2, _frame(2), 0.040) == []
    assert buffer.next_due() == pytest.approx(0.100)
    assert buffer.tick(0.099) == []
    out = buffer.tick(0.100)
    assert [frame.concealed for frame in out] == [True, False]
    assert out[1:] == _good(2)
    assert buffer.next_due() is None


def test_a_custom_max_wait() -> None:
    buffer = _buffer(max_wait=0.02)
    buffer.push(0, LOUD, 0.0)
    buffer.push(2, _frame(2), 0.040)
    assert buffer.next_due() == pytest.approx(0.060)


def test_the_next_gap_waits_from_its_own_first_frame() -> None:
    buffer = _buffer()
    buffer.push(0, LOUD, 0.0)
    buffer.push(2, _frame(2), 0.040)
    buffer.push(4, _frame(4), 0.080)
    assert len(buffer.tick(0.100)) == 2  # gap 1 given up: concealed 1, then 2
    assert buffer.next_due() == pytest.approx(0.140)
    assert len(buffer.tick(0.140)) == 2  # gap 3


def test_a_push_after_the_deadline_releases_what_is_overdue() -> None:
    buffer = _buffer()
    buffer.push(0, LOUD, 0.0)
    buffer.push(2, _frame(2), 0.020)
    out = buffer.push(4, _frame(4), 0.200)  # tick was not called: this push does it
    assert [frame.concealed for frame in out] == [True, False]
    assert buffer.next_due() == pytest.approx(0.260)  # 4 waits from its own arrival


def test_a_missing_frame_that_arrives_after_the_deadline_but_before_a_tick_is_used() -> None:
    buffer = _buffer()
    buffer.push(0, _frame(0), 0.0)
    buffer.push(2, _frame(2), 0.020)
    assert buffer.push(1, _frame(1), 0.200) == _good(1, 2)
    assert buffer.lost == 0


def test_one_wild_sequence_number_is_dropped() -> None:
    buffer = _buffer()
    out = []
    for n in [*range(10), 10 + MAX_JUMP + 1, *range(10, 20)]:
        out += buffer.push(n, _frame(n), 0.0)
    assert out == _good(*range(20))
    assert buffer.wild == 1


def test_a_sequence_that_restarts_is_followed_after_a_short_run() -> None:
    buffer = _buffer()
    out = []
    for i, n in enumerate([*range(100, 120), *range(5000, 5020)]):
        out += buffer.push(n, _frame(n), i * 0.020)
    assert out == _good(*range(100, 120), *range(5000 + RESYNC_RUN, 5020))
    assert buffer.resyncs == 1


def test_held_frames_go_out_when_the_sequence_restarts() -> None:
    buffer = _buffer()
    buffer.push(0, _frame(0), 0.0)
    buffer.push(2, _frame(2), 0.0)
    out = []
    for n in range(30000, 30000 + RESYNC_RUN + 1):
        out += buffer.push(n, _frame(n), 0.0)
    assert out == _good(2, 30000 + RESYNC_RUN)


@pytest.mark.parametrize(
    ("codec", "frame_bytes", "decode", "encode"),
    [
        pytest.param("pcmu", 160, ulaw_decode, lambda pcm: ulaw_encode(pcm).tobytes(), id="pcmu"),
        pytest.param("pcma", 160, alaw_decode, lambda pcm: alaw_encode(pcm).tobytes(), id="pcma"),
        pytest.param(
            "l16",
            320,
            lambda data: pcm16_decode(data, "big"),
            lambda pcm: pcm16_encode(pcm, "big"),
            id="l16",
        ),
    ],
)
def test_concealment_in_each_codec(
    codec: str, frame_bytes: int, decode: Callable[[bytes], Pcm], encode: Callable[[Pcm], bytes]
) -> None:
    buffer = JitterBuffer(codec, frame_bytes)
    good = encode(TONE)
    buffer.push(0, good, 0.0)
    buffer.push(2, good, 0.0)
    concealed = buffer.tick(1.0)[0]
    assert concealed.concealed
    assert len(concealed.payload) == frame_bytes
    original = decode(good).astype(np.float64)
    faded = decode(concealed.payload).astype(np.float64)
    gain = np.linspace(1.0, 0.5, SAMPLES, endpoint=False)
    assert np.max(np.abs(faded - original * gain)) < 0.05 * 8000  # G.711 steps at this level


@pytest.mark.parametrize(
    ("codec", "payload", "silence"),
    [
        pytest.param("pcmu", b"\x00\x00", b"\xff", id="pcmu-short"),
        pytest.param("pcma", b"\x2a" * 200, b"\xd5", id="pcma-long"),
        pytest.param("l16", b"\x10\x00\x10", b"\x00", id="l16-odd"),
    ],
)
def test_a_frame_of_the_wrong_size_is_fitted(codec: str, payload: bytes, silence: bytes) -> None:
    frame_bytes = 320 if codec == "l16" else SAMPLES
    buffer = JitterBuffer(codec, frame_bytes)
    buffer.push(0, payload, 0.0)
    buffer.push(2, payload, 0.0)
    concealed = buffer.tick(1.0)[0].payload
    assert len(concealed) == frame_bytes
    if len(payload) < frame_bytes:
        assert concealed.endswith(silence * 16)


@pytest.mark.parametrize(
    ("codec", "frame_bytes"),
    [("opus", 160), ("pcm16", 320), ("pcmu", 0), ("l16", 321)],
    ids=["opus", "pcm16", "no-bytes", "l16-odd"],
)
def test_unsupported_streams(codec: str, frame_bytes: int) -> None:
    with pytest.raises(UnsupportedFormatError):
        JitterBuffer(codec, frame_bytes)


def test_numbers_taken_by_another_payload_type_are_no_gap() -> None:
    buffer = _buffer()
    frames = buffer.push(1, _frame(1), 0.0) + buffer.push(2, _frame(2), 0.02)
    frames += buffer.push_other(3, 0.03) + buffer.push_other(4, 0.035)
    frames += buffer.push(5, _frame(5), 0.04)  # at once: 3 and 4 were event packets
    assert frames == _good(1, 2, 5)
    assert (buffer.lost, buffer.concealed) == (0, 0)


def test_another_payload_types_number_arriving_late_fills_the_gap_it_left() -> None:
    buffer = _buffer()
    frames = buffer.push(1, _frame(1), 0.0) + buffer.push(3, _frame(3), 0.02)
    assert frames == _good(1)
    assert buffer.push_other(2, 0.021) == _good(3)
    assert (buffer.lost, buffer.concealed) == (0, 0)


@pytest.mark.parametrize("sequence", [60000, 900, 30000])
def test_another_payload_type_numbered_apart_is_ignored(sequence: int) -> None:
    buffer = _buffer()
    frames = buffer.push(2, _frame(2), 0.0)
    for k in range(8):  # a run that as audio would resynchronise the buffer
        frames += buffer.push_other(sequence + k, 0.001 * k)
    frames += buffer.push(3, _frame(3), 0.02)
    assert frames == _good(2, 3) and buffer.resyncs == 0 and buffer.wild == 0
    assert JitterBuffer("pcmu", SAMPLES).push_other(7, 0.0) == []  # nothing to place it in yet
