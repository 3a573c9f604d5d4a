"""The UAS core's retransmission of a 2xx to INVITE (RFC 3261 section 13.3.1.4), sans-I/O.

Theory of operation
-------------------
The INVITE server transaction ends as soon as it sends a 2xx, so the UAS core
makes the 2xx reliable itself: it sends the response again T1 after the
first send, then at intervals doubling up to T2, until the dialog layer
reports the ACK (:meth:`Retransmit2xx.ack`). If no ACK comes within 64*T1 of
the first send, the retransmissions stop and :attr:`Retransmit2xx.timed_out`
is set: the UAS should then confirm the dialog and end it with a BYE
(13.3.1.4).

The first send is the caller's (through ``TransactionLayer.respond``); this
object only repeats it, from the time given to the constructor or to
:meth:`start`. The owner calls :meth:`handle_timer` when :meth:`next_due`
says.
"""

from __future__ import annotations

from voxgate.bridge.sip.timers import Address, Send, TimerSet


class Retransmit2xx:
    """Repeats one 2xx until ``ack()``; see the module docstring."""

    def __init__(
        self,
        response: bytes,
        addr: Address,
        now: float | None = None,
        t1: float = 0.5,
        t2: float = 4.0,
    ) -> None:
        if not 0 < t1 <= t2:
            raise ValueError(f"need 0 < T1 <= T2, not T1={t1} T2={t2}")
        self.response = response
        self.addr = addr
        self.timed_out = False
        self.acked = False
        self._t1 = t1
        self._t2 = t2
        self._interval = t1
        self._clock = TimerSet()
        if now is not None:
            self.start(now)

    def start(self, now: float) -> None:
        """The 2xx was first sent at ``now``: arm the retransmission and the 64*T1 limit."""
        if self.done:
            return
        self._interval = self._t1
        self._clock.start("retransmit", now + self._t1)
        self._clock.start("give-up", now + 64 * self._t1)

    @property
    def done(self) -> bool:
        """Nothing more to send: acknowledged or given up."""
        return self.acked or self.timed_out

    def ack(self) -> None:
        """The ACK arrived: stop retransmitting."""
        self.acked = True
        self._clock.clear()

    def next_due(self) -> float | None:
        return self._clock.next_due()

    def handle_timer(self, now: float) -> list[Send]:
        sends: list[Send] = []
        for name in self._clock.expired(now):
            if name == "retransmit":
                sends.append(Send(self.response, self.addr))
                self._interval = min(2 * self._interval, self._t2)
                self._clock.start("retransmit", now + self._interval)
            else:
                self.timed_out = True
                self._clock.clear()
        return sends
