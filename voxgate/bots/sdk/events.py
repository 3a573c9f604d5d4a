"""What a bot hears from voxgate: one typed event per ``voxgate.v1`` message.

The SDK parses the bridge's messages with voxgate's own sans-I/O dialect
(:class:`voxgate.bridge.botlink.v1.V1Dialect`, bot side) and hands the bot these small
frozen dataclasses instead, named as a bot author thinks of them. :class:`SpeechStarted`
and :class:`SpeechEnded` are not on the wire: the SDK's voice-activity detector makes them
from the caller's audio when a bot asks for it (:meth:`voxgate.bots.sdk.Call.detect_speech`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Literal, assert_never

from voxgate.bridge.events import (
    DtmfReceived,
    ErrorReported,
    HoldChanged,
    MarkPlayed,
    MediaReceived,
    StreamConnected,
    StreamStarted,
    StreamStopped,
    UpstreamEvent,
)
from voxgate.codecs.formats import AudioFormat, decode
from voxgate.codecs.pcm import Pcm


@dataclass(frozen=True, slots=True)
class Carrier:
    """The caller's leg: the carrier's name (``"twilio"``, ``"sip"``...) and its call id."""

    name: str | None
    call_id: str
    account_id: str | None = None


@dataclass(frozen=True, slots=True)
class Start:
    """The call's stream began: who calls whom, and the audio format of this socket."""

    call_id: str
    stream_id: str
    media_format: AudioFormat
    audio_transport: Literal["json", "binary"]
    direction: str = "inbound"
    from_number: str | None = None
    to_number: str | None = None
    carrier: Carrier | None = None
    custom_parameters: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))
    opening_text: str | None = None
    system_prompt: str | None = None
    reconnected: bool = False


@dataclass(frozen=True, slots=True)
class Audio:
    """A chunk of the caller's audio (normally 20 ms), as bytes in the socket's format."""

    data: bytes
    seq: int
    timestamp_ms: int
    media_format: AudioFormat

    def samples(self) -> Pcm:
        """The chunk as int16 samples at ``media_format.sample_rate``."""
        return decode(self.data, self.media_format)

    @property
    def duration_ms(self) -> float:
        fmt = self.media_format
        return 1000 * len(self.data) / fmt.bytes_per_sample / fmt.sample_rate


@dataclass(frozen=True, slots=True)
class Dtmf:
    """The caller pressed ``digit`` (0-9, *, #, A-D)."""

    digit: str
    duration_ms: int | None = None
    method: str | None = None


@dataclass(frozen=True, slots=True)
class Hold:
    """The caller's side put the call on hold (or took it off)."""

    on_hold: bool


@dataclass(frozen=True, slots=True)
class Mark:
    """Everything the bot sent before its mark ``name`` has played (or was cleared)."""

    name: str


@dataclass(frozen=True, slots=True)
class Stop:
    """The stream ended (``caller_hangup``, ``bot_hangup``, ``transferred``...); nothing follows."""

    reason: str | None = None


@dataclass(frozen=True, slots=True)
class Error:
    """voxgate refused one of the bot's messages, or could not do what it asked."""

    code: str
    message: str


@dataclass(frozen=True, slots=True)
class SpeechStarted:
    """The caller started speaking, ``at_ms`` into the caller's audio (voice activity)."""

    at_ms: int


@dataclass(frozen=True, slots=True)
class SpeechEnded:
    """The caller stopped speaking at ``at_ms`` (after the hangover of silence)."""

    at_ms: int


Event = Start | Audio | Dtmf | Hold | Mark | Stop | Error | SpeechStarted | SpeechEnded


def start_from(
    event: StreamStarted, transport: Literal["json", "binary"], carrier_name: str | None
) -> Start:
    """The SDK's :class:`Start` for the dialect's parsed ``start``."""
    return Start(
        call_id=event.session_id or event.call_id,
        stream_id=event.stream_id,
        media_format=event.media_format,
        audio_transport=transport,
        direction=event.direction,
        from_number=event.from_number,
        to_number=event.to_number,
        carrier=Carrier(carrier_name, event.call_id, event.account_id),
        custom_parameters=MappingProxyType(dict(event.custom_parameters)),
        opening_text=event.opening_text,
        system_prompt=event.system_prompt,
        reconnected=event.reconnected,
    )


def event_from(event: UpstreamEvent, media_format: AudioFormat) -> Event | None:
    """The SDK event for one parsed message after ``start`` (None: nothing to tell)."""
    result: Event | None = None
    match event:
        case MediaReceived(payload=payload, sequence=seq, timestamp_ms=timestamp_ms):
            result = Audio(payload, seq or 0, timestamp_ms or 0, media_format)
        case DtmfReceived(digit=digit, duration_ms=duration_ms, method=method):
            result = Dtmf(digit, duration_ms, method)
        case HoldChanged(on_hold=on_hold):
            result = Hold(on_hold)
        case MarkPlayed(name=name):
            result = Mark(name)
        case StreamStopped(reason=reason):
            result = Stop(reason)
        case ErrorReported(code=code, message=message):
            result = Error(code, message)
        case StreamStarted() | StreamConnected():
            pass
        case _:
            assert_never(event)
    return result
