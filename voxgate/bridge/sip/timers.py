"""What the four SIP transaction machines share (RFC 3261 section 17): timers without a clock.

Theory of operation
-------------------
Every timer of section 17 is derived from three values (table 4 of RFC
3261, appendix A): T1, the round-trip estimate (0.5 s), T2, the longest
retransmission interval for non-INVITE requests and INVITE responses (4 s),
and T4, how long a message may live in the network (5 s). Over UDP:

====== =========================== ==========================================
timer  value                       meaning
====== =========================== ==========================================
A      T1, doubling                INVITE retransmission (client, 17.1.1.2)
B      64*T1                       INVITE transaction timeout (client)
D      32 s                        wait for final-response retransmissions
E      T1, doubling up to T2       non-INVITE retransmission (client, 17.1.2.2)
F      64*T1                       non-INVITE transaction timeout (client)
G      T1, doubling up to T2       INVITE final-response retransmission (server)
H      64*T1                       wait for the ACK (server, 17.2.1)
I      T4                          absorb ACK retransmissions (server)
J      64*T1                       absorb non-INVITE retransmissions (server)
K      T4                          absorb response retransmissions (client)
====== =========================== ==========================================

A machine keeps its running timers in a :class:`TimerSet`: a deadline per
timer name, in seconds on the owner's clock. The owner asks
:meth:`TimerSet.next_due` when to come back and then hands the current time
to the machine's ``handle_timer(now)``, which takes the expired timers out in
deadline order.

A machine's outputs are :class:`Send` values (what to put on the wire now)
returned by each call, and events for the TU collected until it calls
``drain_events()``: :class:`ResponseReceived`, :class:`TimedOut`,
:class:`Terminated`. :class:`MachineBase` holds what the four machines have
in common: the request, the peer's address, the timers, the event list and
the :class:`State`.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from enum import Enum
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from voxgate.bridge.sip.message import Request, Response

Address = tuple[str, int]


@dataclass(frozen=True, slots=True)
class Timers:
    """T1, T2 and T4 of RFC 3261 (seconds) and the timers derived from them for UDP."""

    t1: float = 0.5
    t2: float = 4.0
    t4: float = 5.0
    d: float = 32.0  # timer D: "at least 32 seconds" over UDP, not derived from T1 (17.1.1.2)

    def __post_init__(self) -> None:
        if not (0 < self.t1 <= self.t2 and self.t4 > 0 and self.d > 0):
            raise ValueError(f"timers need 0 < T1 <= T2, T4 > 0 and D > 0: {self}")

    @property
    def timeout(self) -> float:
        """Timers B, F, H and J: 64*T1."""
        return 64 * self.t1


@dataclass(frozen=True, slots=True)
class Send:
    """An output: send ``data`` in one UDP datagram to ``addr``."""

    data: bytes
    addr: Address


@dataclass(frozen=True, slots=True)
class ResponseReceived:
    """A response for the TU (client side): ``request`` is the one it answers."""

    response: Response
    request: Request


@dataclass(frozen=True, slots=True)
class TimedOut:
    """The transaction gave up: no response (B, F) or no ACK (H) in 64*T1."""

    request: Request


@dataclass(frozen=True, slots=True)
class Terminated:
    """The transaction ended; its owner may forget it."""

    request: Request


class TimerSet:
    """Named deadlines; see the module docstring."""

    __slots__ = ("_due",)

    def __init__(self) -> None:
        self._due: dict[str, float] = {}

    def start(self, name: str, at: float) -> None:
        """Arm (or re-arm) timer ``name`` to fire at ``at``."""
        self._due[name] = at

    def stop(self, *names: str) -> None:
        for name in names:
            self._due.pop(name, None)

    def clear(self) -> None:
        self._due.clear()

    def __contains__(self, name: str) -> bool:
        return name in self._due

    def next_due(self) -> float | None:
        return min(self._due.values(), default=None)

    def expired(self, now: float) -> Iterator[str]:
        """Yield and disarm each timer due at or before ``now``, earliest first.

        A timer the consumer re-arms or stops while iterating is seen as it
        is then: one re-armed to a time still due fires again.
        """
        while self._due:
            name = min(self._due, key=lambda n: (self._due[n], n))
            if self._due[name] > now:
                return
            del self._due[name]
            yield name


class State(Enum):
    """The states of figures 5 to 8; each machine goes through some of them."""

    CALLING = "calling"  # client INVITE
    TRYING = "trying"  # non-INVITE, client and server
    PROCEEDING = "proceeding"
    COMPLETED = "completed"
    CONFIRMED = "confirmed"  # server INVITE
    TERMINATED = "terminated"


TransactionEvent = ResponseReceived | TimedOut | Terminated


class MachineBase:
    """The request, the peer, the timers and the events of one transaction."""

    def __init__(self, request: Request, addr: Address, timers: Timers, state: State) -> None:
        self.state = state
        self.request = request
        self.addr = addr  # where this transaction sends (requests or responses)
        self.timers = timers
        self._clock = TimerSet()
        self._events: list[TransactionEvent] = []
        self._interval = timers.t1  # the retransmission interval (A, E or G)

    def next_due(self) -> float | None:
        """When ``handle_timer`` must be called next, if ever."""
        return self._clock.next_due()

    def drain_events(self) -> list[TransactionEvent]:
        events, self._events = self._events, []
        return events

    def _terminate(self) -> None:
        self.state = State.TERMINATED
        self._clock.clear()
        self._events.append(Terminated(self.request))
