from __future__ import annotations

import itertools

import numpy as np
import pytest

from voxgate.bridge.playout import (
    PARTIAL_GRACE,
    BotMarkPlayed,
    CarrierClearRequested,
    CarrierMarkRequested,
    FrameReleased,
    Playout,
    PlayoutOutput,
    QueueFullError,
)
from voxgate.codecs.formats import PCMU_8K, AudioFormat, Encoding


def _run(playout: Playout, until: float, start: float = 0.0) -> list[tuple[float, PlayoutOutput]]:
    """Wake up when the playout says it is due, as the shared scheduler does; collect outputs."""
    seen = [(start, output) for output in playout.drain()]
    now = start
    while (due := playout.next_due()) is not None and due <= until:
        now = max(now, due)
        playout.tick(now)
        seen += [(now, output) for output in playout.drain()]
    return seen


def _frames(seen: list[tuple[float, PlayoutOutput]]) -> list[tuple[float, bytes]]:
    return [(t, o.payload) for t, o in seen if isinstance(o, FrameReleased)]


def test_a_burst_is_released_one_frame_every_20ms() -> None:
    playout = Playout(PCMU_8K, carrier_marks=False)
    audio = bytes(range(256)) * 125  # 32,000 bytes = 4 s, in one burst
    playout.enqueue(audio, 0.0)
    frames = _frames(_run(playout, 5.0))
    assert len(frames) == 200
    times = [t for t, _ in frames]
    assert times[0] == 0.0  # the first frame goes at once
    assert all(abs(b - a - 0.020) < 1e-9 for a, b in itertools.pairwise(times))
    assert b"".join(p for _, p in frames) == audio


def test_chunks_of_any_size_are_reframed_and_a_tail_is_padded_with_silence() -> None:
    playout = Playout(PCMU_8K, carrier_marks=False)
    for size in (7, 300, 1, 52):
        playout.enqueue(b"\x01" * size, 0.0)
    frames = _frames(_run(playout, 0.2))
    assert [len(p) for _, p in frames] == [160, 160, 160]
    assert b"".join(p for _, p in frames) == b"\x01" * 360 + b"\xff" * 120


@pytest.mark.parametrize(
    ("fmt", "silence"),
    [(AudioFormat(Encoding.PCMA, 8000), b"\xd5"), (AudioFormat(Encoding.PCM16, 16000), b"\x00")],
)
def test_silence_padding_matches_the_format(fmt: AudioFormat, silence: bytes) -> None:
    playout = Playout(fmt, carrier_marks=False)
    playout.enqueue(b"\x10\x00", 0.0)
    (frame,) = _frames(_run(playout, 0.05))
    assert frame[1] == b"\x10\x00" + silence * (fmt.bytes_per(20) - 2)


def test_a_late_tick_catches_up_without_shifting_the_grid() -> None:
    playout = Playout(PCMU_8K, carrier_marks=False)
    playout.enqueue(b"\x00" * 1600, 0.0)  # 10 frames
    playout.tick(0.0)
    playout.tick(0.065)  # woke up 45 ms late: frames due at 20, 40, 60 ms go now
    released = [o for o in playout.drain() if isinstance(o, FrameReleased)]
    assert len(released) == 4
    assert playout.next_due() == pytest.approx(0.080)
    assert playout.frames_late == 2  # the frames due at 20 and 40 ms; 60 ms is 5 ms late


def test_a_stall_restarts_the_grid_instead_of_rushing_the_backlog() -> None:
    playout = Playout(PCMU_8K, carrier_marks=False)
    playout.enqueue(b"\x00" * 1600, 0.0)
    playout.tick(0.0)
    playout.tick(0.500)  # the loop stalled
    assert len(playout.drain()) == 2
    assert playout.next_due() == pytest.approx(0.520)
    assert playout.frames_late == 1


def test_after_an_idle_spell_the_next_utterance_starts_at_once() -> None:
    playout = Playout(PCMU_8K, carrier_marks=False)
    playout.enqueue(b"\x00" * 160, 0.0)
    playout.tick(0.0)
    playout.drain()
    assert playout.next_due() is None
    playout.enqueue(b"\x00" * 320, 1.0)
    due = playout.next_due()
    assert due is not None
    assert due <= 1.0
    playout.tick(1.0)
    playout.tick(1.005)  # not yet: 20 ms after the previous release
    assert len(playout.drain()) == 1
    assert playout.next_due() == pytest.approx(1.020)


