"""What the call core takes and gives: its states, policy, outputs and counters.

:class:`~voxgate.bridge.call.Call` is fed events and time; it answers with
:data:`CallOutput` values the asyncio adapter carries out (send to the
carrier, send to the bot, open or close a socket, call the carrier's REST API).

Every bot socket is one *attempt*, numbered from 1 by :class:`ConnectBot`; the
adapter reports what happens to a socket with its attempt number, and the call
ignores reports about an attempt it has given up (a late close of an old socket
must not touch the one that replaced it).
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Final, Literal, get_args

from voxgate.bridge.events import DownstreamEvent, UpstreamEvent

StopReason = Literal[
    "caller_hangup",
    "bot_hangup",
    "transferred",
    "api_hangup",
    "bot_error",
    "bot_unreachable",
    "carrier_error",
    "internal_error",
    "shutdown",
]
"""Why a call ended: the ``reason`` of ``stop`` to the bot and of :class:`CallEnded`."""

STOP_REASONS: Final[tuple[StopReason, ...]] = get_args(StopReason)
"""Every reason a call can end with; a fixed set (it labels metrics). docs/PROTOCOL.md, ``stop``."""

ENDED_BY: Final[Mapping[StopReason, str]] = {
    "caller_hangup": "caller",
    "bot_hangup": "bot",
    "transferred": "bot",
    "api_hangup": "api",
    "bot_error": "voxgate",
    "bot_unreachable": "voxgate",
    "carrier_error": "carrier",
    "internal_error": "voxgate",
    "shutdown": "voxgate",
}
"""Who ended a call, by its reason (for the end-of-call summary)."""


class CallState(enum.Enum):
    CONNECTING = "connecting"
    ACTIVE = "active"
    RECONNECTING = "reconnecting"
    ENDING = "ending"
    ENDED = "ended"


@dataclass(frozen=True, slots=True)
class CallPolicy:
    """What the call does when things happen, and what it holds at most; from the configuration."""

    hangup_after_playout: bool = True
    max_hangup_wait: float = 10.0
    connect_timeout: float = 5.0  # bot.connect_timeout: the call's start bounds its attempts
    reconnect_for: float = 10.0  # bot.reconnect_for: the reconnection budget, in seconds
    fallback: Literal["hangup", "apology"] = "hangup"
    carrier_rest: bool = False  # the carrier's REST API can hang up and transfer this call
    carrier_marks: bool = True  # the carrier echoes marks (Twilio, Telnyx)
    carrier_dtmf_events: bool = False  # the leg sends DTMF itself (RFC 4733), not as tones
    pre_connect_buffer: float = 1.0
    max_bot_errors: int = 50  # protocol errors on one bot socket before it is closed (1008)
    max_queued_audio: float = 300.0  # call.max_queued_audio: seconds queued for the caller
    max_marks: int = 1000  # call.max_marks: the bot's marks not yet reported
    max_mark_name: int = 256  # call.max_mark_name: UTF-8 bytes of one mark's name
    max_transcript_bytes: int = 262144  # call.max_transcript_bytes: transcript text kept


# --- outputs ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ToCarrier:
    event: DownstreamEvent
    since: float | None = None  # for audio: when the bot's audio reached voxgate


@dataclass(frozen=True, slots=True)
class ToBot:
    event: UpstreamEvent


@dataclass(frozen=True, slots=True)
class ConnectBot:
    """Open bot socket number ``attempt`` (1 is the first) now.

    ``timeout``: how long this attempt may take, in seconds; the call gives the attempt
    up (:class:`CloseBot` with this attempt) when it is over.
    """

    attempt: int
    timeout: float


@dataclass(frozen=True, slots=True)
class CloseBot:
    """Close bot socket ``attempt`` with ``code`` and ``reason``, or abandon it if it is still
    connecting. The reason is one of :data:`STOP_REASONS` or a protocol error code."""

    attempt: int
    code: int
    reason: str


@dataclass(frozen=True, slots=True)
class CloseCarrier:
    code: int
    reason: str


@dataclass(frozen=True, slots=True)
class CarrierHangup:
    """Ask the carrier's REST API to end the call."""


@dataclass(frozen=True, slots=True)
class CarrierTransfer:
    """Ask the carrier's REST API to move the call to ``target``."""

    target: str


@dataclass(frozen=True, slots=True)
class CallEnded:
    """The call is over; the last output. ``summary`` is :meth:`Call.summary
    <voxgate.bridge.call.Call.summary>` at that moment (its counters are totals to add to
    the process's)."""

    reason: StopReason
    summary: Mapping[str, object] = field(default_factory=dict, compare=False)


CallOutput = (
    ToCarrier
    | ToBot
    | ConnectBot
    | CloseBot
    | CloseCarrier
    | CarrierHangup
    | CarrierTransfer
    | CallEnded
)


@dataclass(slots=True)
class CallStats:
    frames_in: int = 0  # caller frames received
    frames_to_bot: int = 0
    bot_audio_bytes: int = 0
    dtmf_in: int = 0
    dtmf_out: int = 0  # digits
    marks: int = 0  # the bot's marks accepted
    bot_connects: int = 0
    bot_drops: int = 0
    protocol_errors: int = 0
    refused: int = 0  # the bot's messages refused for a per-call bound (queue_full...)
    dropped_while_disconnected: int = 0
    transcripts_dropped: int = 0
