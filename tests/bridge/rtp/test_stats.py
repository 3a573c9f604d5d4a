from __future__ import annotations

import pytest

from voxgate.bridge.rtp.rtcp import ReportBlock
from voxgate.bridge.rtp.stats import MAX_DROPOUT, ReceiverStats

RATE = 8000
FRAME = 160  # timestamp units in 20 ms at 8 kHz


def _feed(stats: ReceiverStats, sequences: list[int]) -> None:
    """Packets sent every 20 ms with constant transit, arriving in the order given."""
    for sequence in sequences:
        stats.received(sequence, sequence * FRAME, sequence * 0.020, 160)


# (arrival order, expected, received, lost, reordered, duplicates, highest extended)
SEQUENCES = [
    pytest.param(list(range(100)), (100, 100, 0, 0, 0, 99), id="clean"),
    pytest.param([0, 1, 2, 5, 6, 7, 8, 9], (10, 8, 2, 0, 0, 9), id="two-lost"),
    pytest.param([0, 1, 3, 2, 4], (5, 5, 0, 1, 0, 4), id="swap"),
    pytest.param([0, 4, 3, 2, 1, 5], (6, 6, 0, 3, 0, 5), id="reversed-run"),
    pytest.param([0, 1, 1, 2], (3, 4, -1, 0, 1, 2), id="duplicate"),
    pytest.param([0, 2, 1, 2, 1], (3, 5, -2, 1, 2, 2), id="late-then-duplicates"),
    pytest.param([65534, 65535, 0, 1], (4, 4, 0, 0, 0, 65536 + 1), id="wrap"),
    pytest.param([65535, 1, 0, 2], (4, 4, 0, 1, 0, 65536 + 2), id="swap-across-wrap"),
    pytest.param([0, 1, 2, 1000], (1001, 4, 997, 0, 0, 1000), id="dropout-below-limit"),
    pytest.param([0, 1, 2, 1000, 3], (1001, 4, 997, 0, 0, 1000), id="far-behind-ignored"),
    pytest.param([0, 1, 2, 9000, 3, 4], (5, 5, 0, 0, 0, 4), id="one-wild-number-ignored"),
    pytest.param([0, 1, 2, 9000, 9001, 9002], (2, 2, 0, 0, 0, 9002), id="jump-resyncs-after-two"),
    # A.1: up to MAX_MISORDER - 1 behind is late (counted, even before the first packet).
    pytest.param([150, 51, 151], (2, 3, -1, 1, 0, 151), id="99-behind-is-late"),
    pytest.param([150, 50, 151], (2, 2, 0, 0, 0, 151), id="100-behind-is-a-jump"),
]


@pytest.mark.parametrize(("order", "counts"), SEQUENCES)
def test_sequence_accounting(order: list[int], counts: tuple[int, ...]) -> None:
    stats = ReceiverStats(RATE)
    _feed(stats, order)
    assert (
        stats.expected,
        stats.received_count,
        stats.lost,
        stats.reordered,
        stats.duplicates,
        stats.highest_extended,
    ) == counts


def test_nothing_received_reports_zeros() -> None:
    stats = ReceiverStats(RATE)
    assert (stats.expected, stats.received_count, stats.lost, stats.jitter) == (0, 0, 0, 0.0)
    assert stats.report_block(7) == ReportBlock(7, 0, 0, 0, 0, 0, 0)


def test_many_wraps_count_cycles() -> None:
    stats = ReceiverStats(RATE)
    _feed(stats, [n % 65536 for n in range(3 * 65536 + 10)])
    assert stats.highest_extended == 3 * 65536 + 9
    assert stats.expected == stats.received_count == 3 * 65536 + 10
    assert stats.report_block(1).highest_sequence == 3 * 65536 + 9


