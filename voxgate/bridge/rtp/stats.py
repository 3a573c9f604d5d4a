"""Reception statistics of one RTP source (RFC 3550 appendices A.1, A.3, A.8).

Theory of operation
-------------------
*Sequence numbers* (A.1). The 16-bit sequence number is extended with a count
of wraps. A packet less than ``MAX_DROPOUT`` ahead of the highest seen advances
it (a smaller number means a wrap: one more cycle). A packet up to
``MAX_MISORDER`` behind is late (reordered) or a duplicate and is counted
as received, so, as section 6.4.1 says, ``lost`` may go negative. Any other
packet is a jump: it is not counted, but if the next packet follows it by one
the source is taken to have restarted its numbering: the sequence counts
(expected, received, the report interval) and the jitter's reference start
over from there; ``reordered``, ``duplicates`` and ``octets`` go on. Unlike
A.1 there is no probation for a new source: the first packet is counted (the
SIP layer already knows which source to expect).

*Duplicates.* A 128-bit mask remembers which of the extended numbers just
below the highest have arrived; since ``MAX_MISORDER`` < 128 every packet from
behind falls inside it and is either a duplicate (bit set) or reordered.

*Jitter* (A.8, section 6.4.1). With transit = arrival * clock_rate - RTP timestamp,
each packet's ``D`` is the change in transit from the previous packet and
``J += (|D| - J) / 16``, kept as a float in timestamp units.

*Report blocks* (A.3). ``fraction_lost`` covers the interval since the previous
report block; ``cumulative_lost`` is clamped to the signed 24-bit field.

Sans-I/O: arrival times are passed in, in seconds.
"""

from __future__ import annotations

from typing import Final

from voxgate.bridge.rtp.rtcp import ReportBlock

RTP_SEQ_MOD: Final = 1 << 16
MAX_DROPOUT: Final = 3000
MAX_MISORDER: Final = 100
_WINDOW_MASK: Final = (1 << 128) - 1
_LOST_MAX: Final = 0x7FFFFF
_LOST_MIN: Final = -0x800000


class ReceiverStats:
    """What one receiver learned of one source."""

    def __init__(self, clock_rate: int) -> None:
        if clock_rate <= 0:
            raise ValueError(f"clock rate must be positive, not {clock_rate}")
        self._clock_rate = clock_rate
        self.restart()

    def restart(self) -> None:
        """Forget everything: a new SSRC (the caller decides when)."""
        self._started = False
        self._reset_sequence(0)
        self._received = 0
        self.reordered = 0
        self.duplicates = 0
        self.octets = 0
        self._jitter = 0.0
        self._last_transit: float | None = None
        self._last_timestamp = 0

    def _reset_sequence(self, sequence: int) -> None:
        """A.1 ``init_seq``: ``sequence`` becomes the base of the counts."""
        self._base = sequence
        self._max = sequence
        self._cycles = 0
        self._bad = RTP_SEQ_MOD + 1  # no sequence number equals this
        self._received = 0
        self._expected_prior = 0
        self._received_prior = 0
        self._seen = 0  # bit i: extended number (highest - i) arrived

    def received(
        self, sequence: int, rtp_timestamp: int, arrival: float, payload_bytes: int
    ) -> None:
        """Account one packet of this source that arrived at ``arrival`` seconds."""
        if not self._accept(sequence & 0xFFFF):
            return
        self._received += 1
        self.octets += payload_bytes
        self._update_jitter(rtp_timestamp & 0xFFFF_FFFF, arrival)

    def _accept(self, sequence: int) -> bool:
        """A.1 ``update_seq``: whether the packet counts, with the counters updated."""
        if not self._started:
            self._started = True
            self._reset_sequence(sequence)
            self._seen = 1
            return True
        ahead = (sequence - self._max) % RTP_SEQ_MOD
        if ahead == 0:
            self._behind(0)
        elif ahead < MAX_DROPOUT:
            if sequence < self._max:
                self._cycles += 1
            self._max = sequence
            self._seen = ((self._seen << ahead) | 1) & _WINDOW_MASK
        elif ahead <= RTP_SEQ_MOD - MAX_MISORDER:
            if sequence != self._bad:
                self._bad = (sequence + 1) % RTP_SEQ_MOD
                return False
            # Two sequential packets after a jump: the source restarted its numbering.
            self._reset_sequence(sequence)
            self._seen = 1
            self._last_transit = None
        else:
            self._behind(RTP_SEQ_MOD - ahead)
        return True

    def _behind(self, distance: int) -> None:
        bit = 1 << distance
        if self._seen & bit:
            self.duplicates += 1
        else:
            self.reordered += 1
            self._seen |= bit

    def _update_jitter(self, timestamp: int, arrival: float) -> None:
        """A.8: J += (|D| - J) / 16, D the change in transit time, in timestamp units."""
        if self._last_transit is None:
            self._last_transit = arrival * self._clock_rate
            self._last_timestamp = timestamp
            return
        # Transit differences only: the timestamp difference, wrapped to signed 32 bits.
        stamp_delta = (timestamp - self._last_timestamp + (1 << 31)) % (1 << 32) - (1 << 31)
        arrival_units = arrival * self._clock_rate
        delta = arrival_units - self._last_transit - stamp_delta
        self._last_transit = arrival_units
        self._last_timestamp = timestamp
        self._jitter += (abs(delta) - self._jitter) / 16

    # --- what was learned ---------------------------------------------------------------

    @property
    def highest_extended(self) -> int:
        return self._cycles * RTP_SEQ_MOD + self._max

    @property
    def expected(self) -> int:
        return self.highest_extended - self._base + 1 if self._started else 0

    @property
    def received_count(self) -> int:
        """Packets counted, duplicates and late ones included (section 6.4.1)."""
        return self._received

    @property
    def lost(self) -> int:
        """Expected minus received: negative when duplicates outnumber losses."""
        return self.expected - self._received

    @property
    def jitter(self) -> float:
        """Interarrival jitter in timestamp units."""
        return self._jitter

    @property
    def jitter_ms(self) -> float:
        return self._jitter * 1000 / self._clock_rate

    def report_block(
        self, ssrc: int, last_sr: int = 0, delay_since_last_sr: int = 0
    ) -> ReportBlock:
        """A report block on this source (A.3); starts the next fraction-lost interval."""
        expected = self.expected
        expected_interval = expected - self._expected_prior
        received_interval = self._received - self._received_prior
        self._expected_prior = expected
        self._received_prior = self._received
        lost_interval = expected_interval - received_interval
        fraction = 0
        if expected_interval > 0 and lost_interval > 0:
            fraction = min((lost_interval << 8) // expected_interval, 255)
        return ReportBlock(
            ssrc=ssrc,
            fraction_lost=fraction,
            cumulative_lost=max(_LOST_MIN, min(self.lost, _LOST_MAX)),
            highest_sequence=self.highest_extended & 0xFFFF_FFFF,
            jitter=min(int(self._jitter), 0xFFFF_FFFF),
            last_sr=last_sr,
            delay_since_last_sr=delay_since_last_sr,
        )