def test_a_mark_without_carrier_echo_fires_one_frame_after_the_audio_before_it() -> None:
    playout = Playout(PCMU_8K, carrier_marks=False)
    playout.enqueue(b"\x00" * 800, 0.0)  # 5 frames: released at 0, 20, ..., 80 ms
    playout.mark("five")
    playout.enqueue(b"\x00" * 160, 0.0)
    seen = _run(playout, 0.2)
    (when,) = [t for t, o in seen if o == BotMarkPlayed("five")]
    assert when == pytest.approx(0.100)  # the fifth frame has played by then, not merely left
    assert len(_frames(seen)) == 6


def test_a_mark_with_carrier_echo_waits_for_the_echo() -> None:
    playout = Playout(PCMU_8K, carrier_marks=True)
    playout.enqueue(b"\x00" * 320, 0.0)
    playout.mark("greeting")
    seen = _run(playout, 0.1)
    requests = [o for _, o in seen if isinstance(o, CarrierMarkRequested)]
    assert len(requests) == 1
    assert not any(isinstance(o, BotMarkPlayed) for _, o in seen)  # sent is not played
    playout.carrier_mark_played("someone-else's")
    assert playout.drain() == []
    playout.carrier_mark_played(requests[0].name)
    assert playout.drain() == [BotMarkPlayed("greeting")]
    assert playout.idle


def test_a_mark_with_nothing_ever_played_is_reported_at_once() -> None:
    playout = Playout(PCMU_8K, carrier_marks=True)
    playout.mark("start")
    assert playout.drain() == [BotMarkPlayed("start")]


def test_clear_empties_the_queue_at_once_and_returns_every_pending_mark() -> None:
    playout = Playout(PCMU_8K, carrier_marks=True)
    playout.enqueue(b"\x00" * 320, 0.0)
    playout.mark("a")  # will be awaiting the carrier's echo
    playout.enqueue(b"\x00" * 8000, 0.0)  # 50 more frames
    playout.mark("b")  # still queued
    _run(playout, 0.1)
    playout.clear()
    outputs = playout.drain()
    assert outputs == [CarrierClearRequested(), BotMarkPlayed("a"), BotMarkPlayed("b")]
    assert playout.next_due() is None
    assert _frames(_run(playout, 0.2)) == []  # not one more frame after the clear
    assert playout.frames_cleared > 40


def test_queue_is_bounded() -> None:
    playout = Playout(PCMU_8K, carrier_marks=False, max_queued_seconds=2.0)
    playout.enqueue(b"\x00" * 8000, 0.0)  # 1 s
    with pytest.raises(QueueFullError):
        playout.enqueue(b"\x00" * 8160, 0.0)  # 1.02 s more
    assert playout.queued_seconds == pytest.approx(1.0)  # the refused audio was not queued
    playout.enqueue(b"\x00" * 8000, 0.0)  # exactly 2 s is allowed
    assert playout.queued_seconds == pytest.approx(2.0)


def test_the_default_bound_is_ten_minutes() -> None:
    playout = Playout(PCMU_8K, carrier_marks=False)
    with pytest.raises(QueueFullError):
        playout.enqueue(b"\x00" * 8000 * 601, 0.0)
    assert playout.next_due() is None


def test_released_frames_say_how_long_they_waited() -> None:
    playout = Playout(PCMU_8K, carrier_marks=False)
    playout.enqueue(b"\x00" * 480, 0.0)
    waits = [o.waited for _, o in _run(playout, 0.1) if isinstance(o, FrameReleased)]
    assert waits == pytest.approx([0.0, 0.020, 0.040])


def test_a_real_time_bot_does_not_keep_waiting_for_a_late_grid() -> None:
    """The first frame came 8 ms late; later ones arrive on time and must not wait 8 ms each."""
    playout = Playout(PCMU_8K, carrier_marks=False)
    playout.enqueue(b"\x00" * 160, 0.008)
    playout.tick(0.008)
    playout.drain()
    waits = []
    for n in range(1, 30):
        arrival = 0.020 * n + 0.0005  # each frame arrives about when it should
        seen = _run(playout, arrival, start=arrival - 0.0005)
        playout.enqueue(b"\x00" * 160, arrival)
        seen += _run(playout, arrival + 0.019, start=arrival)
        waits += [o.waited for _, o in seen if isinstance(o, FrameReleased)]
    assert waits[0] > 0.007  # at first the grid is late...
    assert max(waits[-10:]) < 0.0005  # ...then frames go as they arrive
    assert min(np.diff([0.0, *waits])) > -0.0015  # never faster than 1 ms a frame


