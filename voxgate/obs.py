"""Operability: structured logs with the call id on every line about a call, and counters.

Logs go to stderr, one JSON object per line by default (``log.format =
"text"`` for people at a terminal), each with an ISO 8601 UTC timestamp to the
millisecond. Any ``extra={"call_id": ...}`` given to a logging call becomes a
field, so every line about a call can be found by its id.

No secret reaches a line: every field is passed through
:func:`voxgate.redact.scrub` as it is formatted, and a filter on the handler
(:class:`ProtocolLogFilter`) drops uvicorn's per-connection lines (they carry
the request's query string, where carriers put the stream token) and hides
header values in the WebSocket libraries' debug lines. Terminal colours
(uvicorn's ``color_message``, any ANSI escape) never reach a line, and
control characters in a text line are escaped so one message is one line.
picows (the media path's WebSocket layer) logs at warning and above only: its
lower levels carry per-connection lines and raw handshake bytes.

Counters are process-wide and rendered in Prometheus' text format at
``GET /metrics``; every error path increments one. Label values come from
fixed sets: :meth:`Metrics.count` turns anything else into ``other``.
"""

from __future__ import annotations

import json
import logging
import math
import os
import re
import sys
import threading
import time
from collections import Counter, deque
from collections.abc import Iterable, Mapping
from typing import Any, Final

import numpy as np

from voxgate.redact import MASK, is_secret_name, redact_headers, redact_url, scrub

RESERVOIR: Final = 50_000  # latest observations kept per summary
SNAPSHOT_OBSERVATIONS: Final = 5_000  # of which a worker lends its node's /metrics the latest
MAX_SERIES: Final = 1_000  # label sets per counter; beyond it, every label value is "other"
OTHER: Final = "other"

_STANDARD_ATTRIBUTES: Final = frozenset(
    vars(logging.LogRecord("", 0, "", 0, "", None, None)).keys()
    | {"message", "asctime", "color_message"}
)
_ESCAPE: Final = re.compile(r"\x1b\[[0-9;?]*[ -/]*[@-~]|\x1b")  # ANSI CSI sequences, lone ESC
_CONTROL: Final = re.compile(r"[\x00-\x1f\x7f]")
_OBJECT_REPR: Final = re.compile(r"<[^<>]* at 0x[0-9a-fA-F]+>")


def iso_timestamp(created: float) -> str:
    """``2026-12-01T11:28:01.123Z``: ISO 8601 (RFC 3339 section 5.6), UTC, milliseconds."""
    seconds = int(created)
    millis = min(int((created - seconds) * 1000), 999)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds)) + f".{millis:03d}Z"


def _uncoloured(text: str) -> str:
    return _ESCAPE.sub("", text) if "\x1b" in text else text


Plain = str | int | float | bool | None | dict[str, "Plain"] | list["Plain"]


def _extras(record: logging.LogRecord) -> dict[str, Plain]:
    """The record's extra fields, as JSON values, scrubbed.

    Dicts and lists (a call's summary) keep their shape. Dropped: values
    holding escape sequences (colours), objects without a readable form
    (``<... object at 0x...>``, as the websockets library adds). A field
    with a secret-looking name (``token``, ``api_key``) shows ``***``.
    """
    return {
        key: _plain(key, value)
        for key, value in vars(record).items()
        if key not in _STANDARD_ATTRIBUTES and not key.startswith("_") and _readable(value)
    }


_MAX_DEPTH: Final = 4


def _readable(value: object) -> bool:
    if value is None or isinstance(value, bool | int | float | dict | list | tuple):
        return True
    text = value if isinstance(value, str) else str(value)
    return "\x1b" not in text and not _OBJECT_REPR.fullmatch(text)


def _plain(key: str, value: object, depth: int = 0) -> Plain:
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)  # JSON has no NaN nor Infinity
    if value is None or isinstance(value, bool | int | float):
        return value
    if isinstance(value, dict) and depth < _MAX_DEPTH:
        return {str(k): _plain(str(k), v, depth + 1) for k, v in value.items() if _readable(v)}
    if isinstance(value, list | tuple) and depth < _MAX_DEPTH:
        return [_plain(key, item, depth + 1) for item in value if _readable(item)]
    return MASK if is_secret_name(key) else scrub(str(value))


