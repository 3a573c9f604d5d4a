"""One call's measures, on stepped time: a simulated path returns what the probe sends."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pytest

from voxgate.codecs.dtmf import dtmf_tone
from voxgate.codecs.g711 import ulaw_decode, ulaw_encode
from voxgate.codecs.resample import Resampler
from voxgate.loadtest.probe import CallFigures, CallProbe

FRAME_S = 0.020


@dataclass
class Path:
    """What happens to the frames on their way back."""

    delay_frames: int = 3
    drop: tuple[int, ...] = ()
    silence: tuple[int, ...] = ()
    late: dict[int, float] = field(default_factory=dict)  # frame -> extra seconds
    resample_to: int | None = None
    answer_keys: bool = False  # a bot answering a key with its tone, in place of the echo


def _run(path: Path, *, seconds: float = 6.0, dtmf_every: float | None = None) -> CallFigures:
    probe = CallProbe(0, dtmf_every=dtmf_every)
    probe.placed(0.0)
    probe.answered(0.05)
    up = down = None
    if path.resample_to:
        up, down = Resampler(8000, path.resample_to), Resampler(path.resample_to, 8000)
    pending: list[tuple[float, int, np.ndarray]] = []  # returns not yet due
    tone: list[np.ndarray] = []
    last = 0.0

    def deliver(until: float) -> None:
        nonlocal last
        pending.sort(key=lambda item: (item[0], item[1]))
        while pending and pending[0][0] <= until:
            at, _, samples = pending.pop(0)
            last = max(last, at)
            probe.audio_received(samples, last)

    for n in range(int(seconds / FRAME_S)):
        now = 0.1 + n * FRAME_S
        deliver(now)
        samples = ulaw_decode(ulaw_encode(probe.next_frame(now)))
        digit = probe.next_digit(now)
        if up is not None and down is not None:
            samples = down.process(up.process(samples))
        if digit and path.answer_keys:
            tone = list(dtmf_tone(digit, 100).reshape(5, 160))
        if tone:
            samples = tone.pop(0)
        if n in path.drop:
            continue
        if n in path.silence:
            samples = np.zeros(160, np.int16)
        at = now + path.delay_frames * FRAME_S + 0.0002 + path.late.get(n, 0.0)
        at = max([at, *(item[0] for item in pending)])  # in order, as over TCP
        pending.append((at, n, samples))
    deliver(float("inf"))
    probe.ended("local_hangup", last + 0.1)
    return probe.figures


def test_a_clean_path_measures_its_round_trip_exactly_and_loses_nothing() -> None:
    figures = _run(Path(delay_frames=3))
    assert len(figures.latencies_ms) == 12
    assert figures.latencies_ms == pytest.approx([60.2] * 12, abs=0.01)
    assert figures.frames_expected == 275 and figures.frames_lost == 0
    assert figures.frames_late == 0 and figures.gaps == 0
    assert figures.jitter_ms == pytest.approx(0.0, abs=1e-6)
    assert figures.status == "completed" and figures.setup_ms == pytest.approx(50.0)


@pytest.mark.parametrize(
    ("path", "lost"),
    [
        (Path(drop=(60,)), 1),
        (Path(drop=(100, 101, 150)), 3),
        (Path(drop=(75,)), 1),  # the marker frame itself: the next marker anchors the count
        (Path(silence=(120,)), 1),
        (Path(silence=(120, 121), drop=(200,)), 3),
    ],
)
def test_frames_lost_or_silenced_on_the_way_are_counted(path: Path, lost: int) -> None:
    figures = _run(path)
    assert figures.frames_lost == lost


def test_a_resampling_path_adds_its_filter_delay_and_loses_nothing() -> None:
    figures = _run(Path(resample_to=16000))
    assert figures.frames_lost == 0
    assert figures.latencies_ms == pytest.approx([60.2 + 3.75] * 12, abs=0.2)


def test_a_frame_held_past_the_late_bound_is_late_and_a_gap() -> None:
    figures = _run(Path(late={130: 0.080}))
    assert figures.frames_late >= 1
    assert figures.gaps >= 1 and figures.max_gap_ms == pytest.approx(100, abs=1)
    assert figures.frames_lost == 0


def test_keys_answered_with_their_tone_are_delivered_and_timed() -> None:
    figures = _run(Path(answer_keys=True), dtmf_every=1.0)
    assert figures.dtmf_sent == figures.dtmf_detected == 5
    # the tone replaces the frame sent with the key: it comes back one round trip later
    # (less the frame's own 20 ms and the detector's few ms of lead)
    assert all(30 < value < 45 for value in figures.dtmf_latencies_ms)


def test_keys_not_answered_are_not_delivered_and_a_late_key_is_not_counted() -> None:
    figures = _run(Path(), dtmf_every=1.0, seconds=5.3)
    assert figures.dtmf_detected == 0
    # five keys sent; the last two were still within their 2 s wait at the end: not counted
    assert figures.dtmf_sent == 3


def test_a_call_the_node_ends_early_is_dropped() -> None:
    probe = CallProbe(3)
    probe.placed(0.0)
    probe.answered(0.1)
    probe.ended("remote_hangup", 1.0)
    assert (probe.figures.status, probe.figures.failure) == ("dropped", "remote_hangup")
    failed = CallProbe(4)
    failed.placed(0.0)
    failed.failed("busy", 0.2)
    assert (failed.figures.status, failed.figures.failure) == ("failed", "busy")
    assert not failed.live