def test_a_burst_keeps_the_exact_grid_even_after_a_late_start() -> None:
    playout = Playout(PCMU_8K, carrier_marks=False)
    playout.enqueue(b"\x00" * 160 * 50, 0.0)
    times = [t for t, _ in _frames(_run(playout, 2.0))]
    assert np.allclose(np.diff(times), 0.020)


def _marks(outputs: list[PlayoutOutput]) -> list[str]:
    return [o.name for o in outputs if isinstance(o, BotMarkPlayed)]


@pytest.mark.parametrize("carrier_marks", [True, False], ids=["awaiting-echo", "due-by-time"])
def test_clear_reports_pending_marks_in_the_order_the_bot_sent_them(carrier_marks: bool) -> None:
    playout = Playout(PCMU_8K, carrier_marks=carrier_marks)
    playout.enqueue(b"\x00" * 160, 0.0)
    playout.mark("a")  # a and b are reached when the first frame goes
    playout.mark("b")
    playout.enqueue(b"\x00" * 160, 0.0)
    playout.mark("c")  # still queued
    playout.enqueue(b"\x00" * 160 * 10, 0.0)
    playout.mark("d")  # still queued
    playout.enqueue(b"\x00" * 80, 0.0)
    playout.mark("e")  # behind a partial frame
    playout.tick(0.0)
    playout.tick(0.010)
    playout.drain()
    playout.clear()
    assert _marks(playout.drain()) == ["a", "b", "c", "d", "e"]
    assert playout.pending_marks == 0
    assert playout.idle


def test_an_echo_reports_every_earlier_mark_still_awaiting_one_in_order() -> None:
    """The carrier plays in order: its echo of a later mark means the earlier ones played."""
    playout = Playout(PCMU_8K, carrier_marks=True)
    for name in ("a", "b", "c"):
        playout.enqueue(b"\x00" * 160, 0.0)
        playout.mark(name)
    requests = [o.name for _, o in _run(playout, 1.0) if isinstance(o, CarrierMarkRequested)]
    assert len(requests) == 3
    playout.carrier_mark_played(requests[1])
    assert _marks(playout.drain()) == ["a", "b"]
    playout.carrier_mark_played(requests[0])  # a late echo: already reported
    assert playout.drain() == []
    playout.carrier_mark_played(requests[2])
    assert _marks(playout.drain()) == ["c"]
    assert playout.idle


def test_pending_marks_counts_every_mark_not_yet_reported() -> None:
    playout = Playout(PCMU_8K, carrier_marks=False)
    playout.mark("never-played")
    assert _marks(playout.drain()) == ["never-played"]  # reported at once
    assert playout.pending_marks == 0
    playout.enqueue(b"\x00" * 320, 0.0)
    playout.mark("queued")
    playout.enqueue(b"\x00" * 80, 0.0)
    playout.mark("behind-partial")
    assert playout.pending_marks == 2
    seen = _run(playout, 0.039)  # two frames out: "queued" is due by time at 0.040
    assert _marks([o for _, o in seen]) == []
    assert playout.pending_marks == 2
    seen = _run(playout, 1.0, start=0.039)
    assert [(round(t, 3), o.name) for t, o in seen if isinstance(o, BotMarkPlayed)] == [
        (0.040, "queued"),
        (0.080, "behind-partial"),  # its partial frame was padded at 0.060
    ]
    assert playout.pending_marks == 0


def test_a_stopped_bot_has_its_tail_padded_after_the_grace() -> None:
    playout = Playout(PCMU_8K, carrier_marks=False)
    playout.enqueue(b"\x01" * 240, 0.0)  # 30 ms: one frame and half of the next
    playout.tick(0.0)
    assert playout.next_due() == pytest.approx(0.020 + PARTIAL_GRACE)  # its slot, plus grace
    playout.tick(0.020 + PARTIAL_GRACE - 0.001)
    assert len(playout.drain()) == 1
    playout.tick(0.020 + PARTIAL_GRACE)
    (tail,) = playout.drain()
    assert tail == FrameReleased(b"\x01" * 80 + b"\xff" * 80, 0.020 + PARTIAL_GRACE)
    assert playout.frames_padded == 1
    assert playout.frames_late == 0  # late against its slot, but by design
    assert playout.next_due() is None


