"""The vocabulary every media-stream dialect translates to and from.

A media stream has a *telephony side* (it has the caller's audio) and an
*application side* (it decides what the caller hears). Carriers (Twilio,
Telnyx) are the telephony side of the stream they open to voxgate; voxgate is
the telephony side of the stream it opens to a bot. So every dialect module
(``carriers.twilio``, ``carriers.telnyx``, ``botlink.v1``) translates both
directions, in both roles:

- *upstream* events travel telephony side -> application side
  (:data:`UpstreamEvent`: started, media, DTMF, hold, mark played, stopped, error);
- *downstream* events travel application side -> telephony side
  (:data:`DownstreamEvent`: audio, clear, mark, DTMF to send, transfer,
  hangup, transcript).

Events are small frozen dataclasses named in the past tense. Audio payloads
are raw bytes in the stream's :class:`~voxgate.codecs.AudioFormat` (no base64
here: that is wire detail for the dialects).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from voxgate.codecs.formats import PCMU_8K, AudioFormat

# --- upstream: telephony side -> application side -------------------------------------


@dataclass(frozen=True, slots=True)
class StreamConnected:
    """The socket is up and speaks the dialect (Twilio/Telnyx ``connected``)."""

    protocol: str = "Call"
    version: str = "1.0.0"


@dataclass(frozen=True, slots=True)
class StreamStarted:
    """The stream's metadata; media follows.

    ``stream_id`` names this media stream (Twilio ``streamSid``, Telnyx
    ``stream_id``, voxgate's own id towards a bot). ``call_id`` is the
    carrier's id of the call, the one its REST API takes (Twilio ``callSid``,
    Telnyx ``call_control_id``).
    """

    stream_id: str
    call_id: str
    media_format: AudioFormat = PCMU_8K
    account_id: str | None = None  # Twilio accountSid, Telnyx user_id
    session_id: str | None = None  # Telnyx call_session_id; voxgate's call id towards a bot
    from_number: str | None = None
    to_number: str | None = None
    direction: str = "inbound"  # "inbound" or "outbound", seen from voxgate
    tracks: tuple[str, ...] = ("inbound",)
    custom_parameters: Mapping[str, str] = field(default_factory=dict)
    client_state: str | None = None  # Telnyx, base64 as sent
    opening_text: str | None = None  # voxgate.v1: what the bot should say first
    system_prompt: str | None = None  # voxgate.v1
    reconnected: bool = False  # voxgate.v1: a new socket for a call already under way


@dataclass(frozen=True, slots=True)
class MediaReceived:
    """One chunk of the caller's audio (normally 20 ms).

    ``sequence`` is the dialect's message sequence number and ``chunk`` its
    media chunk counter, when it has them (used to restore order);
    ``timestamp_ms`` counts from the start of the stream.
    """

    payload: bytes
    sequence: int | None = None
    chunk: int | None = None
    timestamp_ms: int | None = None
    track: str = "inbound"


@dataclass(frozen=True, slots=True)
class DtmfReceived:
    """The caller pressed a key. ``method``: "rfc4733", "info", "inband" or the carrier's."""

    digit: str
    duration_ms: int | None = None
    method: str | None = None


@dataclass(frozen=True, slots=True)
class HoldChanged:
    """The far end put the call on hold (``on_hold``) or took it off (a SIP re-INVITE)."""

    on_hold: bool


@dataclass(frozen=True, slots=True)
class MarkPlayed:
    """All audio sent before the mark ``name`` has been played to the caller (or cleared)."""

    name: str


@dataclass(frozen=True, slots=True)
class StreamStopped:
    """The stream ended (caller hung up, call moved, stream stopped). Nothing follows."""

    reason: str | None = None


@dataclass(frozen=True, slots=True)
class ErrorReported:
    """The other side reports an error (Telnyx ``error`` frames, voxgate.v1 ``error``)."""

    code: str
    message: str


UpstreamEvent = (
    StreamConnected
    | StreamStarted
    | MediaReceived
    | DtmfReceived
    | HoldChanged
    | MarkPlayed
    | StreamStopped
    | ErrorReported
)


# --- downstream: application side -> telephony side -----------------------------------


@dataclass(frozen=True, slots=True)
class AudioSent:
    """Audio for the caller, of any length, in the stream's format."""

    payload: bytes


@dataclass(frozen=True, slots=True)
class ClearRequested:
    """Barge-in: drop every queued audio chunk now and report pending marks as played."""


@dataclass(frozen=True, slots=True)
class MarkRequested:
    """Report ``name`` back (as :class:`MarkPlayed`) once the audio sent before it has played."""

    name: str


@dataclass(frozen=True, slots=True)
class DtmfSendRequested:
    """Send keypresses to the far end (for bots navigating phone trees)."""

    digits: str
    duration_ms: int = 100


@dataclass(frozen=True, slots=True)
class TransferRequested:
    """Move the call to ``target`` (a phone number or SIP URI)."""

    target: str


@dataclass(frozen=True, slots=True)
class HangupRequested:
    """End the call (after queued audio has played, unless the policy says otherwise)."""

    reason: str | None = None


@dataclass(frozen=True, slots=True)
class TranscriptReceived:
    """What was said, as the bot understood or produced it (kept by the call, within a budget)."""

    role: str  # "caller" or "bot"
    text: str
    final: bool = True


DownstreamEvent = (
    AudioSent
    | ClearRequested
    | MarkRequested
    | DtmfSendRequested
    | TransferRequested
    | HangupRequested
    | TranscriptReceived
)
