"""The one exception tree of voxgate.

Every error voxgate raises on purpose derives from :class:`VoxgateError`, so a
boundary (a SIP transaction, a WebSocket handler, a REST endpoint) can catch
the whole family in one place and translate it into a SIP response, a close
code, a JSON error body or a call event. Errors about values a caller passed
also derive from :class:`ValueError`, so generic code that expects the
standard exception keeps working.
"""


class VoxgateError(Exception):
    """Base of every error voxgate raises on purpose."""


class CodecError(VoxgateError, ValueError):
    """Audio could not be encoded, decoded, resampled or analysed."""


class InvalidAudioError(CodecError):
    """Audio data is malformed: wrong dtype, wrong shape, a partial sample."""


class UnsupportedFormatError(CodecError):
    """An encoding, sample rate, channel count or DTMF digit voxgate does not handle."""


class ProtocolError(VoxgateError):
    """A peer sent a message voxgate cannot accept.

    ``code`` is the stable machine-readable name sent back in an ``error``
    event (see docs/PROTOCOL.md); ``fatal`` says whether the stream can go on
    (a bad message is dropped) or must be closed with ``close_code``.
    """

    def __init__(self, code: str, message: str, *, fatal: bool = False, close_code: int = 1008):
        super().__init__(message)
        self.code = code
        self.message = message
        self.fatal = fatal
        self.close_code = close_code


class ConfigError(VoxgateError, ValueError):
    """The configuration (TOML file or VOXGATE_* variables) is invalid."""


class ParseError(VoxgateError, ValueError):
    """Bytes from the network are not a well-formed message; ``str()`` says why.

    The SIP, SDP and RTP/RTCP parsers raise nothing else on any input (a fuzz
    test holds them to it).
    """


class SipParseError(ParseError):
    """A SIP message is malformed; answered with 400 and the reason when it is a request."""


class SdpParseError(ParseError):
    """An SDP body is malformed (RFC 4566)."""


class RtpParseError(ParseError):
    """An RTP or RTCP packet is malformed or truncated; dropped and counted."""


class ApiError(VoxgateError):
    """A REST request cannot be served; answered ``{"error": {"code", "message"}}`` with
    ``status`` (and ``field`` naming the request field at fault, for a validation error)."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        *,
        field: str | None = None,
        headers: dict[str, str] | None = None,
    ):
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.field = field
        self.headers = headers or {}
