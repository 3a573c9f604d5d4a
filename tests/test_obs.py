"""Log lines (timestamps, no colours, no secrets, one record per line) and counters."""

from __future__ import annotations

import json
import logging
import re
import sys
from collections.abc import Iterator

import pytest
from hypothesis import given
from hypothesis import strategies as st

from voxgate import obs
from voxgate.obs import (
    MAX_SERIES,
    JsonFormatter,
    Metrics,
    ProtocolLogFilter,
    TextFormatter,
    iso_timestamp,
    label_value,
    safe_reason,
    setup_logging,
)

ISO: re.Pattern[str] = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z")


def record(
    msg: str,
    *args: object,
    name: str = "voxgate.bridge",
    level: int = logging.INFO,
    exc: bool = False,
    **extra: object,
) -> logging.LogRecord:
    exc_info = None
    if exc:
        try:
            raise RuntimeError("boom: wss://u:S3CRET-exc@h/?token=S3CRET-exc")
        except RuntimeError:
            exc_info = sys.exc_info()
    made = logging.LogRecord(name, level, __file__, 1, msg, args or None, exc_info)
    made.created = 1796124481.123456  # 2026-12-01T11:28:01.123Z
    made.msecs = 123.456
    for key, value in extra.items():
        setattr(made, key, value)
    return made


# --- timestamps -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("created", "text"),
    [
        (0.0, "1970-01-01T00:00:00.000Z"),
        (1796124481.123456, "2026-12-01T11:28:01.123Z"),
        (1796124481.9996, "2026-12-01T11:28:01.999Z"),  # never rounds up to .1000
        (951825600.5, "2000-02-29T12:00:00.500Z"),
    ],
)
def test_iso_timestamp(created: float, text: str) -> None:
    assert iso_timestamp(created) == text


# --- JSON lines -----------------------------------------------------------------------


def json_line(made: logging.LogRecord) -> dict[str, object]:
    line = JsonFormatter().format(made)
    assert "\n" not in line
    parsed: dict[str, object] = json.loads(line)
    return parsed


def test_json_line_fields() -> None:
    entry = json_line(record("call started: %s", "twilio", call_id="vx-1", frames=3))
    assert entry == {
        "ts": "2026-12-01T11:28:01.123Z",
        "level": "info",
        "logger": "voxgate.bridge",
        "msg": "call started: twilio",
        "call_id": "vx-1",
        "frames": 3,
    }


def test_json_line_has_no_colour() -> None:
    entry = json_line(
        record(
            "Uvicorn running on %s",
            "http://127.0.0.1:8080",
            name="uvicorn.error",
            color_message="Uvicorn running on \x1b[1m%s\x1b[0m",
            painted="\x1b[32mgreen\x1b[0m",
        )
    )
    assert "color_message" not in entry
    assert "painted" not in entry
    assert entry["msg"] == "Uvicorn running on http://127.0.0.1:8080"
    assert "\x1b" not in json.dumps(entry, ensure_ascii=False)
    assert json_line(record("\x1b[31mred\x1b[0m text"))["msg"] == "red text"


def test_json_line_scrubs_message_extras_and_traceback() -> None:
    line = JsonFormatter().format(
        record(
            "call started: bot %s",
            "wss://u:S3CRET-user@h/v?api_key=S3CRET-key",
            exc=True,
            headers="Authorization: Bearer S3CRET-bearer",
            url="ws://h/?token=S3CRET-extra",
            odd=["Authorization: Bearer S3CRET-list"],
        )
    )
    assert "S3CRET" not in line
    entry = json.loads(line)
    assert entry["msg"] == "call started: bot wss://***@h/v?api_key=***"
    assert entry["headers"] == "Authorization: ***"
    assert "RuntimeError: boom" in entry["exc"]


# --- text lines -----------------------------------------------------------------------


def test_text_line_has_a_timestamp_the_call_and_the_fields() -> None:
    line = TextFormatter().format(
        record("call ended", call_id="vx-1", carrier_call_id="CA1", reason="caller hangup")
    )
    assert line == (
        "2026-12-01T11:28:01.123Z info    voxgate.bridge: [vx-1] call ended "
        'carrier_call_id=CA1 reason="caller hangup"'
    )


def test_text_line_prefix_is_not_taken_for_a_header() -> None:
    line = TextFormatter().format(record("carrier hangup done", name="voxgate.session"))
    assert line.endswith("info    voxgate.session: carrier hangup done")
    line = TextFormatter().format(record("x", name="voxgate.auth_token"))
    assert line.endswith("voxgate.auth_token: x")


def test_fields_named_like_secrets_and_object_reprs() -> None:
    made = record("m", api_key="S3CRET", token_count=3, websocket=object(), plain="a b")
    assert TextFormatter().format(made).endswith('m api_key=*** token_count=3 plain="a b"')
    entry = json_line(made)
    assert entry["api_key"] == "***" and entry["token_count"] == 3
    assert "websocket" not in entry


