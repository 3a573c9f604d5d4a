"""What every media-stream dialect provides (Twilio, Telnyx, voxgate.v1).

A dialect object is made per stream and is sans-I/O: text or bytes in, events
out, and the reverse. It keeps the little state a dialect needs (the stream
id to put on outgoing messages, sequence and chunk counters, the stream's
start time for timestamps). It never resamples, paces or buffers audio: that
belongs to the call (docs/ARCHITECTURE.md).

The two roles (see :mod:`voxgate.bridge.events`):

- facing a carrier, voxgate is the application side: it calls
  :meth:`Dialect.parse_upstream` on what arrives and
  :meth:`Dialect.format_downstream` for what it sends;
- facing a bot, voxgate is the telephony side: :meth:`Dialect.format_upstream`
  for what it sends and :meth:`Dialect.parse_downstream` on what arrives.

Errors: a message that cannot be accepted raises
:class:`voxgate.errors.ProtocolError` with a stable ``code``:

=====================  ==========================================================
``malformed_json``     not JSON, or not a JSON object
``unknown_event``      an ``event``/``type`` the dialect does not know
``missing_field``      a required field is absent or has the wrong type
``bad_audio``          the payload is not valid base64 (or not whole samples)
``message_too_large``  over :data:`MAX_MESSAGE_BYTES`
``not_started``        media or another stream event before ``start``
``wrong_stream``       a message for another stream id
``unsupported``        a valid message voxgate cannot honour in this dialect
=====================  ==========================================================
"""

from __future__ import annotations

from typing import Final, Protocol

from voxgate.bridge.events import DownstreamEvent, UpstreamEvent

MAX_MESSAGE_BYTES: Final = 256 * 1024
"""Largest WebSocket message accepted from a carrier or a bot (256 KiB)."""

Message = str | bytes
"""One WebSocket message: text (JSON) or binary."""


class Dialect(Protocol):
    """One stream's translator between wire messages and events."""

    name: str

    def parse_upstream(self, message: Message) -> UpstreamEvent:
        """An event from a telephony-side message (voxgate facing a carrier)."""
        ...

    def format_downstream(self, event: DownstreamEvent) -> Message | None:
        """The wire message for an application-side event (voxgate facing a carrier).

        ``None`` when the dialect has no such message (Twilio has no hangup
        message: that is a REST call); the call decides what to do instead.
        """
        ...

    def format_upstream(self, event: UpstreamEvent) -> Message | None:
        """The wire message for a telephony-side event (voxgate facing a bot)."""
        ...

    def parse_downstream(self, message: Message) -> DownstreamEvent:
        """An event from an application-side message (voxgate facing a bot)."""
        ...
