"""Telnyx Media Streaming dialect, in both roles (sans-I/O).

Theory of operation
-------------------
Telnyx opens a WebSocket to voxgate (``stream_url``) and speaks JSON text
frames; voxgate is then the *application side*
(:meth:`TelnyxDialect.parse_upstream`, :meth:`TelnyxDialect.format_downstream`).
A bot written for Telnyx (pipecat's ``TelnyxFrameSerializer``) can instead be
served by voxgate acting as Telnyx, the *telephony side*
(:meth:`TelnyxDialect.format_upstream`, :meth:`TelnyxDialect.parse_downstream`),
and then receives what Telnyx would send.

One instance per stream; its state::

    NEW --connected--> CONNECTED --start--> STARTED --stop--> (nothing follows)
     `-------------------start---------------^      (error frames: any time)

``start`` (parsed, or formatted as :class:`StreamStarted`) sets the stream id
(top-level ``stream_id``), the call id (``start.call_control_id``, the one the
REST API takes), the account (``user_id``) and the media format. Media, DTMF
and marks before it raise ``not_started``; a message naming another
``stream_id`` raises ``wrong_stream`` (messages to Telnyx carry no
``stream_id``: absent is fine). Telnyx does not guarantee the order of media
frames, so ``sequence_number`` and ``media.chunk`` are parsed to ``int`` for
the call's reorderer. As telephony side the instance numbers what it sends
like Telnyx: ``connected`` unnumbered, ``start`` ``"1"``, then each message
the next; ``chunk`` from 1 per track; ``timestamp`` the milliseconds of audio
already sent on the track unless the event carries ``timestamp_ms``. Error
frames are not numbered and may come before ``start``.

Encodings: ``PCMU`` and ``PCMA`` (G.711), and ``L16``, which is the RTP
payload (Telnyx sends "base64-encoded RTP payloads without RTP headers"), so
network byte order per RFC 3551 section 4.5.11: :attr:`Encoding.L16`, no
byte swap. ``G722``, ``OPUS``, ``AMR-WB`` and rates outside voxgate's are
``unsupported`` (fatal, close code 1003). Hangup and transfer are REST calls
(:mod:`.rest`): ``format_downstream`` returns ``None`` for them, for DTMF to
send and for transcripts. Error handling is Twilio's (both are
:class:`~._stream.CarrierDialect`): a ``start`` missing a required field is
fatal (1008), other bad messages are dropped; binary messages are
``malformed_json``.

Checked with the search tool against Telnyx's "Stream call media over
WebSocket" AsyncAPI page (developers.telnyx.com/api-reference/websockets/):
``connected`` is ``{"event":"connected","version":"1.0.0"}``; ``start`` has
``sequence_number`` "1" and the top-level ``stream_id``; Telnyx also sends
``dtmf``, ``mark``, ``error`` and ``stop`` frames; the application may send
``media``, ``mark`` and ``clear``; a mark comes back when the media before it
has played (at once if none is queued, and clear returns queued marks);
"Media frame order is not guaranteed". The search returned only that page's
head, not the frame schemas: the ``error`` frame shape
``{"event":"error","stream_id","payload":{"code":100002,"title","detail"}}`` is
taken from an open-source adapter written against that page (openclaw's
``stream-frame-adapter``); an ``error`` member in place of ``payload``, seen
in other code, is accepted too. Other field names follow Telnyx's media
streaming documentation and pipecat's ``runner/utils.py`` (``stream_id``,
``start.call_control_id``, ``start.media_format.encoding``, ``from``, ``to``).
"""

from __future__ import annotations

from types import MappingProxyType

from voxgate.bridge.carriers._stream import CarrierDialect
from voxgate.bridge.events import DtmfReceived, ErrorReported, StreamConnected, StreamStarted
from voxgate.bridge.wire import Fields, JsonObject
from voxgate.codecs.formats import Encoding


class TelnyxDialect(CarrierDialect):
    """One Telnyx media stream's translator (see the module docstring)."""

    name = "telnyx"
    stream_key = "stream_id"
    sequence_key = "sequence_number"
    format_key = "media_format"
    rate_key = "sample_rate"
    encodings = MappingProxyType(
        {Encoding.PCMU: "PCMU", Encoding.PCMA: "PCMA", Encoding.L16: "L16"}
    )
    carries = "PCMU, PCMA or L16 (big-endian)"
    names_stream_downstream = False  # messages to Telnyx carry no stream_id

    def __init__(self) -> None:
        super().__init__()
        self._upstream["error"] = self._parse_error

    def _parse_connected(self, message: Fields) -> StreamConnected:
        return StreamConnected(version=message.optional_text("version") or "1.0.0")

    def _read_start(self, message: Fields) -> StreamStarted:
        start = message.object("start")
        return StreamStarted(
            stream_id=message.text("stream_id"),
            call_id=start.text("call_control_id"),
            media_format=self._read_media_format(start),
            account_id=start.optional_text("user_id"),
            session_id=start.optional_text("call_session_id"),
            from_number=start.optional_text("from"),
            to_number=start.optional_text("to"),
            custom_parameters=MappingProxyType(start.optional_string_map("custom_parameters")),
            client_state=start.optional_text("client_state"),
        )

    def _parse_error(self, message: Fields) -> ErrorReported:
        self._check_stream(message, self.stream_id)
        key = "error" if not message.has("payload") and message.has("error") else "payload"
        body = message.object(key)
        code = body.value("code")
        if isinstance(code, bool) or not isinstance(code, int | str) or code == "":
            raise body.wrong("code", "a number or a non-empty string")
        detail, title = body.optional_text("detail"), body.optional_text("title")
        return ErrorReported(code=str(code), message=detail or title or "")

    def _connected_wire(self, event: StreamConnected) -> JsonObject:
        return {"event": "connected", "version": event.version}

    def _start_body(self, event: StreamStarted, media_format: JsonObject) -> JsonObject:
        return {
            "user_id": event.account_id,
            "call_control_id": event.call_id,
            "call_session_id": event.session_id,
            "from": event.from_number,
            "to": event.to_number,
            "client_state": event.client_state,
            "custom_parameters": dict(event.custom_parameters),
            "media_format": media_format,
        }

    def _dtmf_body(self, event: DtmfReceived) -> JsonObject:
        return {"digit": event.digit}

    def _stop_body(self) -> JsonObject:
        return {"user_id": self.account_id, "call_control_id": self.call_id}

    def _error_wire(self, event: ErrorReported) -> JsonObject:
        code = event.code
        numeric = code.isascii() and code.isdecimal() and len(code) < 16  # Telnyx codes: numbers
        wire: JsonObject = {
            "event": "error",
            "payload": {
                "code": int(code) if numeric else code,
                "title": event.message,
                "detail": event.message,
            },
        }
        if self.stream_id is not None:
            wire["stream_id"] = self.stream_id
        return wire
