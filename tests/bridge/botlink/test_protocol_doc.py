"""docs/PROTOCOL.md, schema.json and V1Dialect tell the same story.

Every fenced ```json block of the document (one message, or an array of messages) must be
valid against the schema and accepted by voxgate's parser; every message V1Dialect produces
must be valid against the schema; the tables of codes must match the code.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from jsonschema import Draft202012Validator

from voxgate.bridge.botlink.v1 import (
    CLOSE_GOING_AWAY,
    CLOSE_INTERNAL_ERROR,
    CLOSE_MESSAGE_TOO_BIG,
    CLOSE_NORMAL,
    CLOSE_POLICY_VIOLATION,
    CLOSE_UNSUPPORTED_DATA,
    DOWNSTREAM_TYPES,
    ERROR_CODES,
    SUBPROTOCOL_BINARY,
    SUBPROTOCOL_JSON,
    UPSTREAM_TYPES,
    V1Dialect,
    load_schema,
)
from voxgate.bridge.call_api import STOP_REASONS, CallPolicy
from voxgate.bridge.dialect import MAX_MESSAGE_BYTES
from voxgate.bridge.events import (
    AudioSent,
    ClearRequested,
    DownstreamEvent,
    DtmfReceived,
    DtmfSendRequested,
    ErrorReported,
    HangupRequested,
    MarkPlayed,
    MarkRequested,
    MediaReceived,
    StreamConnected,
    StreamStarted,
    StreamStopped,
    TranscriptReceived,
    TransferRequested,
    UpstreamEvent,
)
from voxgate.codecs.formats import PCMU_8K, AudioFormat, Encoding
from voxgate.config import CallConfig
from voxgate.errors import ProtocolError

ROOT = Path(__file__).resolve().parents[3]
DOC = (ROOT / "docs" / "PROTOCOL.md").read_text(encoding="utf-8")
SCHEMA = load_schema()
MIN_EXAMPLES = 12
Message = dict[str, Any]


def _validator(part: str | None = None) -> Draft202012Validator:
    """The whole schema, or one of its definitions ("bridge_to_bot", "bot_to_bridge", "mark"...)."""
    if part is None:
        return Draft202012Validator(SCHEMA)
    root = {key: value for key, value in SCHEMA.items() if key != "anyOf"}
    return Draft202012Validator({**root, "$ref": f"#/$defs/{part}"})


BRIDGE_TO_BOT = _validator("bridge_to_bot")
BOT_TO_BRIDGE = _validator("bot_to_bridge")


def _json_blocks(markdown: str) -> list[str]:
    return re.findall(r"^```json[ \t]*\n(.*?)^```[ \t]*$", markdown, flags=re.M | re.S)


def _message_problems(message: object) -> list[str]:
    """Why ``message`` is not a valid message, as precisely as the schema can say."""
    if _validator().is_valid(message):
        return []
    kind = message.get("type") if isinstance(message, dict) else None
    if isinstance(kind, str) and kind in UPSTREAM_TYPES + DOWNSTREAM_TYPES:
        validator = _validator(kind)  # the errors of the message's own definition
    else:
        validator = _validator()
    return [f"{error.message} at {error.json_path}" for error in validator.iter_errors(message)]


def _doc_problems(markdown: str) -> list[str]:
    """What is wrong with the JSON examples of ``markdown`` (nothing: an empty list)."""
    blocks = _json_blocks(markdown)
    problems = [] if len(blocks) >= MIN_EXAMPLES else [f"only {len(blocks)} JSON examples"]
    for number, block in enumerate(blocks, 1):
        try:
            value = json.loads(block)
        except json.JSONDecodeError as exc:
            problems.append(f"example {number} is not JSON: {exc}")
            continue
        for message in value if isinstance(value, list) else [value]:
            problems.extend(
                f"example {number}: {problem}" for problem in _message_problems(message)
            )
    return problems


def _examples() -> list[list[Message]]:
    """The messages of each JSON block of the document, in order."""
    values = [json.loads(block) for block in _json_blocks(DOC)]
    return [value if isinstance(value, list) else [value] for value in values]


def _all_examples() -> list[Message]:
    return [message for block in _examples() for message in block]


# --- the schema and the document's examples -------------------------------------------


def test_schema_is_a_valid_draft_2020_12_schema() -> None:
    assert SCHEMA["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    Draft202012Validator.check_schema(SCHEMA)
    for part in ("bridge_to_bot", "bot_to_bridge"):
        Draft202012Validator.check_schema(SCHEMA["$defs"][part])


def test_every_example_in_the_document_is_valid() -> None:
    assert _doc_problems(DOC) == []


VALID_BLOCK = '```json\n{"type": "response.audio.clear"}\n```\n'


@pytest.mark.parametrize(
    ("markdown", "problem"),
    [
        (VALID_BLOCK * (MIN_EXAMPLES - 1), "only 11 JSON examples"),
        (VALID_BLOCK * MIN_EXAMPLES + '```json\n{"type": "clear"}\n```\n', "example 13"),
        (VALID_BLOCK * MIN_EXAMPLES + '```json\n[{"type": "stop", "x": 1}]\n```\n', "'x'"),
        (VALID_BLOCK * MIN_EXAMPLES + '```json\n{"type": "mark",}\n```\n', "is not JSON"),
        (
            VALID_BLOCK * MIN_EXAMPLES
            + '```json\n{"type": "media", "seq": 0, "timestamp_ms": 0, "audio": ""}\n```\n',
            "$.seq",
        ),
    ],
)
def test_the_document_check_catches_bad_examples(markdown: str, problem: str) -> None:
    problems = _doc_problems(markdown)
    assert problems
    assert problem in " ".join(problems)


def test_every_message_type_has_an_example() -> None:
    examples = _all_examples()
    upstream = {message["type"] for message in examples if BRIDGE_TO_BOT.is_valid(message)}
    downstream = {message["type"] for message in examples if BOT_TO_BRIDGE.is_valid(message)}
    assert upstream == set(UPSTREAM_TYPES)
    assert downstream == set(DOWNSTREAM_TYPES)


def test_schema_defines_exactly_the_message_types_of_the_code() -> None:
    def types(part: str) -> list[str]:
        refs = [entry["$ref"] for entry in SCHEMA["$defs"][part]["oneOf"]]
        return [
            SCHEMA["$defs"][ref.rsplit("/", 1)[1]]["properties"]["type"]["const"] for ref in refs
        ]

    assert types("bridge_to_bot") == list(UPSTREAM_TYPES)
    assert types("bot_to_bridge") == list(DOWNSTREAM_TYPES)


# --- the examples through voxgate's parser --------------------------------------------


def _started() -> V1Dialect:
    """A dialect past a PCMU start: ready to parse either direction."""
    dialect = V1Dialect()
    dialect.parse_upstream(str(V1Dialect().format_upstream(StreamStarted("vs-1", "CA1"))))
    return dialect


def _for_start(message: Message) -> V1Dialect:
    return V1Dialect(binary_audio=message.get("audio_transport") == "binary")


def test_every_bot_example_is_accepted_by_voxgate() -> None:
    bot_messages = [message for message in _all_examples() if BOT_TO_BRIDGE.is_valid(message)]
    assert len(bot_messages) >= 7
    bridge = _started()
    for message in bot_messages:
        assert bridge.parse_downstream(json.dumps(message)) is not None


def test_every_bridge_example_is_accepted_by_a_bot() -> None:
    checked = 0
    for block in _examples():
        messages = [message for message in block if BRIDGE_TO_BOT.is_valid(message)]
        if not messages:
            continue
        starts_a_session = messages[0]["type"] == "start"
        bot = _for_start(messages[0]) if starts_a_session else _started()
        for message in messages:
            if message["type"] == "start" and message is not messages[0]:
                pytest.fail("a second start in one example")
            assert bot.parse_upstream(json.dumps(message)) is not None
            checked += 1
        assert bot.stopped is (messages[-1]["type"] == "stop")
    assert checked >= 10


def _without(message: Message, path: tuple[str, ...]) -> Message:
    copy = json.loads(json.dumps(message))
    target = copy
    for key in path[:-1]:
        target = target[key]
    del target[path[-1]]
    return dict(copy)


def _field_paths(message: Message) -> list[tuple[str, ...]]:
    """Every field of ``message`` but its type, the nested ones of ``start`` included."""
    paths: list[tuple[str, ...]] = [(name,) for name in message if name != "type"]
    for nested in ("carrier", "media_format"):
        paths += [(nested, name) for name in message.get(nested, {})]
    return paths


def _parsers(message: Message) -> list[Callable[[str], object]]:
    parsers: list[Callable[[str], object]] = []
    if message["type"] in UPSTREAM_TYPES:
        bot = _for_start(message) if message["type"] == "start" else _started()
        parsers.append(bot.parse_upstream)
    if message["type"] in DOWNSTREAM_TYPES:
        parsers.append(_started().parse_downstream)
    return parsers


def _refusal(parse: Callable[[str], object], message: Message) -> ProtocolError | None:
    try:
        parse(json.dumps(message))
    except ProtocolError as error:
        return error
    return None


def test_schema_and_parser_agree_on_which_fields_are_required() -> None:
    verdicts = []
    for message in _all_examples():
        for path in _field_paths(message):
            broken = _without(message, path)
            schema_accepts = _validator().is_valid(broken)
            for parse in _parsers(message):
                refusal = _refusal(parse, broken)
                assert (refusal is None) is schema_accepts, (message["type"], path, refusal)
                if refusal is not None:
                    assert refusal.code == "missing_field"
                    assert repr(path[-1]) in refusal.message
                verdicts.append(refusal is None)
    assert verdicts.count(False) >= 30  # required fields checked
    assert verdicts.count(True) >= 15  # optional fields checked


# --- what V1Dialect produces ----------------------------------------------------------


def _session(media_format: AudioFormat) -> list[UpstreamEvent]:
    chunk = b"\x00" * media_format.bytes_per(20)
    return [
        StreamConnected(),
        StreamStarted(
            stream_id="vs-1",
            call_id="CA1",
            media_format=media_format,
            account_id="AC1",
            session_id="vg-1",
            from_number="+15551234567",
            to_number="+15557654321",
            direction="outbound",
            custom_parameters={"k": "v"},
            opening_text="Hi",
            system_prompt="Be kind",
        ),
        *[MediaReceived(chunk) for _ in range(3)],
        MediaReceived(chunk, timestamp_ms=900),
        DtmfReceived("7"),
        DtmfReceived("*", duration_ms=90, method="inband"),
        MarkPlayed("m1"),
        *[ErrorReported(code, f"{code} happened") for code in ERROR_CODES],
        StreamStopped("caller_hangup"),
    ]


BOT_EVENTS: list[DownstreamEvent] = [
    AudioSent(b"\x00\x01" * 80),
    AudioSent(b""),
    ClearRequested(),
    MarkRequested("m1"),
    DtmfSendRequested("0123456789*#ABCD"),
    DtmfSendRequested("1", 2000),
    TransferRequested("+15551234567"),
    TransferRequested("sip:desk@example.com"),
    HangupRequested(),
    HangupRequested("done"),
    TranscriptReceived("caller", "hello", final=False),
    TranscriptReceived("bot", "hi"),
]


@pytest.mark.parametrize("binary", [False, True], ids=["json", "binary"])
@pytest.mark.parametrize("carrier", [None, "twilio"])
@pytest.mark.parametrize(
    "media_format",
    [PCMU_8K, AudioFormat(Encoding.PCM16, 16000), AudioFormat(Encoding.L16, 8000)],
    ids=str,
)
def test_every_message_voxgate_sends_is_valid(
    media_format: AudioFormat, carrier: str | None, binary: bool
) -> None:
    dialect = V1Dialect(binary_audio=binary, carrier=carrier)
    sent = [dialect.format_upstream(event) for event in _session(media_format)]
    texts = [json.loads(message) for message in sent if isinstance(message, str)]
    frames = [message for message in sent if isinstance(message, bytes)]
    assert len(texts) + len(frames) == len(sent) - 1  # StreamConnected has no message
    assert len(frames) == (4 if binary else 0)
    for message in texts:
        errors = [error.message for error in BRIDGE_TO_BOT.iter_errors(message)]
        assert errors == [], message


@pytest.mark.parametrize("binary", [False, True], ids=["json", "binary"])
def test_every_message_a_bot_library_sends_is_valid(binary: bool) -> None:
    bot = V1Dialect(binary_audio=binary)
    for event in BOT_EVENTS:
        message = bot.format_downstream(event)
        if isinstance(message, bytes):
            assert binary
            assert isinstance(event, AudioSent)
            continue
        errors = [error.message for error in BOT_TO_BRIDGE.iter_errors(json.loads(message))]
        assert errors == [], message


# --- the document's tables ------------------------------------------------------------


def _section(heading: str) -> str:
    start = DOC.index(f"\n{heading}\n")
    level = heading.split(" ", 1)[0]
    rest = DOC[start + len(heading) + 2 :]
    ends = [rest.find(f"\n{'#' * n} ") for n in range(1, len(level) + 1)]
    return rest[: min((end for end in ends if end >= 0), default=len(rest))]


def _first_column(section: str) -> list[str]:
    rows = [line for line in section.splitlines() if line.startswith("|")]
    cells = [row.split("|")[1].strip().strip("`") for row in rows[2:]]  # skip header, ruler
    return cells


def test_error_codes_agree_everywhere() -> None:
    assert _first_column(_section("## Error codes")) == list(ERROR_CODES)
    assert SCHEMA["$defs"]["error"]["properties"]["code"]["examples"] == list(ERROR_CODES)


def test_close_codes_agree() -> None:
    constants = [
        CLOSE_NORMAL,
        CLOSE_GOING_AWAY,
        CLOSE_UNSUPPORTED_DATA,
        CLOSE_POLICY_VIOLATION,
        CLOSE_MESSAGE_TOO_BIG,
        CLOSE_INTERNAL_ERROR,
    ]
    assert [int(code) for code in _first_column(_section("## Close codes"))] == constants


def test_stop_reasons_agree() -> None:
    reasons = _first_column(_section("### `stop`"))
    assert reasons == SCHEMA["$defs"]["stop"]["properties"]["reason"]["examples"]
    assert reasons == [reason for reason in STOP_REASONS if reason != "bot_unreachable"]


def _rows(section: str) -> list[list[str]]:
    rows = [line for line in section.splitlines() if line.startswith("|")]
    return [[cell.strip().strip("`") for cell in row.split("|")[1:-1]] for row in rows[2:]]


def test_the_limits_table_is_the_configuration() -> None:
    rows = _rows(_section("### Limits per call"))
    assert [key for _, key, _, _ in rows] == [
        "call.max_queued_audio",
        "call.max_marks",
        "call.max_mark_name",
        "call.max_transcript_bytes",
    ]
    for _, key, default, _ in rows:
        name = key.removeprefix("call.")
        documented = float(default.removesuffix(" s").replace(",", ""))
        assert getattr(CallConfig(), name) == getattr(CallPolicy(), name) == documented, key


def test_subprotocols_and_size_limit_are_documented() -> None:
    connecting = _section("## Connecting")
    assert f"`{SUBPROTOCOL_JSON}`" in connecting
    assert f"`{SUBPROTOCOL_BINARY}`" in connecting
    assert f"Sec-WebSocket-Protocol: {SUBPROTOCOL_JSON}, {SUBPROTOCOL_BINARY}" in connecting
    assert MAX_MESSAGE_BYTES == 256 * 1024
    assert f"{MAX_MESSAGE_BYTES:,} bytes" in _section("## Framing, limits and conventions")
