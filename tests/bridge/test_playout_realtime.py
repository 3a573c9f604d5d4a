"""A real-time bot with jitter, against the playout, in stepped time.

The bot sends 30 or 50 ms chunks at their real-time instants, each a few ms
early or late (seeded), as a streaming TTS or an echo does. The playout is
woken at its own :meth:`Playout.next_due` (as the shared scheduler does),
optionally a few ms late, and after each chunk (as the call does). What the
carrier receives must be the bot's audio with no silence inserted, on a steady
50 frames/s.
"""

from __future__ import annotations

import random

import numpy as np
import pytest

from voxgate.bridge.playout import FrameReleased, Playout
from voxgate.codecs.formats import PCMU_8K

JITTER = 0.005
SECONDS = 12.0


def _simulate(
    chunk_ms: int, max_late_wakeup: float, seed: int
) -> tuple[bytes, list[tuple[float, bytes]], Playout]:
    rng = random.Random(seed)
    playout = Playout(PCMU_8K, carrier_marks=False)
    step = chunk_ms * 8
    chunks = int(SECONDS * 1000 / chunk_ms) + 1  # not a whole number of frames: a tail
    audio = bytes(rng.randrange(0, 0xFF) for _ in range(step * chunks))  # no 0xff: silence
    arrivals = [
        (k * chunk_ms / 1000 + JITTER + rng.uniform(-JITTER, JITTER), k) for k in range(chunks)
    ]
    released: list[tuple[float, bytes]] = []
    now = 0.0
    while True:
        due = playout.next_due()
        wake = None if due is None else max(now, due + rng.uniform(0, max_late_wakeup))
        if arrivals and (wake is None or arrivals[0][0] <= wake):
            now, k = arrivals.pop(0)
            playout.enqueue(audio[k * step : (k + 1) * step], now)
        elif wake is not None:
            now = wake
        else:
            break
        playout.tick(now)
        released += [(now, o.payload) for o in playout.drain() if isinstance(o, FrameReleased)]
    return audio, released, playout


@pytest.mark.parametrize("seed", [1, 2, 3])
@pytest.mark.parametrize("max_late_wakeup", [0.0, 0.008], ids=["on-time", "late-wakeups"])
@pytest.mark.parametrize("chunk_ms", [30, 50])
def test_a_jittery_real_time_bot_gets_no_silence_and_a_steady_50_frames_per_second(
    chunk_ms: int, max_late_wakeup: float, seed: int
) -> None:
    audio, released, playout = _simulate(chunk_ms, max_late_wakeup, seed)
    out = b"".join(payload for _, payload in released)
    assert out[: len(audio)] == audio  # no silence inserted anywhere...
    tail = out[len(audio) :]
    assert len(tail) < playout.frame_bytes and set(tail) <= {0xFF}  # ...but in the last frame
    assert playout.frames_padded == 1
    assert playout.frames_late == 0

    times = np.array([t for t, _ in released])
    drift = times - times[0] - 0.020 * np.arange(len(times))
    assert drift.min() > -0.001  # never ahead of the 50 frames/s grid...
    assert drift.max() < 0.050  # ...nor behind it by more than some smoothing, all run long
    assert np.polyfit(np.arange(len(times)), times, 1)[0] == pytest.approx(0.020, rel=1e-3)