class JsonFormatter(logging.Formatter):
    """One JSON object per record; extra attributes (``call_id``...) become fields."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, object] = {
            "ts": iso_timestamp(record.created),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": scrub(_uncoloured(record.getMessage())),
        }
        entry.update(_extras(record))
        if record.exc_info:
            entry["exc"] = scrub(self.formatException(record.exc_info))
        if record.stack_info:
            entry["stack"] = scrub(self.formatStack(record.stack_info))
        return json.dumps(entry, default=str)


class TextFormatter(logging.Formatter):
    """``<ts> <level> <logger>: [<call id>] <message> key=value...``, one line per record.

    Control characters in the message and fields are escaped (a newline in a
    peer's text cannot start a line that looks like another record); only a
    traceback spans several lines.
    """

    def format(self, record: logging.LogRecord) -> str:
        extras = _extras(record)
        call = extras.pop("call_id", None)
        prefix = f"[{call}] " if call else ""
        fields = "".join(f" {key}={_field(value)}" for key, value in extras.items())
        message = _one_line(_uncoloured(record.getMessage()))
        line = (
            f"{iso_timestamp(record.created)} {record.levelname.lower():7} {record.name}: "
            + scrub(f"{prefix}{message}")
            + fields
        )
        if record.exc_info:
            line += "\n" + scrub(self.formatException(record.exc_info))
        if record.stack_info:
            line += "\n" + scrub(self.formatStack(record.stack_info))
        return line


def _one_line(text: str) -> str:
    if not _CONTROL.search(text):
        return text
    return _CONTROL.sub(lambda match: repr(match.group())[1:-1], text)


def _field(value: Plain) -> str:
    if isinstance(value, dict | list):
        return json.dumps(value, ensure_ascii=False, separators=(",", ":"))
    text = _one_line(str(value))
    return (
        json.dumps(text, ensure_ascii=False) if (not text or " " in text or '"' in text) else text
    )


# uvicorn's per-connection lines, whose second argument is the path with its query string.
_UVICORN_CONNECTION_LINES: Final = frozenset(
    {
        '%s - "WebSocket %s" [accepted]',
        '%s - "WebSocket %s" 403',
        '%s - "WebSocket %s" %d',
        "connection open",
        "connection closed",
    }
)
_HEADER_LINES: Final = frozenset({"> %s: %s", "< %s: %s"})  # the websockets library, debug
_REQUEST_LINES: Final = frozenset({"> GET %s HTTP/1.1", "< GET %s HTTP/1.1"})
_ACCESS_LINE: Final = '%s - "%s %s HTTP/%s" %d'  # uvicorn.access (off in voxgate serve)
_SHOWN_HEADERS: Final = (  # protocol mechanics, shown at debug level
    "host",
    "upgrade",
    "connection",
    "sec-websocket-version",
    "sec-websocket-protocol",
    "sec-websocket-extensions",
    "user-agent",
    "server",
    "date",
    "content-length",
    "content-type",
)


def header_line_args(msg: object, args: tuple[object, ...]) -> tuple[object, ...]:
    """The arguments of a websockets debug line, a header's value hidden when the line is
    one of its header lines (``"> %s: %s"``) and the header not protocol mechanics."""
    if msg not in _HEADER_LINES or len(args) != 2:
        return args
    return redact_headers([(str(args[0]), str(args[1]))], keep=_SHOWN_HEADERS)[0]


class WireLog(logging.LoggerAdapter[logging.Logger]):
    """A logger for a ``websockets`` connection that hides header values in the record
    itself (whatever handler writes it), as :class:`ProtocolLogFilter` does for voxgate's
    own handler: a bot embedded in another program keeps its token out of that one's logs."""

    def log(self, level: int, msg: object, *args: object, **kwargs: Any) -> None:
        super().log(level, msg, *header_line_args(msg, args), **kwargs)


class ProtocolLogFilter(logging.Filter):
    """Drops uvicorn's per-connection lines; hides header values and query secrets.

    uvicorn logs ``'<client> - "WebSocket <path?query>" [accepted]'`` (logger
    ``uvicorn.error``) for every stream, with the ``?token=`` a carrier may
    present: voxgate logs its own line with the call id instead. At debug
    level the websockets library logs every handshake header (``>
    Authorization: Bearer ...``) and the request path: values are hidden
    there, but for the handshake's own headers.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        if not isinstance(record.msg, str):
            return True
        if record.msg in _UVICORN_CONNECTION_LINES and record.name.startswith("uvicorn"):
            return False
        args = record.args
        if isinstance(args, tuple):
            if record.msg in _HEADER_LINES and len(args) == 2:
                record.args = header_line_args(record.msg, args)
            elif record.msg in _REQUEST_LINES and len(args) == 1:
                record.args = (redact_url(str(args[0])),)
            elif record.msg == _ACCESS_LINE and len(args) == 5:
                record.args = (*args[:2], redact_url(str(args[2])), *args[3:])
        return True


def setup_logging(level: str = "info", fmt: str = "json") -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter())
    handler.addFilter(ProtocolLogFilter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # picows logs each connection at info and raw handshake bytes (headers, tokens) at
    # its own level below debug: voxgate logs its own lines with the call id instead.
    logging.getLogger("picows").setLevel(logging.WARNING)
    # httpx logs every request's full URL at info (a webhook's path or query may hold a
    # token): voxgate logs its deliveries itself, without them.
    for name in ("httpx", "httpcore"):
        logging.getLogger(name).setLevel(logging.WARNING)


def safe_reason(text: str, limit: int = 123) -> str:
    """A WebSocket close reason: one line, no secret, at most ``limit`` UTF-8 bytes.

    RFC 6455 section 5.5: a control frame's payload is at most 125 bytes, two
    of which are the close code (section 5.5.1), so a reason has 123. The cut
    falls on a character boundary, never inside a multi-byte character.
    """
    line = " ".join(_CONTROL.sub(" ", scrub(text)).split())
    encoded = line.encode("utf-8", "replace")
    if len(encoded) <= limit:
        return encoded.decode("utf-8")
    return encoded[: max(limit, 0)].decode("utf-8", "ignore")


_NAME: Final = re.compile(r"[a-z_][a-z0-9_]{0,99}")  # metric and label names (code constants)
_LABEL_VALUE: Final = re.compile(r"[a-z0-9_]{1,64}")
_Labels = tuple[tuple[str, str], ...]


def label_value(value: object) -> str:
    """``value`` if it is a plain label value (``[a-z0-9_]{1,64}``), else ``"other"``.

    Label values must come from fixed sets (reasons, codes, carrier names): a
    peer's free text would grow the series without bound, and a newline or a
    quote in it could forge lines of the exposition format.
    """
    return value if isinstance(value, str) and _LABEL_VALUE.fullmatch(value) else OTHER


def _checked_name(name: str) -> str:
    if not _NAME.fullmatch(name):
        raise ValueError(f"not a metric or label name: {name[:40]!r}")
    return name


class Metrics:
    """Named counters with optional labels, safe to bump from any thread.

    Label values outside ``[a-z0-9_]{1,64}`` are counted as ``other``, and so
    are all the labels of a counter's series beyond :data:`MAX_SERIES`.
    """

    def __init__(self) -> None:
        self._counts: Counter[tuple[str, _Labels]] = Counter()
        self._series: Counter[str] = Counter()  # label sets seen per counter
        self._lock = threading.Lock()
        self.gauges: dict[str, float] = {}
        self._observed: dict[str, deque[float]] = {}

    def observe(self, name: str, value: float) -> None:
        """Record one observation of a summary (kept in a bounded reservoir)."""
        reservoir = self._observed.get(name)
        if reservoir is None:
            reservoir = self._observed.setdefault(_checked_name(name), deque(maxlen=RESERVOIR))
        reservoir.append(value)

    def quantiles(self, name: str, *qs: float) -> list[float]:
        values = np.fromiter(self._observed.get(name, ()), dtype=np.float64)
        if not values.size:
            return [float("nan")] * len(qs)
        return [float(v) for v in np.quantile(values, qs)]

    def reset(self) -> None:
        """Forget everything counted and observed (a fresh process, for tests)."""
        with self._lock:
            self._counts.clear()
            self._series.clear()
        self._observed.clear()
        self.gauges.clear()

    def count(self, name: str, amount: int = 1, **labels: str) -> None:
        key = (name, _labels(labels))
        with self._lock:
            if key not in self._counts:
                if self._series[name] >= MAX_SERIES:
                    key = (name, tuple((label, OTHER) for label, _ in key[1]))
                if key not in self._counts:
                    _checked_name(name)
                    self._series[name] += 1
            self._counts[key] += amount

    def value(self, name: str, **labels: str) -> int:
        return self._counts.get((name, _labels(labels)), 0)

    def total(self, name: str) -> int:
        return sum(count for (metric, _), count in self._counts.items() if metric == name)

    def render(self) -> str:
        """Prometheus text exposition format (version 0.0.4)."""
        with self._lock:
            counts = dict(self._counts)
        return render_exposition(counts, self._observed, self.gauges)

    def snapshot(self) -> dict[str, Any]:
        """Everything counted, observed and gauged, as JSON-ready data (for a node's sum)."""
        with self._lock:
            counts = list(self._counts.items())
        return {
            "counters": [
                [name, [list(pair) for pair in labels], n] for (name, labels), n in counts
            ],
            "observed": {
                name: list(values)[-SNAPSHOT_OBSERVATIONS:]
                for name, values in self._observed.items()
            },
            "gauges": dict(self.gauges),
        }


def render_exposition(
    counts: Mapping[tuple[str, _Labels], int],
    observed: Mapping[str, Iterable[float]],
    gauges: Mapping[str, float],
) -> str:
    """Counters, summaries (p50 and p99 of the observations) and gauges in Prometheus'
    text format (version 0.0.4)."""
    lines = []
    seen: set[str] = set()
    for (name, labels), count in sorted(counts.items()):
        if name not in seen:
            lines.append(f"# TYPE voxgate_{name} counter")
            seen.add(name)
        rendered = ",".join(f'{key}="{_escape(value)}"' for key, value in labels)
        lines.append(
            f"voxgate_{name}{{{rendered}}} {count}" if rendered else f"voxgate_{name} {count}"
        )
    for name in sorted(observed):
        values = np.fromiter(observed[name], dtype=np.float64)
        lines.append(f"# TYPE voxgate_{name} summary")
        quantiles = np.quantile(values, (0.5, 0.99)) if values.size else (math.nan, math.nan)
        for q, value in zip((0.5, 0.99), quantiles, strict=True):
            lines.append(f'voxgate_{name}{{quantile="{q}"}} {float(value):.6f}')
        lines.append(f"voxgate_{name}_count {values.size}")
    for name, value in sorted(gauges.items()):
        if not _NAME.fullmatch(name):
            continue
        lines.append(f"# TYPE voxgate_{name} gauge")
        lines.append(f"voxgate_{name} {value}")
    return "\n".join(lines) + "\n"


def process_figures() -> dict[str, float]:
    """This process's own figures, as gauges: CPU seconds (user + system, all threads)
    used so far and the resident memory now (bytes; 0 where ``/proc`` is missing).

    A node of several workers sums its workers' gauges, so it shows the node's total.
    """
    try:
        with open("/proc/self/statm", "rb") as statm:
            pages = int(statm.read().split()[1])
        resident = pages * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        resident = 0
    return {
        "process_cpu_seconds": time.process_time(),
        "process_resident_memory_bytes": resident,
    }


def _labels(labels: dict[str, str]) -> _Labels:
    return tuple(sorted((_checked_name(key), label_value(value)) for key, value in labels.items()))


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


METRICS: Final = Metrics()
