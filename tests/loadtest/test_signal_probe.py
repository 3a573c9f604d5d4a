"""The marker signal: every kind found where it was put, through what a bridge does to audio."""

from __future__ import annotations

import numpy as np
import pytest

from voxgate.codecs.dtmf import dtmf_tone
from voxgate.codecs.g711 import alaw_decode, alaw_encode, ulaw_decode, ulaw_encode
from voxgate.codecs.resample import Resampler
from voxgate.loadtest.signal_probe import (
    CYCLE,
    FRAME,
    MARKER_EVERY,
    MARKER_KINDS,
    MarkerFinder,
    cycle,
    frame,
    marker_kind,
)


def _through(samples: np.ndarray, path: str) -> np.ndarray:
    if path == "pcmu":
        return ulaw_decode(ulaw_encode(samples))
    if path == "pcma":
        return alaw_decode(alaw_encode(samples))
    rate = int(path.split("/")[1])
    up, down = Resampler(8000, rate), Resampler(rate, 8000)
    return ulaw_decode(ulaw_encode(down.process(up.process(ulaw_decode(ulaw_encode(samples))))))


def _find_all(stream: np.ndarray, chunk: int = FRAME) -> list[tuple[int, int]]:
    finder = MarkerFinder()
    found = []
    for start in range(0, stream.size, chunk):
        piece = stream[start : start + chunk].astype(np.float64)
        level = float(np.sqrt(np.mean(piece**2)))
        marker = finder.feed(piece, level > 2000)
        if marker is not None:
            found.append((marker.kind, marker.position))
    return found


def test_the_cycle_holds_each_kind_once_every_marker_period() -> None:
    kinds = [marker_kind(n) for n in range(CYCLE)]
    assert [k for k in kinds if k is not None] == list(range(MARKER_KINDS))
    assert all(kinds[n] is None for n in range(CYCLE) if n % MARKER_EVERY)
    assert np.array_equal(frame(CYCLE + 3), frame(3))
    assert not cycle().flags.writeable
    quiet = frame(1).astype(np.float64)
    assert 300 < np.sqrt(np.mean(quiet**2)) < 600  # the floor: never silent, never loud


@pytest.mark.parametrize(
    ("path", "delay"),
    [("pcmu", 0), ("pcma", 0), ("pcm16/16000", None), ("pcm16/24000", None)],
)
@pytest.mark.parametrize("chunk", [FRAME, 240, 97])
def test_every_marker_is_found_at_its_sample_through_the_path(
    path: str, delay: int | None, chunk: int
) -> None:
    sent = np.concatenate([frame(n) for n in range(CYCLE + MARKER_EVERY)])
    back = _through(sent, path)
    found = _find_all(back, chunk)
    kinds = [kind for kind, _ in found]
    assert kinds == [*range(MARKER_KINDS), 0]
    offsets = {position - n * MARKER_EVERY * FRAME for n, (_, position) in enumerate(found)}
    assert len(offsets) == 1  # the same shift for every marker: the path's own delay
    (offset,) = offsets
    if delay is not None:
        assert offset == delay
    else:
        assert 0 <= offset <= 40  # a resampler pair's group delay, in 8 kHz samples


def test_tones_silence_and_noise_are_not_markers() -> None:
    rng = np.random.default_rng(7)
    stream = np.concatenate(
        [
            np.zeros(800, np.int16),
            dtmf_tone("5", 200),
            np.zeros(800, np.int16),
            (rng.standard_normal(1600) * 6000).astype(np.int16),
        ]
    )
    assert _find_all(stream) == []
