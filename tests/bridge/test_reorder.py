from __future__ import annotations

from voxgate.bridge.reorder import MAX_HELD, MAX_WAIT, Reorderer


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
