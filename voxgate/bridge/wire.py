"""JSON wire helpers shared by every dialect (Twilio, Telnyx, voxgate.v1), sans-I/O.

Theory of operation
-------------------
A dialect turns one WebSocket message into an event in three steps; each may
raise :class:`ProtocolError` with a code of :mod:`voxgate.bridge.dialect`::

    message --check_frame--> str | bytes --load_object--> dict --Fields--> typed values
             (type, size)                  (one object)          (one field at a time)

1. :func:`check_frame` checks the message's type and size before any parsing,
   so a huge message never reaches the JSON parser: ``message_too_large``
   (fatal with a close code only if the dialect asks: voxgate.v1 closes with
   1009, the carriers drop the message), ``malformed_json`` for a value that
   is neither text nor bytes. UTF-8 takes at most 4 bytes a character, so text
   is encoded to be measured only when the limit is within reach.
2. :func:`load_object` parses one JSON object (RFC 8259) or raises
   ``malformed_json``. :func:`load_message` does steps 1 and 2 for the
   dialects that speak JSON text only (a binary message is ``malformed_json``).
3. :class:`Fields` reads typed fields of one object. Absent and ``null`` are
   the same (optional fields may be either); a required field that is absent,
   of the wrong type or out of range is ``missing_field``, with a message
   naming the field's path, what was expected and what came
   (``"start.media_format: field 'encoding' must be ..., not 'opus'"``).
   Base64 audio that does not decode, or does not hold whole samples of the
   stream's format, is ``bad_audio``; a message type the dialect does not know
   is ``unknown_event`` (:meth:`Fields.kind`).

Outgoing: :func:`dump` (compact JSON), :func:`encode_audio`, :func:`present`
(optional fields omitted rather than ``null``).
"""

from __future__ import annotations

import binascii
import json
import re
from collections.abc import Collection, Mapping
from typing import Any, Final

import orjson

from voxgate.bridge.dialect import MAX_MESSAGE_BYTES
from voxgate.codecs.formats import AudioFormat
from voxgate.errors import ProtocolError

JsonObject = dict[str, Any]

DTMF_DIGIT: Final = re.compile(r"[0-9*#A-D]")  # the 16 keys of DTMF (ITU-T Q.23)
_COUNTER: Final = re.compile(
    r"[0-9]{1,15}"
)  # a decimal string; 15 digits is plenty for any counter
_SHOWN: Final = 40  # characters of a wrong value quoted in an error message


# --- incoming ---------------------------------------------------------------------------


def check_frame(
    message: object, label: str = "message", *, too_large_close_code: int | None = None
) -> str | bytes:
    """``message`` as a text or a binary frame, once its type and size are checked.

    ``label`` names the message in errors (``"twilio message"``). Over
    :data:`MAX_MESSAGE_BYTES` is ``message_too_large``, fatal with
    ``too_large_close_code`` if one is given, otherwise only the message is dropped.
    """
    frame: str | bytes
    if isinstance(message, str):
        frame = message
        small = len(frame) * 4 <= MAX_MESSAGE_BYTES
        size = len(frame) if small else len(frame.encode("utf-8", "surrogatepass"))
    elif isinstance(message, bytes | bytearray | memoryview):
        frame = bytes(message)
        size = len(frame)
    else:
        raise ProtocolError(
            "malformed_json", f"a {label} is text or bytes, not {type(message).__name__}"
        )
    if size > MAX_MESSAGE_BYTES:
        problem = f"{label} of {size} bytes is over the {MAX_MESSAGE_BYTES}-byte limit"
        if too_large_close_code is None:
            raise ProtocolError("message_too_large", problem)
        raise ProtocolError(
            "message_too_large", problem, fatal=True, close_code=too_large_close_code
        )
    return frame


def _reject_constant(name: str) -> object:
    raise ValueError(f"{name} is not JSON")  # Python's json module would accept NaN/Infinity


def load_object(text: str, label: str = "message", *, allow_nan: bool = False) -> JsonObject:
    """The JSON object in ``text``; ``allow_nan`` accepts Python's NaN/Infinity extension.

    Fast path: orjson, which parses strict RFC 8259 JSON several times faster than
    the standard library. Whatever it refuses (NaN, integers beyond 64 bits, an
    escaped lone surrogate, or text that is not JSON at all) takes the slow path,
    the standard library's parser, which decides and says what is wrong.
    """
    try:
        value = orjson.loads(text)
    except orjson.JSONDecodeError:
        value = _load_slowly(text, label, allow_nan)
    if not isinstance(value, dict):
        raise ProtocolError("malformed_json", f"{label} must be a JSON object, not {show(value)}")
    return value


