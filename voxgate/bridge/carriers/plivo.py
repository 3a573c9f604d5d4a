"""Plivo Audio Streams dialect (bidirectional), in both roles (sans-I/O).

Theory of operation
-------------------
Plivo opens a WebSocket to voxgate when the call's XML holds
``<Stream bidirectional="true" keepCallAlive="true"
contentType="audio/x-mulaw;rate=8000">wss://.../v1/streams/plivo</Stream>``
and speaks JSON text frames; voxgate is then the *application side*
(:meth:`PlivoDialect.parse_upstream`, :meth:`PlivoDialect.format_downstream`).
As the *telephony side* (:meth:`PlivoDialect.format_upstream`,
:meth:`PlivoDialect.parse_downstream`) it sends what Plivo would send.

One instance per stream; its state::

    NEW --start--> STARTED --socket closes (or stop)--> (nothing follows)

Plivo sends no hello: ``start`` comes first and sets the stream id
(``start.streamId``, and ``streamId`` at the top level of later messages),
the call id (``start.callId``, the ``call_uuid`` the REST API takes), the
account (``start.accountId``) and the media format. The stream's custom
parameters come in ``extra_headers``, the ``extraHeaders`` attribute of
``<Stream>`` as ``key=value`` pairs separated by ``,`` or ``;``. Media, DTMF
and ``playedStream`` before ``start`` raise ``not_started``; a message
naming another ``streamId`` raises ``wrong_stream``. Numbers are JSON
numbers (``sequenceNumber``, ``chunk``) except ``media.timestamp``, a string
of Unix milliseconds: a wall clock, so its range is :data:`MAX_JSON_INTEGER`
(the call turns it into the stream's own clock).

Towards Plivo: ``playAudio`` ``{"media": {"contentType", "sampleRate",
"payload"}}``; ``checkpoint`` ``{"name"}``, answered by ``playedStream``
``{"name"}`` once the audio before it has played (a mark in voxgate's
terms); ``clearAudio``, answered by ``clearedAudio``. Every message to Plivo
carries ``streamId``. Hangup and transfer are REST calls (:mod:`.rest`);
``format_downstream`` returns ``None`` for them, for DTMF to send and for
transcripts. Errors are handled as for Twilio and Telnyx
(:class:`~._stream.CarrierDialect`).

Encodings: ``audio/x-mulaw`` at 8000 Hz only. Plivo also streams
``audio/x-l16`` (8000 or 16000 Hz), but no Plivo page says in which byte
order, so such a ``start`` is ``unsupported`` (fatal, 1003) rather than
guessed; ask for ``contentType="audio/x-mulaw;rate=8000"`` (Plivo's XML
reference gives ``audio/x-l16;rate=8000`` as the default).

Checked with the search tool against Plivo's pages: "Stream Event Protocol"
(plivo.com/docs/voice/audio-streaming/audio-streaming: Plivo sends ``start``,
``media``, ``dtmf``, ``playedStream``, ``clearedAudio``; the application
sends ``playAudio``, ``checkpoint``, ``clearAudio``, ``sendDTMF``; the
``start`` fields and example above), "Audio Streaming Protocol Reference"
(the ``media`` example: top-level ``sequenceNumber`` and ``streamId``,
``media.track``, ``media.timestamp`` "Unix timestamp in milliseconds" as a
string, ``media.chunk`` a number), the ``<Stream>`` XML reference
(``bidirectional``, ``keepCallAlive``, ``contentType``, ``extraHeaders``),
the ``playAudio``, ``checkpoint``/``playedStream`` and ``clearAudio`` event
pages and Plivo support's ``clearedAudio`` example (``sequenceNumber``,
``streamId``). Stream lifecycle (stopped, timed out, failed) goes to the
``statusCallbackUrl`` over HTTP, not the socket: the end of a stream is the
socket closing. Taken from secondary sources, not confirmed by a Plivo page:
the ``dtmf`` shape ``{"dtmf": {"digit"}}`` (pipecat's ``PlivoFrameSerializer``,
openclaw's Plivo plugin), a ``stop`` frame (absent from the protocol
reference; handled by those adapters because Plivo's examples show it:
accepted, and sent as telephony side, without a body), ``streamId`` on
``playAudio`` (pipecat sends it), and the ``audio.plivo.com`` WebSocket
subprotocol (the registry offers it). Plivo documents no answer to a
``clearAudio`` for checkpoints still pending, so the call reports them
itself when it clears. ``clearedAudio`` has no event in
:mod:`voxgate.bridge.events` yet: it is parsed as :class:`StreamConnected`,
which the call ignores; as telephony side nothing sends it.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from types import MappingProxyType
from typing import Final

from voxgate.bridge.carriers._stream import MAX_JSON_INTEGER, CarrierDialect, read_tracks
from voxgate.bridge.events import (
    DtmfReceived,
    ErrorReported,
    MediaReceived,
    StreamConnected,
    StreamStarted,
)
from voxgate.bridge.wire import Fields, JsonObject, encode_audio
from voxgate.codecs.formats import Encoding

MULAW: Final = "audio/x-mulaw"
_PAIR_SEPARATORS: Final = re.compile(r"[,;]")


class PlivoDialect(CarrierDialect):
    """One Plivo audio stream's translator (see the module docstring)."""

    name = "plivo"
    stream_key = "streamId"
    sequence_key = "sequenceNumber"
    format_key = "mediaFormat"
    rate_key = "sampleRate"
    encodings = MappingProxyType({Encoding.PCMU: MULAW})
    carries = f"{MULAW} at 8000 Hz only (audio/x-l16's byte order is undocumented)"
    names_stream_downstream = True
    connected_event = None  # Plivo's first message is start
    played_event = "playedStream"
    audio_event = "playAudio"
    mark_event = "checkpoint"
    clear_event = "clearAudio"
    numbers_as_text = False
    max_timestamp_ms = MAX_JSON_INTEGER  # Unix milliseconds

    def __init__(self) -> None:
        super().__init__()
        self._upstream["clearedAudio"] = self._parse_cleared

    def _parse_connected(self, message: Fields) -> StreamConnected:
        return StreamConnected()  # not reached: Plivo sends no hello

    def _parse_cleared(self, message: Fields) -> StreamConnected:
        self._check_stream(message, self.stream_id)
        return StreamConnected()  # an acknowledgement the call needs not act on

    def _read_start(self, message: Fields) -> StreamStarted:
        start = message.object("start")
        stream_id = start.text("streamId")
        self._check_stream(message, stream_id)
        return StreamStarted(
            stream_id=stream_id,
            call_id=start.text("callId"),
            media_format=self._read_media_format(start),
            account_id=start.optional_text("accountId"),
            tracks=read_tracks(start),
            custom_parameters=MappingProxyType(
                _pairs(message.optional_text("extra_headers") or "")
            ),
        )

    def _connected_wire(self, event: StreamConnected) -> None:
        return None  # Plivo sends no hello

    def _start_body(self, event: StreamStarted, media_format: JsonObject) -> JsonObject:
        return {
            "callId": event.call_id,
            "streamId": event.stream_id,
            "accountId": event.account_id,
            "tracks": list(event.tracks),
            "mediaFormat": {
                "encoding": media_format["encoding"],
                "sampleRate": media_format[self.rate_key],
            },
        }

    def _start_wire(self, event: StreamStarted) -> JsonObject:
        wire = super()._start_wire(event)
        if event.custom_parameters:
            wire["extra_headers"] = ";".join(f"{k}={v}" for k, v in event.custom_parameters.items())
        return wire

    def _media_body(self, event: MediaReceived, chunk: int, timestamp: int) -> JsonObject:
        return {
            "track": event.track,
            "timestamp": str(timestamp),
            "chunk": chunk,
            "payload": encode_audio(event.payload),
        }

    def _audio_body(self, payload: bytes) -> JsonObject:
        fmt = self.media_format
        media = {
            "contentType": self.encodings.get(fmt.encoding, MULAW),
            "sampleRate": fmt.sample_rate,
            "payload": encode_audio(payload),
        }
        return {"media": media}

    def _mark_body(self, name: str) -> JsonObject:
        return {"name": name}

    def _mark_name(self, message: Fields) -> str:
        return message.text("name")

    def _dtmf_body(self, event: DtmfReceived) -> JsonObject:
        return {"track": "inbound", "digit": event.digit}

    def _stop_body(self) -> None:
        return None

    def _error_wire(self, event: ErrorReported) -> None:
        return None  # Plivo sends no error frames on the socket


def _pairs(text: str) -> Mapping[str, str]:
    """``extra_headers`` (``a=1,b=2`` or ``a=1;b=2``) as a mapping; a piece without ``=`` is
    skipped (Plivo allows only letters and digits, so no escaping is defined)."""
    pairs: dict[str, str] = {}
    for piece in _PAIR_SEPARATORS.split(text):
        key, equals, value = piece.partition("=")
        if equals and key.strip():
            pairs[key.strip()] = value.strip()
    return pairs
