"""voxgate.bridge.ratelimit: the inbound audio bound, in stepped time."""

from __future__ import annotations

from voxgate.bridge.ratelimit import InboundRate, Verdict

FRAME = 0.020


def _send(
    rate: InboundRate, frames_per_second: float, seconds: float, start: float = 0.0
) -> list[Verdict]:
    step = 1.0 / frames_per_second
    return [rate.admit(FRAME, start + i * step) for i in range(round(seconds / step))]


def test_real_time_audio_always_passes() -> None:
    rate = InboundRate(3.0)
    assert set(_send(rate, 50, 60.0)) == {Verdict.PASS}


def test_a_backlog_of_a_few_seconds_passes_whole() -> None:
    rate = InboundRate(3.0, burst=3.0)
    _send(rate, 50, 5.0)
    backlog = [rate.admit(FRAME, 5.0) for _ in range(140)]  # 2.8 s at one instant
    assert set(backlog) == {Verdict.PASS}


def test_a_flood_gets_about_the_factor_through_then_is_closed() -> None:
    rate = InboundRate(3.0, burst=3.0, close_after=5.0)
    verdicts = _send(rate, 900, 4.0)
    passed = verdicts.count(Verdict.PASS)
    assert Verdict.CLOSE not in verdicts
    # 3 s of burst + 4 s x 3 real time = 15 s of audio, 750 frames of 20 ms
    assert 740 <= passed <= 760, passed
    later = _send(rate, 900, 2.0, start=4.0)
    assert Verdict.CLOSE in later


def test_a_pause_ends_a_spell_of_exceeding() -> None:
    rate = InboundRate(3.0, burst=1.0, close_after=5.0)
    now = 0.0
    for _ in range(8):  # 8 s of 1 s floods separated by 2 s pauses
        for verdict in _send(rate, 900, 1.0, start=now):
            assert verdict is not Verdict.CLOSE
        now += 3.0
    assert rate.dropped > 0