def _load_slowly(text: str, label: str, allow_nan: bool) -> object:
    try:
        return json.loads(text, parse_constant=None if allow_nan else _reject_constant)
    except (ValueError, RecursionError) as error:
        raise ProtocolError("malformed_json", f"{label} is not valid JSON: {error}") from None


def load_message(message: object, dialect: str, *, allow_nan: bool = False) -> JsonObject:
    """The JSON object in one message of a dialect that speaks JSON text only."""
    label = f"{dialect} message"
    frame = check_frame(message, label)
    if isinstance(frame, bytes):
        raise ProtocolError("malformed_json", f"{dialect} speaks JSON text, not binary messages")
    return load_object(frame, label, allow_nan=allow_nan)


# --- the fast path: the common, well-formed message, or None to take the slow path --------

FAST_TEXT_LIMIT: Final = MAX_MESSAGE_BYTES // 4  # a text this short is within the limit


def fast_object(message: object) -> JsonObject | None:
    """The JSON object in a short text message that orjson parses, or None.

    None sends the message down the slow path (:func:`load_message` and
    :class:`Fields`), which parses it again and says what is wrong with it, so
    that a fast path never decides on an error.
    """
    if type(message) is not str or len(message) > FAST_TEXT_LIMIT:
        return None
    try:
        value = orjson.loads(message)
    except orjson.JSONDecodeError:
        return None
    return value if type(value) is dict else None


def fast_audio(text: object, bytes_per_sample: int) -> bytes | None:
    """Strict base64 ``text`` of whole samples as bytes, or None (slow path)."""
    if type(text) is not str:
        return None
    try:
        payload = binascii.a2b_base64(text, strict_mode=True)
    except ValueError:
        return None
    return None if len(payload) % bytes_per_sample else payload


NOT_FAST: Final = -1  # what fast_counter says of a value the slow path must judge


def fast_counter(value: object) -> int | None:
    """An optional counter as :meth:`Fields.optional_counter` reads it, or NOT_FAST."""
    if value is None:
        return None
    if type(value) is str:
        digits = 0 < len(value) <= 15 and value.isascii() and value.isdigit()
        return int(value) if digits else NOT_FAST
    if type(value) is int and value >= 0:
        return value
    return NOT_FAST


def decode_audio(text: str, what: str) -> bytes:
    """The bytes of base64 ``text`` (RFC 4648 section 4, no line breaks), or ``bad_audio``."""
    try:
        return binascii.a2b_base64(text, strict_mode=True)
    except ValueError:  # binascii.Error, or text that is not ASCII
        raise ProtocolError("bad_audio", f"{what} is not valid base64") from None


def check_whole_samples(payload: bytes, media_format: AudioFormat | None, what: str) -> None:
    """``bad_audio`` unless ``payload`` holds whole samples of ``media_format`` (None: any)."""
    if media_format is not None and len(payload) % media_format.bytes_per_sample:
        raise ProtocolError(
            "bad_audio",
            f"{what} holds {len(payload)} bytes of {media_format} audio, not a whole number "
            f"of {media_format.bytes_per_sample}-byte samples",
        )


def show(value: object) -> str:
    """``value`` quoted for an error message, cut short if long."""
    text = repr(value)
    return text if len(text) <= _SHOWN else text[: _SHOWN - 3] + "..."