def test_a_partial_frame_completed_within_the_grace_gets_no_silence() -> None:
    playout = Playout(PCMU_8K, carrier_marks=False)
    playout.enqueue(b"\x01" * 240, 0.0)
    frames = _frames(_run(playout, 0.034))  # the second frame's slot (20 ms) has passed
    playout.enqueue(b"\x02" * 240, 0.034)  # the next 30 ms, 4 ms late plus jitter
    playout.tick(0.034)
    frames += _frames([(0.034, o) for o in playout.drain()])
    assert frames == [(0.0, b"\x01" * 160), (0.034, b"\x01" * 80 + b"\x02" * 80)]
    assert playout.frames_padded == 0
    assert playout.next_due() == pytest.approx(0.054)  # the grid follows the late bot


def test_a_mark_after_a_partial_frame_does_not_pad_it() -> None:
    """A bot that sends a mark after each 30 ms chunk (to track playback) gets no gaps."""
    playout = Playout(PCMU_8K, carrier_marks=True)
    audio = bytes(range(1, 241)) * 10
    seen = []
    for n in range(10):
        now = 0.030 * n
        seen += _run(playout, now, start=now)
        playout.enqueue(audio[240 * n : 240 * (n + 1)], now)
        playout.mark(f"m{n}")
        playout.tick(now)
        seen += [(now, o) for o in playout.drain()]
    seen += _run(playout, 1.0, start=0.270)
    assert b"".join(p for _, p in _frames(seen)) == audio  # 300 ms: exactly 15 frames
    requested = [o.name for _, o in seen if isinstance(o, CarrierMarkRequested)]
    assert len(requested) == 10
    for name in requested:
        playout.carrier_mark_played(name)
    assert _marks(playout.drain()) == [f"m{n}" for n in range(10)]


def test_counters() -> None:
    playout = Playout(PCMU_8K, carrier_marks=False)
    playout.enqueue(b"\x00" * 400, 0.0)  # two frames and a half
    _run(playout, 1.0)
    playout.enqueue(b"\x00" * 800, 2.0)
    playout.tick(2.0)
    playout.clear()
    assert (playout.frames_released, playout.frames_padded, playout.frames_cleared) == (4, 1, 4)


def _real_time_bot(
    playout: Playout, chunks: list[int], step: float = 0.020
) -> tuple[list[FrameReleased], list[float]]:
    """A bot that sends ``chunks[n]`` frames at ``n * step`` (plus 0.3 ms): the frames
    released, and when."""
    released: list[FrameReleased] = []
    times: list[float] = []
    for n, frames in enumerate(chunks):
        arrival = step * n + 0.0003
        playout.enqueue(b"\x00" * 160 * frames, arrival)
        seen = _run(playout, arrival + step - 0.0001, start=arrival)
        released += [o for _, o in seen if isinstance(o, FrameReleased)]
        times += [t for t, o in seen if isinstance(o, FrameReleased)]
    return released, times


@pytest.mark.parametrize("together", [2, 5])
def test_frames_left_standing_by_a_real_time_bot_are_drained_gently(together: int) -> None:
    """An echo-like bot sends a frame every 20 ms, but once sent several together (it was
    held up): the extra frames must not stand in the queue for the rest of the call."""
    playout = Playout(PCMU_8K, carrier_marks=False)
    chunks = [1] * 10 + [together] + [1] * 200
    released, times = _real_time_bot(playout, chunks)
    waits = [o.waited for o in released]
    assert max(waits[12:20]) > 0.015  # frames stood in the queue after the hiccup...
    assert max(waits[-100:]) < 0.001  # ...and are gone within a couple of seconds
    gaps = np.diff(times)
    assert gaps.min() > 0.0175  # drained at most 2 ms a frame, never a burst


@pytest.mark.parametrize("frames", [2, 3, 5])
def test_a_bot_sending_chunks_of_several_frames_in_real_time_keeps_the_exact_grid(
    frames: int,
) -> None:
    playout = Playout(PCMU_8K, carrier_marks=False)
    chunks = [frames] * 60
    _, times = _real_time_bot(playout, chunks, step=0.020 * frames)
    gaps = np.diff(times)
    assert np.allclose(gaps[5:], 0.020, atol=1e-6)


def test_a_burst_is_not_drained_early_even_at_its_tail() -> None:
    playout = Playout(PCMU_8K, carrier_marks=False)
    playout.enqueue(b"\x00" * 160 * 500, 0.0)  # 10 s at once
    times = [t for t, _ in _frames(_run(playout, 11.0))]
    assert len(times) == 500
    assert np.allclose(np.diff(times), 0.020)