def test_structured_fields_keep_their_shape_scrubbed() -> None:
    summary = {
        "duration_s": 1.5,
        "reason": "bot_hangup",
        "bot": "wss://u:S3CRET@h/?api_key=S3CRET",
        "auth_token": "S3CRET",
        "reasons": ("a", "\x1b[1mb"),
        "late": float("nan"),
        "nested": {"x": {"y": {"z": {"deep": 1}}}},
    }
    entry = json_line(record("call ended", summary=summary))
    assert entry["summary"] == {
        "duration_s": 1.5,
        "reason": "bot_hangup",
        "bot": "wss://***@h/?api_key=***",
        "auth_token": "***",
        "reasons": ["a"],
        "late": "nan",
        "nested": {"x": {"y": {"z": "{'deep': 1}"}}},
    }
    line = TextFormatter().format(record("call ended", summary={"reason": "bot_hangup", "n": 2}))
    assert line.endswith('call ended summary={"reason":"bot_hangup","n":2}')


def test_text_line_is_one_line_and_has_no_secret() -> None:
    forged = "bye\n2026-12-01T11:28:01.123Z info    voxgate.bridge: [vx-2] forged"
    line = TextFormatter().format(
        record("bot said %s", forged, note="a\nb", url="wss://u:S3CRET@h/?token=S3CRET")
    )
    assert "\n" not in line
    assert "bot said bye\\n2026" in line
    assert "S3CRET" not in line


def test_text_traceback_follows_on_its_own_lines_scrubbed() -> None:
    line = TextFormatter().format(record("failed", exc=True, level=logging.ERROR))
    first, *rest = line.split("\n")
    assert ISO.match(first) and first.endswith("error   voxgate.bridge: failed")
    assert rest[0] == "Traceback (most recent call last):"
    assert "S3CRET" not in line


def test_text_line_drops_colour() -> None:
    line = TextFormatter().format(
        record("\x1b[1mbold\x1b[0m", color_message="\x1b[1m%s\x1b[0m", painted="\x1b[1mx")
    )
    assert line.endswith("voxgate.bridge: bold")


# --- what uvicorn and websockets log --------------------------------------------------


@pytest.mark.parametrize(
    "made",
    [
        record(
            '%s - "WebSocket %s" [accepted]',
            "127.0.0.1:5555",
            "/v1/streams/telnyx?token=S3CRET",
            name="uvicorn.error",
        ),
        record('%s - "WebSocket %s" 403', "127.0.0.1:5555", "/v1?token=S3", name="uvicorn.error"),
        record('%s - "WebSocket %s" %d', "127.0.0.1:5", "/v1?token=S3", 500, name="uvicorn.error"),
        record("connection open", name="uvicorn.error"),
        record("connection closed", name="uvicorn.error"),
    ],
)
def test_uvicorn_connection_lines_are_dropped(made: logging.LogRecord) -> None:
    assert not ProtocolLogFilter().filter(made)


def test_other_lines_are_kept() -> None:
    keep = ProtocolLogFilter()
    assert keep.filter(record("connection open", name="websockets.server"))  # the echo bot
    assert keep.filter(record("Application startup complete.", name="uvicorn.error"))
    assert keep.filter(record("call started", name="voxgate.bridge"))


@pytest.mark.parametrize(
    ("made", "shown"),
    [
        (record("> %s: %s", "Authorization", "Bearer S3CRET"), "> Authorization: ***"),
        (
            record("< %s: %s", "x-telnyx-streaming-auth-token", "S3CRET"),
            "< x-telnyx-streaming-auth-token: ***",
        ),
        (record("> %s: %s", "X-Tenant", "S3CRET-tenant"), "> X-Tenant: ***"),
        (record("> %s: %s", "Host", "bots.example.com"), "> Host: bots.example.com"),
        (record("> %s: %s", "Upgrade", "websocket"), "> Upgrade: websocket"),
        (record("< GET %s HTTP/1.1", "/v1?token=S3CRET"), "< GET /v1?token=*** HTTP/1.1"),
        (record("> GET %s HTTP/1.1", "/bot?api_key=S3CRET"), "> GET /bot?api_key=*** HTTP/1.1"),
        (
            record(
                '%s - "%s %s HTTP/%s" %d',
                "127.0.0.1:1",
                "GET",
                "/metrics?token=S3CRET",
                "1.1",
                200,
                name="uvicorn.access",
            ),
            '127.0.0.1:1 - "GET /metrics?token=*** HTTP/1.1" 200',
        ),
    ],
)
def test_debug_handshake_lines_hide_values(made: logging.LogRecord, shown: str) -> None:
    assert ProtocolLogFilter().filter(made)
    assert made.getMessage() == shown


@pytest.fixture
def root_logging() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