class Fields:
    """Typed access to the fields of one JSON object; a wrong one raises ``missing_field``.

    ``where`` is the object's path in the message, put before the field's name
    in errors: ``""`` for a carrier's message, the message type for a voxgate.v1
    one, ``"start.media_format"`` for a nested object (:meth:`object`).
    """

    __slots__ = ("data", "where")

    def __init__(self, data: Mapping[str, object], where: str = "") -> None:
        self.data = data
        self.where = where

    def _name(self, key: str) -> str:
        return f"{self.where}: field {key!r}" if self.where else f"field {key!r}"

    def has(self, key: str) -> bool:
        """Whether ``key`` is present and not ``null``."""
        return self.data.get(key) is not None

    def value(self, key: str) -> object:
        """A required field's value, of any type."""
        value = self.data.get(key)
        if value is None:
            raise ProtocolError("missing_field", f"{self._name(key)} is missing")
        return value

    def wrong(self, key: str, expected: str) -> ProtocolError:
        """The error for a field that is not ``expected`` (to raise)."""
        value = show(self.data.get(key))
        return ProtocolError("missing_field", f"{self._name(key)} must be {expected}, not {value}")

    def text(self, key: str, *, nonempty: bool = False) -> str:
        value = self.value(key)
        if not isinstance(value, str) or (nonempty and not value):
            raise self.wrong(key, "a non-empty string" if nonempty else "a string")
        return value

    def optional_text(self, key: str, *, nonempty: bool = False) -> str | None:
        return self.text(key, nonempty=nonempty) if self.has(key) else None

    def matching(self, key: str, pattern: re.Pattern[str], expected: str) -> str:
        """A string that ``pattern`` matches in full."""
        value = self.text(key)
        if not pattern.fullmatch(value):
            raise self.wrong(key, expected)
        return value

    def digit(self, key: str) -> str:
        """One DTMF digit: 0-9, *, #, A-D."""
        return self.matching(key, DTMF_DIGIT, "a DTMF digit (0-9, *, #, A-D)")

    def choice(self, key: str, choices: Collection[str]) -> str:
        value = self.text(key)
        if value not in choices:
            raise self.wrong(key, "one of " + ", ".join(repr(choice) for choice in choices))
        return value

    def kind(self, key: str, known: Collection[str], what: str) -> str:
        """The message's type (in field ``key``); ``unknown_event`` if not in ``known``."""
        value = self.text(key)
        if value not in known:
            raise ProtocolError(
                "unknown_event",
                f"unknown {what} {show(value)} (expected one of {', '.join(known)})",
            )
        return value

    def integer(self, key: str, *, minimum: int = 0, maximum: int | None = None) -> int:
        """A JSON integer (not a boolean) within the bounds."""
        value = self.value(key)
        if type(value) is not int or value < minimum or (maximum is not None and value > maximum):
            bounds = f">= {minimum}" if maximum is None else f"{minimum}..{maximum}"
            raise self.wrong(key, f"an integer {bounds}")
        return value

    def optional_integer(
        self, key: str, *, minimum: int = 0, maximum: int | None = None
    ) -> int | None:
        return self.integer(key, minimum=minimum, maximum=maximum) if self.has(key) else None

    def optional_counter(self, key: str) -> int | None:
        """A non-negative integer sent as a decimal string (as carriers do) or a JSON integer."""
        value = self.data.get(key)
        if value is None:
            return None
        if isinstance(value, str) and _COUNTER.fullmatch(value):
            return int(value)
        if type(value) is int and value >= 0:
            return value
        raise self.wrong(key, "a non-negative integer or its decimal string")

    def flag(self, key: str) -> bool:
        value = self.value(key)
        if not isinstance(value, bool):
            raise self.wrong(key, "true or false")
        return value

    def optional_flag(self, key: str, *, default: bool) -> bool:
        return self.flag(key) if self.has(key) else default

    def object(self, key: str) -> Fields:
        """A nested object, its path extended by ``key``."""
        value = self.value(key)
        if not isinstance(value, dict):
            raise self.wrong(key, "an object")
        return Fields(value, f"{self.where}.{key}" if self.where else key)

    def optional_object(self, key: str) -> Fields | None:
        return self.object(key) if self.has(key) else None

    def string_map(self, key: str) -> dict[str, str]:
        """An object whose values are all strings (custom parameters), copied."""
        value = self.value(key)
        if not isinstance(value, dict) or not all(isinstance(v, str) for v in value.values()):
            raise self.wrong(key, "an object of strings")
        return dict(value)

    def optional_string_map(self, key: str) -> dict[str, str]:
        return self.string_map(key) if self.has(key) else {}

    def audio(self, key: str, media_format: AudioFormat | None) -> bytes:
        """Base64 audio in whole samples of ``media_format`` (None: not checked)."""
        what = self._name(key)
        payload = decode_audio(self.text(key), what)
        check_whole_samples(payload, media_format, what)
        return payload


# --- outgoing ---------------------------------------------------------------------------


def dump(message: Mapping[str, object]) -> str:
    """Compact JSON text for one message, non-ASCII escaped as ``\\uXXXX``.

    Escaping keeps the text encodable as UTF-8 whatever it holds: a lone surrogate
    that arrived escaped (``"\\ud800"`` in a custom parameter) goes out escaped
    again instead of making the WebSocket send fail.
    """
    return json.dumps(message, separators=(",", ":"))


def encode_audio(payload: bytes) -> str:
    """``payload`` in base64 (RFC 4648 section 4)."""
    return binascii.b2a_base64(payload, newline=False).decode("ascii")


def present(fields: Mapping[str, object]) -> dict[str, object]:
    """``fields`` without those that are None (optional fields omitted, never null)."""
    return {key: value for key, value in fields.items() if value is not None}
