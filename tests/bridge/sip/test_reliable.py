from __future__ import annotations

import pytest

from voxgate.bridge.sip.reliable import Retransmit2xx
from voxgate.bridge.sip.timers import Send

OK = b"SIP/2.0 200 OK\r\nContent-Length: 0\r\n\r\n"
PEER = ("198.51.100.4", 5060)


def resend_times(retransmit: Retransmit2xx, end: float) -> list[float]:
    times = []
    while (due := retransmit.next_due()) is not None and due <= end:
        sends = retransmit.handle_timer(due)
        assert sends in ([], [Send(OK, PEER)])
        if sends:
            times.append(due)
    return times


def test_resends_at_t1_doubling_to_t2_and_gives_up_at_64_t1() -> None:
    retransmit = Retransmit2xx(OK, PEER, 10.0)
    times = resend_times(retransmit, 100.0)
    assert times == [10 + t for t in (0.5, 1.5, 3.5, 7.5, 11.5, 15.5, 19.5, 23.5, 27.5, 31.5)]
    assert retransmit.timed_out
    assert retransmit.done
    assert not retransmit.acked
    assert retransmit.next_due() is None


@pytest.mark.parametrize(
    ("t1", "t2", "times", "give_up"),
    [
        pytest.param(0.25, 1.0, [0.25, 0.75, 1.75, 2.75], 16.0, id="t1-0.25-t2-1"),
        pytest.param(1.0, 2.0, [1.0, 3.0, 5.0, 7.0], 64.0, id="t1-1-t2-2"),
    ],
)
def test_follows_the_configured_timers(
    t1: float, t2: float, times: list[float], give_up: float
) -> None:
    retransmit = Retransmit2xx(OK, PEER, 0.0, t1, t2)
    assert resend_times(retransmit, times[-1]) == times
    resend_times(retransmit, give_up - 0.001)
    assert not retransmit.timed_out
    resend_times(retransmit, give_up)
    assert retransmit.timed_out


def test_ack_stops_it() -> None:
    retransmit = Retransmit2xx(OK, PEER, 0.0)
    assert resend_times(retransmit, 2.0) == [0.5, 1.5]
    retransmit.ack()
    assert retransmit.acked
    assert retransmit.done
    assert retransmit.next_due() is None
    assert retransmit.handle_timer(40.0) == []
    assert not retransmit.timed_out


def test_start_later_and_never_after_the_end() -> None:
    retransmit = Retransmit2xx(OK, PEER)
    assert retransmit.next_due() is None
    retransmit.start(3.0)
    assert retransmit.next_due() == 3.5
    retransmit.ack()
    retransmit.start(4.0)
    assert retransmit.next_due() is None


@pytest.mark.parametrize(("t1", "t2"), [(0.0, 4.0), (5.0, 4.0)], ids=["t1-zero", "t2-below-t1"])
def test_timers_that_would_spin_are_refused(t1: float, t2: float) -> None:
    with pytest.raises(ValueError, match="T1"):
        Retransmit2xx(OK, PEER, 0.0, t1, t2)