def test_fraction_lost_covers_the_interval_since_the_previous_report() -> None:
    stats = ReceiverStats(RATE)
    _feed(stats, [0, 1, 2, 5, 6, 7, 8, 9])  # 2 of 10 lost
    first = stats.report_block(1, last_sr=0xAABBCCDD, delay_since_last_sr=65536)
    assert first == ReportBlock(1, 2 * 256 // 10, 2, 9, 0, 0xAABBCCDD, 65536)
    for n in range(10, 20):  # a clean interval
        stats.received(n, n * FRAME, n * 0.020, 160)
    assert stats.report_block(1).fraction_lost == 0
    assert stats.report_block(1).cumulative_lost == 2
    for n in (20, 23):  # 21 and 22 lost: 2 of 4
        stats.received(n, n * FRAME, n * 0.020, 160)
    assert stats.report_block(1).fraction_lost == 128


def test_duplicates_make_the_interval_loss_zero_not_negative() -> None:
    stats = ReceiverStats(RATE)
    _feed(stats, [0, 1, 1, 1, 2])
    block = stats.report_block(1)
    assert (block.fraction_lost, block.cumulative_lost) == (0, -2)


def test_cumulative_loss_is_clamped_to_24_bits() -> None:
    stats = ReceiverStats(RATE)
    step = MAX_DROPOUT - 1  # the largest advance still taken as loss, not a jump
    packets = 0x800000 // (step - 1) + 2
    _feed(stats, [(n * step) % 65536 for n in range(packets)])
    assert stats.lost > 0x7FFFFF
    assert stats.report_block(1).cumulative_lost == 0x7FFFFF
    assert stats.report_block(1).highest_sequence == stats.highest_extended & 0xFFFFFFFF


def test_cumulative_loss_is_clamped_below() -> None:
    stats = ReceiverStats(RATE)
    stats.received(0, 0, 0.0, 160)
    stats._received = 0x900000  # as after millions of duplicates
    assert stats.report_block(1).cumulative_lost == -0x800000


def test_jitter_is_zero_for_constant_transit() -> None:
    stats = ReceiverStats(RATE)
    for n in range(200):
        stats.received(n, 1000 + n * FRAME, 5.0 + n * 0.020, 160)
    assert stats.jitter == pytest.approx(0.0, abs=1e-6)
    assert stats.report_block(1).jitter == 0


def test_jitter_is_zero_across_a_timestamp_wrap() -> None:
    stats = ReceiverStats(RATE)
    for n in range(50):
        stats.received(n, (2**32 - 25 * FRAME + n * FRAME) % 2**32, n * 0.020, 160)
    assert stats.jitter == pytest.approx(0.0, abs=1e-6)


def test_jitter_converges_to_twice_an_alternating_delay() -> None:
    # Every other packet 5 ms late: transit alternates, |D| = 5 ms = 40 units each time,
    # and J += (|D| - J) / 16 converges to 40.
    stats = ReceiverStats(RATE)
    for n in range(400):
        stats.received(n, n * FRAME, n * 0.020 + (0.005 if n % 2 else 0.0), 160)
    assert stats.jitter == pytest.approx(40.0, rel=1e-6)
    assert stats.jitter_ms == pytest.approx(5.0, rel=1e-6)
    assert stats.report_block(1).jitter in (39, 40)


def test_jitter_after_n_packets_follows_the_recurrence() -> None:
    stats = ReceiverStats(RATE)
    for n in range(11):
        stats.received(n, n * FRAME, n * 0.020 + (0.005 if n % 2 else 0.0), 160)
    # ten differences of 40 units: J = 40 * (1 - (15/16) ** 10)
    assert stats.jitter == pytest.approx(40 * (1 - (15 / 16) ** 10))


def test_jitter_at_16_khz() -> None:
    stats = ReceiverStats(16000)
    for n in range(400):
        stats.received(n, n * 320, n * 0.020 + (0.005 if n % 2 else 0.0), 320)
    assert stats.jitter == pytest.approx(80.0, rel=1e-6)
    assert stats.jitter_ms == pytest.approx(5.0, rel=1e-6)


def test_octets_count_payload_bytes_of_counted_packets() -> None:
    stats = ReceiverStats(RATE)
    _feed(stats, [0, 1, 30000, 2])  # 30000: a jump, not counted
    assert stats.octets == 3 * 160


def test_restart_starts_over() -> None:
    stats = ReceiverStats(RATE)
    _feed(stats, [0, 1, 1, 3, 2])
    stats.report_block(1)
    stats.restart()
    assert (stats.expected, stats.received_count, stats.reordered, stats.duplicates) == (0,) * 4
    _feed(stats, [40000, 40001])
    assert (stats.expected, stats.lost, stats.highest_extended) == (2, 0, 40001)
    assert stats.report_block(2).fraction_lost == 0


def test_clock_rate_must_be_positive() -> None:
    with pytest.raises(ValueError, match="clock rate"):
        ReceiverStats(0)
