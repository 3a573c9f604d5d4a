"""The shared JSON wire helpers: vectors both ways, every error code, the size limit."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from voxgate.bridge.dialect import MAX_MESSAGE_BYTES
from voxgate.bridge.wire import (
    NOT_FAST,
    Fields,
    check_frame,
    check_whole_samples,
    decode_audio,
    dump,
    encode_audio,
    fast_audio,
    fast_counter,
    fast_object,
    load_message,
    load_object,
    present,
    show,
)
from voxgate.codecs.formats import PCMU_8K, AudioFormat, Encoding
from voxgate.errors import ProtocolError

PCM16_16K = AudioFormat(Encoding.PCM16, 16000)


def refusal(call: Callable[[], object]) -> ProtocolError:
    with pytest.raises(ProtocolError) as caught:
        call()
    return caught.value


# --- JSON text both ways ------------------------------------------------------------------

# (wire text, the object it holds): load_object(text) == object and dump(object) == text
JSON_VECTORS: list[tuple[str, dict[str, Any]]] = [
    ("{}", {}),
    ('{"event":"connected","version":"1.0.0"}', {"event": "connected", "version": "1.0.0"}),
    ('{"type":"mark","name":"\\u00e9 \\u2713"}', {"type": "mark", "name": "é ✓"}),
    (
        '{"a":[1,2.5,true,false,null],"b":{"c":""}}',
        {"a": [1, 2.5, True, False, None], "b": {"c": ""}},
    ),
]


@pytest.mark.parametrize(("text", "value"), JSON_VECTORS)
def test_json_text_parses_to_its_object(text: str, value: dict[str, Any]) -> None:
    assert load_object(text) == value


@pytest.mark.parametrize(("text", "value"), JSON_VECTORS)
def test_object_dumps_to_its_json_text(text: str, value: dict[str, Any]) -> None:
    assert dump(value) == text


def test_dumped_text_is_ascii_so_a_lone_surrogate_can_still_be_sent() -> None:
    received = load_object('{"name":"\\ud800"}')  # legal JSON, not encodable as UTF-8
    text = dump(received)
    assert text == '{"name":"\\ud800"}'
    assert text.encode("utf-8") == b'{"name":"\\ud800"}'
    assert load_object(text) == received


# (text, what load_object must say) -- every one malformed_json, never fatal
NOT_AN_OBJECT = [
    ("", "not valid JSON"),
    ("{event: media}", "not valid JSON"),
    ('{"a":1', "not valid JSON"),
    ("[1, 2]", "must be a JSON object, not [1, 2]"),
    ('"start"', "must be a JSON object, not 'start'"),
    ("null", "must be a JSON object, not None"),
    ('{"a": NaN}', "NaN is not JSON"),
    ('{"a": -Infinity}', "-Infinity is not JSON"),
    ("[" * 100_000, "not valid JSON"),
    ("[" * 100_000 + "]" * 100_000, "not valid JSON"),
]


@pytest.mark.parametrize(("text", "words"), NOT_AN_OBJECT)
def test_what_is_not_a_json_object_is_malformed_json(text: str, words: str) -> None:
    error = refusal(lambda: load_object(text, "bot message"))
    assert (error.code, error.fatal) == ("malformed_json", False)
    assert words in error.message
    assert error.message.startswith("bot message ")


def test_nan_is_accepted_only_when_asked() -> None:
    value = load_object('{"a": NaN}', allow_nan=True)
    assert value["a"] != value["a"]  # NaN


# --- frames and the size limit ------------------------------------------------------------

# (message, the frame check_frame returns)
FRAMES: list[tuple[object, str | bytes]] = [
    ("{}", "{}"),
    ("", ""),
    (b"\x00\xff", b"\x00\xff"),
    (bytearray(b"ab"), b"ab"),
    (memoryview(b"ab"), b"ab"),
    ("x" * MAX_MESSAGE_BYTES, "x" * MAX_MESSAGE_BYTES),  # the limit is inclusive
    ("é" * (MAX_MESSAGE_BYTES // 2), "é" * (MAX_MESSAGE_BYTES // 2)),  # 2 bytes each in UTF-8
    (b"\x00" * MAX_MESSAGE_BYTES, b"\x00" * MAX_MESSAGE_BYTES),
]


@pytest.mark.parametrize(("message", "frame"), FRAMES, ids=range(len(FRAMES)))
def test_check_frame_passes_text_and_bytes(message: object, frame: str | bytes) -> None:
    checked = check_frame(message)
    assert checked == frame
    assert type(checked) is type(frame)


TOO_LARGE: list[tuple[object, int]] = [
    ("x" * (MAX_MESSAGE_BYTES + 1), MAX_MESSAGE_BYTES + 1),
    ("é" * (MAX_MESSAGE_BYTES // 2 + 1), MAX_MESSAGE_BYTES + 2),
    ("✓" * (MAX_MESSAGE_BYTES // 3 + 1), (MAX_MESSAGE_BYTES // 3 + 1) * 3),
    ("\ud800" * (MAX_MESSAGE_BYTES // 3 + 1), (MAX_MESSAGE_BYTES // 3 + 1) * 3),  # lone surrogates
    (b"\x00" * (MAX_MESSAGE_BYTES + 1), MAX_MESSAGE_BYTES + 1),
    (bytearray(MAX_MESSAGE_BYTES + 1), MAX_MESSAGE_BYTES + 1),
]


@pytest.mark.parametrize(("message", "size"), TOO_LARGE, ids=range(len(TOO_LARGE)))
def test_too_large_is_dropped_unless_the_dialect_closes(message: object, size: int) -> None:
    error = refusal(lambda: check_frame(message, "twilio message"))
    assert (error.code, error.fatal) == ("message_too_large", False)
    assert error.message == (
        f"twilio message of {size} bytes is over the {MAX_MESSAGE_BYTES}-byte limit"
    )
    error = refusal(lambda: check_frame(message, too_large_close_code=1009))
    assert (error.code, error.fatal, error.close_code) == ("message_too_large", True, 1009)


@pytest.mark.parametrize("message", [42, None, 1.5, {"event": "media"}, ["x"]])
def test_what_is_neither_text_nor_bytes_is_malformed_json(message: object) -> None:
    error = refusal(lambda: check_frame(message))
    assert (error.code, error.fatal) == ("malformed_json", False)
    assert f"not {type(message).__name__}" in error.message


@pytest.mark.parametrize("message", ["{" * (MAX_MESSAGE_BYTES + 1), b"{" * (MAX_MESSAGE_BYTES + 1)])
def test_size_is_checked_before_the_type_of_frame_and_the_json(message: str | bytes) -> None:
    assert refusal(lambda: load_message(message, "telnyx")).code == "message_too_large"


def test_load_message_takes_json_text_only() -> None:
    assert load_message('{"event":"stop"}', "twilio") == {"event": "stop"}
    error = refusal(lambda: load_message(b'{"event":"stop"}', "twilio"))
    assert (error.code, error.message) == (
        "malformed_json",
        "twilio speaks JSON text, not binary messages",
    )
    assert refusal(lambda: load_message("[]", "twilio")).message.startswith("twilio message ")
    assert refusal(lambda: load_message('{"a":NaN}', "twilio")).code == "malformed_json"
    assert load_message('{"a":1,"b":NaN}', "twilio", allow_nan=True)["a"] == 1


# --- typed fields -------------------------------------------------------------------------

DIGITS = re.compile(r"[0-9]{1,3}")
DATA: dict[str, Any] = {
    "s": "abc",
    "empty": "",
    "null": None,
    "n": 7,
    "zero": 0,
    "neg": -1,
    "float": 1.5,
    "whole_float": 100.0,
    "yes": True,
    "no": False,
    "decimal": "42",
    "long_decimal": "1" * 16,
    "signed": "+4",
    "obj": {"k": "v", "inner": {"x": 1}},
    "strings": {"a": "b", "c": ""},
    "mixed": {"a": "b", "n": 1},
    "list": ["a"],
    "digit": "#",
    "key": "E",
}

# (call on Fields(DATA, "msg"), the value it returns)
FIELD_VALUES: list[tuple[Callable[[Fields], object], object]] = [
    (lambda f: f.text("s"), "abc"),
    (lambda f: f.text("empty"), ""),
    (lambda f: f.text("s", nonempty=True), "abc"),
    (lambda f: f.optional_text("s"), "abc"),
    (lambda f: f.optional_text("absent"), None),
    (lambda f: f.optional_text("null"), None),
    (lambda f: f.matching("decimal", DIGITS, "digits"), "42"),
    (lambda f: f.digit("digit"), "#"),
    (lambda f: f.choice("s", ("x", "abc")), "abc"),
    (lambda f: f.kind("s", ("abc",), "thing"), "abc"),
    (lambda f: f.integer("n"), 7),
    (lambda f: f.integer("zero"), 0),
    (lambda f: f.integer("neg", minimum=-1), -1),
    (lambda f: f.integer("n", minimum=7, maximum=7), 7),
    (lambda f: f.optional_integer("absent"), None),
    (lambda f: f.optional_integer("n", maximum=9), 7),
    (lambda f: f.optional_counter("n"), 7),
    (lambda f: f.optional_counter("zero"), 0),
    (lambda f: f.optional_counter("decimal"), 42),
    (lambda f: f.optional_counter("null"), None),
    (lambda f: f.optional_counter("absent"), None),
    (lambda f: f.flag("yes"), True),
    (lambda f: f.flag("no"), False),
    (lambda f: f.optional_flag("absent", default=True), True),
    (lambda f: f.optional_flag("no", default=True), False),
    (lambda f: f.object("obj").data, {"k": "v", "inner": {"x": 1}}),
    (lambda f: f.object("obj").where, "msg.obj"),
    (lambda f: f.object("obj").object("inner").integer("x"), 1),
    (lambda f: f.optional_object("absent"), None),
    (lambda f: f.string_map("strings"), {"a": "b", "c": ""}),
    (lambda f: f.optional_string_map("absent"), {}),
    (lambda f: f.optional_string_map("strings"), {"a": "b", "c": ""}),
    (lambda f: f.has("zero"), True),
    (lambda f: f.has("null"), False),
    (lambda f: f.value("list"), ["a"]),
]


@pytest.mark.parametrize(("read", "value"), FIELD_VALUES, ids=range(len(FIELD_VALUES)))
def test_fields_read_well_typed_values(read: Callable[[Fields], object], value: object) -> None:
    assert read(Fields(DATA, "msg")) == value


# (call on Fields(DATA, "msg"), code, the whole error message)
FIELD_ERRORS: list[tuple[Callable[[Fields], object], str, str]] = [
    (lambda f: f.text("absent"), "missing_field", "msg: field 'absent' is missing"),
    (lambda f: f.text("null"), "missing_field", "msg: field 'null' is missing"),
    (lambda f: f.text("n"), "missing_field", "msg: field 'n' must be a string, not 7"),
    (
        lambda f: f.text("empty", nonempty=True),
        "missing_field",
        "msg: field 'empty' must be a non-empty string, not ''",
    ),
    (
        lambda f: f.optional_text("yes"),
        "missing_field",
        "msg: field 'yes' must be a string, not True",
    ),
    (
        lambda f: f.matching("s", DIGITS, "1 to 3 digits"),
        "missing_field",
        "msg: field 's' must be 1 to 3 digits, not 'abc'",
    ),
    (
        lambda f: f.digit("key"),
        "missing_field",
        "msg: field 'key' must be a DTMF digit (0-9, *, #, A-D), not 'E'",
    ),
    (
        lambda f: f.digit("decimal"),
        "missing_field",
        "msg: field 'decimal' must be a DTMF digit (0-9, *, #, A-D), not '42'",
    ),
    (
        lambda f: f.choice("s", ("x", "y")),
        "missing_field",
        "msg: field 's' must be one of 'x', 'y', not 'abc'",
    ),
    (
        lambda f: f.kind("s", ("x", "y"), "twilio event"),
        "unknown_event",
        "unknown twilio event 'abc' (expected one of x, y)",
    ),
    (
        lambda f: f.kind("absent", ("x",), "thing"),
        "missing_field",
        "msg: field 'absent' is missing",
    ),
    (
        lambda f: f.integer("neg"),
        "missing_field",
        "msg: field 'neg' must be an integer >= 0, not -1",
    ),
    (
        lambda f: f.integer("whole_float"),
        "missing_field",
        "msg: field 'whole_float' must be an integer >= 0, not 100.0",
    ),
    (
        lambda f: f.integer("yes"),
        "missing_field",
        "msg: field 'yes' must be an integer >= 0, not True",
    ),
    (
        lambda f: f.integer("decimal"),
        "missing_field",
        "msg: field 'decimal' must be an integer >= 0, not '42'",
    ),
    (
        lambda f: f.optional_integer("n", minimum=50, maximum=2000),
        "missing_field",
        "msg: field 'n' must be an integer 50..2000, not 7",
    ),
    (
        lambda f: f.optional_counter("neg"),
        "missing_field",
        "msg: field 'neg' must be a non-negative integer or its decimal string, not -1",
    ),
    (
        lambda f: f.optional_counter("signed"),
        "missing_field",
        "msg: field 'signed' must be a non-negative integer or its decimal string, not '+4'",
    ),
    (
        lambda f: f.optional_counter("long_decimal"),
        "missing_field",
        "msg: field 'long_decimal' must be a non-negative integer or its decimal string, "
        "not '1111111111111111'",
    ),
    (
        lambda f: f.optional_counter("float"),
        "missing_field",
        "msg: field 'float' must be a non-negative integer or its decimal string, not 1.5",
    ),
    (
        lambda f: f.optional_counter("yes"),
        "missing_field",
        "msg: field 'yes' must be a non-negative integer or its decimal string, not True",
    ),
    (lambda f: f.flag("n"), "missing_field", "msg: field 'n' must be true or false, not 7"),
    (lambda f: f.flag("absent"), "missing_field", "msg: field 'absent' is missing"),
    (lambda f: f.object("list"), "missing_field", "msg: field 'list' must be an object, not ['a']"),
    (
        lambda f: f.optional_object("s"),
        "missing_field",
        "msg: field 's' must be an object, not 'abc'",
    ),
    (
        lambda f: f.object("obj").text("inner"),
        "missing_field",
        "msg.obj: field 'inner' must be a string, not {'x': 1}",
    ),
    (
        lambda f: f.object("obj").object("inner").text("x"),
        "missing_field",
        "msg.obj.inner: field 'x' must be a string, not 1",
    ),
    (
        lambda f: f.string_map("mixed"),
        "missing_field",
        "msg: field 'mixed' must be an object of strings, not {'a': 'b', 'n': 1}",
    ),
    (
        lambda f: f.optional_string_map("list"),
        "missing_field",
        "msg: field 'list' must be an object of strings, not ['a']",
    ),
    (lambda f: f.string_map("absent"), "missing_field", "msg: field 'absent' is missing"),
]


@pytest.mark.parametrize(("read", "code", "message"), FIELD_ERRORS, ids=range(len(FIELD_ERRORS)))
def test_fields_refuse_what_is_absent_or_ill_typed(
    read: Callable[[Fields], object], code: str, message: str
) -> None:
    error = refusal(lambda: read(Fields(DATA, "msg")))
    assert (error.code, error.fatal, error.message) == (code, False, message)


def test_a_message_without_a_path_names_fields_alone() -> None:
    fields = Fields({"start": {"callSid": 5}})
    assert refusal(lambda: fields.text("event")).message == "field 'event' is missing"
    start = fields.object("start")
    assert start.where == "start"
    assert refusal(lambda: start.text("callSid")).message == (
        "start: field 'callSid' must be a string, not 5"
    )
    assert refusal(lambda: start.text("streamSid")).message == "start: field 'streamSid' is missing"


def test_long_wrong_values_are_cut_short() -> None:
    assert show("x" * 10) == "'xxxxxxxxxx'"
    assert show("x" * 100) == "'" + "x" * 36 + "..."
    assert len(show(list(range(100)))) == 40
    error = refusal(lambda: Fields({"name": "é" * 1000}).integer("name"))
    assert error.message == "field 'name' must be an integer >= 0, not '" + "é" * 36 + "..."


# --- audio both ways ----------------------------------------------------------------------

# (base64 text, the bytes it holds, media format): decoded both ways with whole samples
AUDIO_VECTORS: list[tuple[str, bytes, AudioFormat | None]] = [
    ("", b"", PCMU_8K),
    ("/w==", b"\xff", PCMU_8K),
    ("AAE=", b"\x00\x01", PCM16_16K),
    ("AAECAw==", b"\x00\x01\x02\x03", PCM16_16K),
    ("////////////////", b"\xff" * 12, PCMU_8K),
    ("AAEC", b"\x00\x01\x02", None),  # no format yet: any length
]


@pytest.mark.parametrize(("text", "payload", "media_format"), AUDIO_VECTORS)
def test_base64_audio_decodes_to_its_bytes(
    text: str, payload: bytes, media_format: AudioFormat | None
) -> None:
    assert Fields({"audio": text}).audio("audio", media_format) == payload
    assert decode_audio(text, "x") == payload


@pytest.mark.parametrize(("text", "payload", "media_format"), AUDIO_VECTORS)
def test_audio_encodes_to_its_base64(
    text: str, payload: bytes, media_format: AudioFormat | None
) -> None:
    assert encode_audio(payload) == text


# (payload field, media format, code, the whole error message)
AUDIO_ERRORS: list[tuple[object, AudioFormat | None, str, str]] = [
    ("no base64!", PCMU_8K, "bad_audio", "media: field 'payload' is not valid base64"),
    ("AAA", PCMU_8K, "bad_audio", "media: field 'payload' is not valid base64"),
    ("AA==\n", PCMU_8K, "bad_audio", "media: field 'payload' is not valid base64"),
    ("AAé=", None, "bad_audio", "media: field 'payload' is not valid base64"),
    (
        "AAEC",
        PCM16_16K,
        "bad_audio",
        "media: field 'payload' holds 3 bytes of pcm16/16000 audio, not a whole number of "
        "2-byte samples",
    ),
    (5, PCMU_8K, "missing_field", "media: field 'payload' must be a string, not 5"),
    (None, PCMU_8K, "missing_field", "media: field 'payload' is missing"),
]


@pytest.mark.parametrize(("payload", "media_format", "code", "message"), AUDIO_ERRORS)
def test_bad_audio_is_refused(
    payload: object, media_format: AudioFormat | None, code: str, message: str
) -> None:
    error = refusal(lambda: Fields({"payload": payload}, "media").audio("payload", media_format))
    assert (error.code, error.fatal, error.message) == (code, False, message)


def test_whole_samples_of_a_binary_frame() -> None:
    check_whole_samples(b"\x00" * 4, PCM16_16K, "binary frame")
    check_whole_samples(b"\x00" * 3, None, "binary frame")
    error = refusal(lambda: check_whole_samples(b"\x00" * 3, PCM16_16K, "binary frame"))
    assert (error.code, error.message) == (
        "bad_audio",
        "binary frame holds 3 bytes of pcm16/16000 audio, not a whole number of 2-byte samples",
    )


@settings(derandomize=True, deadline=None, max_examples=200)
@given(payload=st.binary(max_size=2000))
def test_audio_round_trips(payload: bytes) -> None:
    assert Fields({"a": encode_audio(payload)}).audio("a", None) == payload


@settings(derandomize=True, deadline=None, max_examples=200)
@given(value=st.dictionaries(st.text(max_size=8), st.text(max_size=20) | st.integers()))
def test_json_round_trips(value: dict[str, Any]) -> None:
    assert load_object(dump(value)) == value
    assert dump(value).isascii()


# --- outgoing optional fields -------------------------------------------------------------


def test_present_omits_only_none() -> None:
    fields: dict[str, object] = {"a": None, "b": 0, "c": "", "d": False, "e": {}, "f": None}
    assert present(fields) == {"b": 0, "c": "", "d": False, "e": {}}
    assert list(present({"z": 1, "a": 2})) == ["z", "a"]  # the order is kept


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (None, None),
        ("0", 0),
        ("42", 42),
        ("9" * 15, int("9" * 15)),
        (7, 7),
        ("9" * 16, NOT_FAST),
        ("", NOT_FAST),
        ("-1", NOT_FAST),
        ("+1", NOT_FAST),
        (" 1", NOT_FAST),
        ("²", NOT_FAST),
        ("١٢", NOT_FAST),
        (-1, NOT_FAST),
        (True, NOT_FAST),
        (1.0, NOT_FAST),
    ],
)
def test_fast_counter_reads_what_optional_counter_accepts_and_defers_the_rest(
    value: object, expected: int | None
) -> None:
    assert fast_counter(value) == expected
    if expected != NOT_FAST:
        assert Fields({"n": value}).optional_counter("n") == expected


@pytest.mark.parametrize(
    ("message", "expected"),
    [
        ('{"a":1}', {"a": 1}),
        ("[1]", None),
        ("not json", None),
        ('{"a":NaN}', None),
        ('{"a":"\\ud800"}', None),
        (b'{"a":1}', None),  # binary: the dialect decides
        ('{"a":"' + "x" * (MAX_MESSAGE_BYTES // 4) + '"}', None),  # long: checked first
    ],
)
def test_fast_object_parses_short_strict_json_objects_only(
    message: object, expected: object
) -> None:
    assert fast_object(message) == expected


@pytest.mark.parametrize(
    ("text", "size", "expected"),
    [
        ("AAAA", 1, b"\x00\x00\x00"),
        ("AAAA", 2, None),  # three bytes are not whole 16-bit samples
        ("AA==", 1, b"\x00"),
        ("AA=", 1, None),
        ("AA==AA==", 1, None),
        ("AA AA", 1, None),
        ("é", 1, None),
        (5, 1, None),
    ],
)
def test_fast_audio_is_strict_base64_of_whole_samples(
    text: object, size: int, expected: bytes | None
) -> None:
    assert fast_audio(text, size) == expected
