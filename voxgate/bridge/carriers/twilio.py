"""Twilio Media Streams dialect, in both roles (sans-I/O).

Theory of operation
-------------------
Twilio opens a WebSocket to voxgate and speaks JSON text frames; voxgate is
then the *application side* (:meth:`TwilioDialect.parse_upstream`,
:meth:`TwilioDialect.format_downstream`). A bot written for Twilio (pipecat's
``TwilioFrameSerializer``, the Twilio + OpenAI Realtime samples) can instead be
served by voxgate acting as Twilio, the *telephony side*
(:meth:`TwilioDialect.format_upstream`, :meth:`TwilioDialect.parse_downstream`):
it then receives exactly what Twilio would send.

One instance per stream; its state::

    NEW --connected--> CONNECTED --start--> STARTED --stop--> (nothing follows)
     `-------------------start---------------^

``start`` (parsed, or formatted as :class:`StreamStarted`) sets the stream id
(``streamSid``), the call id (``callSid``), the account and the media format.
Media, DTMF and marks before it raise ``not_started``; a message naming
another ``streamSid`` raises ``wrong_stream``. As telephony side the instance
numbers what it sends: ``connected`` has no ``sequenceNumber``, ``start`` is
``"1"`` and every later message the next one; media ``chunk`` counts from 1 per
track and ``timestamp`` is the milliseconds of audio already sent on that track
(computed from the byte count and the media format unless the event carries
``timestamp_ms``). Numbers travel as decimal strings, as Twilio sends them,
and are parsed to ``int`` (JSON integers too) for the call to restore order.

Twilio has no socket message for hangup, transfer, DTMF to send or
transcripts (hangup and transfer are REST calls: :mod:`.rest`), so
``format_downstream`` returns ``None`` for those, ``format_upstream`` for
:class:`ErrorReported` (Twilio sends no error frames).

Errors (:class:`ProtocolError`, codes of :mod:`voxgate.bridge.dialect`) drop
the message and the call goes on, except a ``start`` the stream cannot use: a
missing or ill-typed field (fatal, close code 1008 policy violation) or a media
format voxgate lacks (``unsupported``, fatal, 1003 unsupported data). Binary
WebSocket messages are not part of the dialect (JSON text only):
``malformed_json``. The size limit is checked before JSON parsing. Optional
fields (``streamSid`` on media, ``track``, ``chunk``...) may be absent or null
but must be well typed when present.

Checked with the search tool against Twilio's "Media Streams - WebSocket
Messages" page: ``connected`` is ``{"event","protocol":"Call","version":"1.0.0"}``
without ``sequenceNumber``; ``start`` comes once right after it with
``sequenceNumber`` 1 ("then incremented for each subsequent message") and
``streamSid, accountSid, callSid, tracks, customParameters, mediaFormat``.
Twilio error 31924 confirms that only ``media``, ``mark`` and ``clear`` may be
sent back, as base64 ``audio/x-mulaw`` 8000 Hz without a file header. The
media, dtmf (``track:"inbound_track"``), mark and stop shapes follow
Twilio's Media Streams documentation and pipecat's ``serializers/twilio.py``. What Twilio
and Telnyx share is in :mod:`._stream`, the JSON helpers in
:mod:`voxgate.bridge.wire`; this module holds Twilio's names and shapes.
"""

from __future__ import annotations

from types import MappingProxyType
from typing import Final

from voxgate.bridge.carriers._stream import CarrierDialect, read_tracks
from voxgate.bridge.events import DtmfReceived, ErrorReported, StreamConnected, StreamStarted
from voxgate.bridge.wire import Fields, JsonObject
from voxgate.codecs.formats import Encoding

MULAW: Final = "audio/x-mulaw"


class TwilioDialect(CarrierDialect):
    """One Twilio media stream's translator (see the module docstring)."""

    name = "twilio"
    stream_key = "streamSid"
    sequence_key = "sequenceNumber"
    format_key = "mediaFormat"
    rate_key = "sampleRate"
    encodings = MappingProxyType({Encoding.PCMU: MULAW})  # Twilio streams mu-law only
    carries = f"{MULAW} only"
    names_stream_downstream = True

    def _parse_connected(self, message: Fields) -> StreamConnected:
        protocol, version = message.optional_text("protocol"), message.optional_text("version")
        return StreamConnected(protocol or "Call", version or "1.0.0")

    def _read_start(self, message: Fields) -> StreamStarted:
        start = message.object("start")
        stream_id = start.text("streamSid")
        self._check_stream(message, stream_id)
        return StreamStarted(
            stream_id=stream_id,
            call_id=start.text("callSid"),
            media_format=self._read_media_format(start),
            account_id=start.optional_text("accountSid"),
            tracks=read_tracks(start),
            custom_parameters=MappingProxyType(start.optional_string_map("customParameters")),
        )

    def _connected_wire(self, event: StreamConnected) -> JsonObject:
        return {"event": "connected", "protocol": event.protocol, "version": event.version}

    def _start_body(self, event: StreamStarted, media_format: JsonObject) -> JsonObject:
        return {
            "accountSid": event.account_id,
            "streamSid": event.stream_id,
            "callSid": event.call_id,
            "tracks": list(event.tracks),
            "customParameters": dict(event.custom_parameters),
            "mediaFormat": media_format,
        }

    def _dtmf_body(self, event: DtmfReceived) -> JsonObject:
        return {"track": "inbound_track", "digit": event.digit}

    def _stop_body(self) -> JsonObject:
        return {"accountSid": self.account_id, "callSid": self.call_id}

    def _error_wire(self, event: ErrorReported) -> None:
        return None  # Twilio sends no error frames
