"""What the call core takes and gives: its states, policy, outputs and counters.

:class:`~voxgate.bridge.call.Call` is fed events and time; it answers with
:data:`CallOutput` values the asyncio adapter carries out (send to the
carrier, send to the bot, open or close a socket, call the carrier's REST API).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Literal

from voxgate.bridge.events import DownstreamEvent, UpstreamEvent


class CallState(enum.Enum):
    CONNECTING = "connecting"
    ACTIVE = "active"
    RECONNECTING = "reconnecting"
    ENDING = "ending"
    ENDED = "ended"


@dataclass(frozen=True, slots=True)
class CallPolicy:
    """What the call does when things happen; built from the configuration."""

    hangup_after_playout: bool = True
    max_hangup_wait: float = 10.0
    reconnect_for: float = 10.0
    fallback: Literal["hangup", "apology"] = "hangup"
    carrier_rest: bool = False  # the carrier's REST API can hang up and transfer this call
    carrier_marks: bool = True  # the carrier echoes marks (Twilio, Telnyx)
    pre_connect_buffer: float = 1.0
    max_bot_errors: int = 50  # protocol errors on one bot socket before it is closed (1008)


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
    """Open a socket to the bot now (``attempt`` 1 is the first)."""

    attempt: int


@dataclass(frozen=True, slots=True)
class CloseBot:
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
    reason: str


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
    dtmf_out: int = 0
    bot_connects: int = 0
    bot_drops: int = 0
    protocol_errors: int = 0
    dropped_while_disconnected: int = 0
