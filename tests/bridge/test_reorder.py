from __future__ import annotations

import pytest

from voxgate.bridge.reorder import MAX_HELD, MAX_JUMP, MAX_WAIT, RESYNC_RUN, Reorderer


def test_in_order_frames_go_straight_through() -> None:
    reorder: Reorderer[str] = Reorderer()
    out = [reorder.push(n, f"f{n}", 0.0) for n in range(1, 6)]
    assert out == [[f"f{n}"] for n in range(1, 6)]
    assert reorder.next_due() is None


def test_a_swapped_pair_is_restored() -> None:
    reorder: Reorderer[int] = Reorderer()
    assert reorder.push(1, 1, 0.0) == [1]
    assert reorder.push(3, 3, 0.0) == []
    assert reorder.push(2, 2, 0.001) == [2, 3]
    assert reorder.reordered == 1
    assert reorder.lost == 0


def test_a_lost_frame_is_given_up_after_the_wait() -> None:
    reorder: Reorderer[int] = Reorderer()
    reorder.push(1, 1, 0.0)
    assert reorder.push(3, 3, 0.020) == []
    assert reorder.push(4, 4, 0.040) == []
    assert reorder.next_due() == 0.020 + MAX_WAIT
    assert reorder.tick(0.050) == []
    assert reorder.tick(0.020 + MAX_WAIT) == [3, 4]
    assert reorder.lost == 1
    assert reorder.push(2, 2, 0.1) == []  # too late now
    assert reorder.dropped == 1


def test_too_many_held_frames_give_up_the_gap_at_once() -> None:
    reorder: Reorderer[int] = Reorderer()
    reorder.push(1, 1, 0.0)
    released = []
    for n in range(3, 3 + MAX_HELD + 1):
        released += reorder.push(n, n, 0.0)
    assert released == list(range(3, 3 + MAX_HELD + 1))


def test_duplicates_are_dropped_and_unnumbered_frames_pass() -> None:
    reorder: Reorderer[int] = Reorderer()
    assert reorder.push(5, 5, 0.0) == [5]
    assert reorder.push(5, 5, 0.0) == []
    assert reorder.push(None, 99, 0.0) == [99]
    assert reorder.dropped == 1


def _feed(reorder: Reorderer[int], counters: list[int]) -> list[int]:
    out: list[int] = []
    for i, counter in enumerate(counters):
        out += reorder.push(counter, counter, i * 0.020)
    return out


def test_one_wild_counter_is_dropped_and_the_call_goes_on() -> None:
    # 1005 is expected when the wild one comes
    for wild in (10**9, -5, 0, 1005 + MAX_JUMP + 1, 1004, 500):
        reorder: Reorderer[int] = Reorderer()
        counters = [1000 + n for n in range(10)]
        out = _feed(reorder, [*counters[:5], wild, *counters[5:]])
        assert out == counters, wild
        assert reorder.dropped == 1
        assert reorder.lost == 0


@pytest.mark.parametrize("new_start", [10**9, 0, 500, 1050 + MAX_JUMP + 1])
def test_a_counter_that_jumps_or_restarts_for_good_is_followed_after_a_short_run(
    new_start: int,
) -> None:
    reorder: Reorderer[int] = Reorderer()
    before = [1000 + n for n in range(50)]
    after = [new_start + n for n in range(50)]
    out = _feed(reorder, before + after)
    assert out == before + after[RESYNC_RUN:]  # at most RESYNC_RUN frames (120 ms) lost
    assert reorder.resyncs == 1


def test_a_counter_that_goes_back_a_little_for_good_is_followed() -> None:
    reorder: Reorderer[int] = Reorderer()
    out = _feed(reorder, [*range(100, 150), *range(120, 170)])
    assert out == [*range(100, 150), *range(120 + RESYNC_RUN, 170)]
    assert reorder.resyncs == 1


def test_a_short_replay_of_recent_frames_changes_nothing() -> None:
    reorder: Reorderer[int] = Reorderer()
    replay = list(range(21 - RESYNC_RUN + 1, 21))
    out = _feed(reorder, [*range(1, 21), *replay, *range(21, 30)])
    assert out == list(range(1, 30))
    assert reorder.dropped == len(replay)


def test_a_jump_within_the_window_is_a_gap_given_up() -> None:
    reorder: Reorderer[int] = Reorderer()
    out = _feed(reorder, [1, 2, 3, *range(3 + MAX_JUMP, 3 + MAX_JUMP + 20)])
    assert out == [1, 2, 3, *range(3 + MAX_JUMP, 3 + MAX_JUMP + 20)]
    assert reorder.lost == MAX_JUMP - 1
    assert reorder.resyncs == 0


def test_strangers_that_do_not_follow_each_other_never_resync() -> None:
    reorder: Reorderer[int] = Reorderer()
    normal = list(range(1, 40))
    counters: list[int] = []
    for n in normal:
        counters += [n, 10**6 + 7 * n]  # noise between every frame, never a run
    assert _feed(reorder, counters) == normal
    assert reorder.resyncs == 0


def test_held_frames_go_out_in_order_before_a_resync() -> None:
    reorder: Reorderer[int] = Reorderer()
    assert _feed(reorder, [1, 3, 4]) == [1]
    assert _feed(reorder, [5000 + n for n in range(RESYNC_RUN)]) == [3, 4]
    assert reorder.push(5000 + RESYNC_RUN, -1, 1.0) == [-1]
    assert reorder.next_due() is None


def test_rtp_sequence_numbers_wrap_at_16_bits() -> None:
    reorder: Reorderer[int] = Reorderer(modulus=2**16)
    counters = [(65530 + n) % 2**16 for n in range(12)]
    swapped = [*counters[:5], counters[6], counters[5], *counters[7:]]
    assert _feed(reorder, swapped) == counters
    assert reorder.reordered == 1
    assert reorder.dropped == 0
    assert reorder.push(65534, 0, 1.0) == []  # behind, across the wrap: a late duplicate
    assert reorder.dropped == 1


def test_a_gap_across_the_wrap_is_counted_exactly() -> None:
    reorder: Reorderer[int] = Reorderer(modulus=2**16)
    assert _feed(reorder, [65534, 65535, 2, 3]) == [65534, 65535]
    assert reorder.tick(10.0) == [2, 3]
    assert reorder.lost == 2  # 0 and 1


def test_a_modulus_too_small_is_refused() -> None:
    with pytest.raises(ValueError, match="too small"):
        Reorderer(modulus=128)