@pytest.mark.parametrize("fmt", ["json", "text"])
def test_setup_logging_end_to_end(
    fmt: str, root_logging: None, capsys: pytest.CaptureFixture[str]
) -> None:
    setup_logging("debug", fmt)
    logging.getLogger("uvicorn.error").info(
        '%s - "WebSocket %s" [accepted]', "127.0.0.1:1", "/v1/streams/telnyx?token=S3CRET"
    )
    logging.getLogger("websockets.client").debug("> %s: %s", "Authorization", "Bearer S3CRET")
    logging.getLogger("voxgate.bridge").info(
        "call started: bot %s", "wss://u:S3CRET@h/", extra={"call_id": "vx-1"}
    )
    err = capsys.readouterr().err
    lines = err.splitlines()
    assert len(lines) == 2
    assert "S3CRET" not in err
    assert "WebSocket" not in err
    for line in lines:
        stamp = json.loads(line)["ts"] if fmt == "json" else line.split(" ", 1)[0]
        assert ISO.fullmatch(str(stamp))


# --- close reasons --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "limit", "reason"),
    [
        ("stream over", 123, "stream over"),
        ("", 123, ""),
        ("a\nb\r\nc\td", 123, "a b c d"),
        ("a" * 200, 123, "a" * 123),
        ("é" * 100, 123, "é" * 61),  # 2 bytes each: 122 bytes, not half a character
        ("a" + "é" * 100, 123, "a" + "é" * 61),  # 123 bytes exactly
        ("€" * 50, 123, "€" * 41),  # 3 bytes each
        ("a" + "😀" * 40, 123, "a" + "😀" * 30),  # 4 bytes each: 121
        ("abc", 2, "ab"),
        ("é", 1, ""),
        ("bad wss_header: Authorization: Bearer S3CRET", 123, "bad wss_header: ***"),
        ("bot wss://u:S3CRET@h/", 123, "bot wss://***@h/"),
        ("\ud800 lone", 123, "? lone"),
    ],
)
def test_safe_reason(text: str, limit: int, reason: str) -> None:
    assert safe_reason(text, limit) == reason


@given(st.text())
def test_safe_reason_fits_a_close_frame(text: str) -> None:
    reason = safe_reason(text)
    assert len(reason.encode("utf-8")) <= 123
    assert "\n" not in reason and "\r" not in reason


# --- counters -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "kept"),
    [
        ("bot_hangup", "bot_hangup"),
        ("bot_unreachable", "bot_unreachable"),
        ("twilio", "twilio"),
        ("1011", "1011"),
        ("a" * 64, "a" * 64),
        ("a" * 65, "other"),
        ("", "other"),
        ("Bot Hangup", "other"),
        ("CarrierHangup", "other"),
        ('x"} 1\nvoxgate_calls_started 999', "other"),
        ("goodbye, caller", "other"),
        ("café", "other"),
    ],
)
def test_label_values(value: str, kept: str) -> None:
    assert label_value(value) == kept


def test_a_free_text_label_cannot_forge_lines() -> None:
    metrics = Metrics()
    forged = 'x"} 1\nvoxgate_calls_started{carrier="twilio"} 999'
    metrics.count("calls_ended", reason=forged)
    metrics.count("calls_ended", reason="bot_hangup")
    text = metrics.render()
    assert text.splitlines() == [
        "# TYPE voxgate_calls_ended counter",
        'voxgate_calls_ended{reason="bot_hangup"} 1',
        'voxgate_calls_ended{reason="other"} 1',
    ]
    assert metrics.value("calls_ended", reason=forged) == 1
    assert metrics.value("calls_ended", reason="never") == 0


def test_series_per_counter_are_bounded() -> None:
    metrics = Metrics()
    for number in range(MAX_SERIES + 50):
        metrics.count("errors", kind=f"kind_{number}", side="bot")
    metrics.count("errors", kind="kind_0", side="bot")  # an existing series still counts
    assert metrics.value("errors", kind="kind_0", side="bot") == 2
    assert metrics.value("errors", kind="other", side="other") == 50
    assert metrics.render().count("voxgate_errors{") == MAX_SERIES + 1
    metrics.count("calls_started", carrier="twilio")  # other counters are unaffected
    assert metrics.value("calls_started", carrier="twilio") == 1


@pytest.mark.parametrize("name", ["bad name", "calls\nended", "Calls", ""])
def test_bad_metric_names_are_refused(name: str) -> None:
    metrics = Metrics()
    with pytest.raises(ValueError, match="not a metric or label name"):
        metrics.count(name)
    with pytest.raises(ValueError, match="not a metric or label name"):
        metrics.observe(name, 1.0)
    metrics.gauges[name] = 1.0
    assert metrics.render() == "\n"  # the gauge is left out


def test_bad_label_names_are_refused() -> None:
    labels: dict[str, str] = {"kind}": "x"}
    with pytest.raises(ValueError, match="not a metric or label name"):
        Metrics().count("errors", 1, **labels)


def test_the_process_counters_exist() -> None:
    assert isinstance(obs.METRICS, Metrics)
