"""The load test's report: the run's result as JSON, and as one self-contained HTML page.

The page has no script and fetches nothing: its style is inline and its plots are
matplotlib SVGs inlined in the page (each one's ids prefixed, so that no two plots
share an id). Any key of the result may be missing or null: a value that was not
measured reads "not measured", a plot without data is left out with a note. Every
string taken from the result is HTML-escaped, and the target URL loses its userinfo
and secret-looking query values.
"""

from __future__ import annotations

import html
import io
import json
import math
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

from voxgate.loadtest.capacity import verdict
from voxgate.redact import redact_url

if TYPE_CHECKING:
    from matplotlib.axes import Axes

NOT_MEASURED: Final = "not measured"
WORST_CALLS: Final = 20
CALL_COLUMNS: Final = (  # heading, key in per_call, unit
    ("call", "index", ""), ("status", "status", ""), ("failure", "failure", ""),
    ("set-up", "setup_ms", "ms"), ("p50", "p50_ms", "ms"), ("p99", "p99_ms", "ms"),
    ("lost", "lost", ""), ("late", "late", ""), ("jitter", "jitter_ms", "ms"),
    ("longest gap", "max_gap_ms", "ms"),
)  # fmt: skip
STYLE: Final = """
body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 72em; padding: 0 1em;
       color: #222; }
h1 { font-size: 1.6em; } h2 { border-bottom: 1px solid #ccc; margin-top: 2em; }
table { border-collapse: collapse; margin: 1em 0; }
th, td { border: 1px solid #ddd; padding: 0.25em 0.6em; text-align: left; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
tr.failed td { background: #fdecea; }
figure { margin: 1em 0; } svg { max-width: 100%; height: auto; }
.note { color: #666; font-style: italic; }
"""


def write_json(result: Mapping[str, Any], path: Path) -> None:
    """``result`` as indented UTF-8 JSON, NaN and infinities written as null."""
    text = json.dumps(_finite(result), indent=2, ensure_ascii=False, allow_nan=False)
    path.write_text(text + "\n", encoding="utf-8")


def _finite(value: Any) -> Any:
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, Mapping):
        return {str(key): _finite(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(item) for item in value]
    if hasattr(value, "tolist"):  # a numpy scalar or array
        return _finite(value.tolist())
    return value


def _at(data: Any, *keys: str) -> Any:
    """``data[k1][k2]...``, or None when any level is missing or not a mapping."""
    for key in keys:
        if not isinstance(data, Mapping):
            return None
        data = data.get(key)
    return data


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if math.isfinite(value) else None


def _fmt(value: Any, unit: str = "", digits: int | None = 1) -> str:
    """One value for the page, escaped: "not measured" when it is missing. A float has
    ``digits`` decimals, or as many as it needs when ``digits`` is None."""
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return NOT_MEASURED
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        text = str(value)
    elif isinstance(value, float):
        text = f"{value:g}" if digits is None else f"{value:.{digits}f}"
    else:
        return html.escape(str(value))
    return f"{text} {unit}".rstrip()


def _percent(ratio: Any) -> str:
    number = _number(ratio)
    return NOT_MEASURED if number is None else f"{number * 100:.3g} %"


def _pair(data: Any, first: str, second: str, unit: str, digits: int = 1) -> str:
    """Two values of one mapping ("2.5 ms / 7.2 ms"), or "not measured"."""
    a, b = _at(data, first), _at(data, second)
    if a is None and b is None:
        return NOT_MEASURED
    return f"{_fmt(a, unit, digits)} / {_fmt(b, unit, digits)}"


def _cell(text: str) -> str:
    numeric = bool(text) and (text[0].isdigit() or text[0] == "-")
    return f'<td class="num">{text}</td>' if numeric else f"<td>{text}</td>"


def _table(
    headers: Sequence[str], rows: Iterable[Sequence[str]], classes: Sequence[str] = ()
) -> str:
    """A table of already escaped cells; ``classes`` gives each row its class, if any."""
    head = "".join(f"<th>{html.escape(name)}</th>" for name in headers)
    body = []
    for number, row in enumerate(rows):
        css = classes[number] if number < len(classes) else ""
        attribute = f' class="{css}"' if css else ""
        body.append(f"<tr{attribute}>{''.join(_cell(cell) for cell in row)}</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def _section(anchor: str, title: str, *parts: str) -> str:
    return f'<section><h2 id="{anchor}">{html.escape(title)}</h2>{"".join(parts)}</section>'


def _note(text: str) -> str:
    return f'<p class="note">{html.escape(text)}</p>'


def _plot(name: str, caption: str, draw: Callable[[Axes], None]) -> str:
    """A figure drawn by ``draw`` on one axes, as inline SVG with ids prefixed by ``name``."""
    import matplotlib  # noqa: PLC0415  (lazily: only the HTML report needs it)

    matplotlib.use("Agg")
    from matplotlib.figure import Figure  # noqa: PLC0415

    # A Figure made without pyplot is in no global registry: nothing to close, nothing leaks.
    with matplotlib.rc_context({"svg.fonttype": "none", "svg.hashsalt": name}):
        figure = Figure(figsize=(8, 3.6), layout="constrained")
        draw(figure.subplots())
        buffer = io.StringIO()
        figure.savefig(buffer, format="svg", metadata={"Date": None, "Creator": None})
    svg = buffer.getvalue()
    svg = svg[svg.index("<svg") :]  # no XML prolog, no DOCTYPE
    svg = re.sub(r'(\bid="|href="#|url\(#)', rf"\g<1>{name}-", svg)
    return f"<figure>{svg}<figcaption>{html.escape(caption)}</figcaption></figure>"


def _mappings(values: Any) -> list[Mapping[str, Any]]:
    """The entries of a list that are mappings (timeline, steps, calls)."""
    return (
        [item for item in values if isinstance(item, Mapping)] if isinstance(values, list) else []
    )


def _floats(values: Any) -> list[float]:
    if not isinstance(values, Sequence) or isinstance(values, str):
        return []
    return [number for number in map(_number, values) if number is not None]


def _latency_cdf(samples: list[float], result: Mapping[str, Any]) -> Callable[[Axes], None]:
    """The samples' CDF, with the run's own p50 and p99 (over every marker, where the
    samples may be a subset), or the samples' when the run has none."""

    def draw(axes: Axes) -> None:
        ordered = sorted(samples)
        count = len(ordered)
        axes.step(ordered, [(i + 1) / count for i in range(count)], where="post")
        for name, fraction, color in (("p50", 0.5, "tab:green"), ("p99", 0.99, "tab:red")):
            value = _number(_at(result, "latency_ms", name))
            if value is None:
                value = ordered[min(count - 1, math.ceil(fraction * count) - 1)]
            axes.axvline(value, color=color, linestyle="--", label=f"{name} {value:.1f} ms")
        axes.set_xlabel("round-trip latency (ms)")
        axes.set_ylabel("fraction of markers")
        axes.set_ylim(0, 1.02)
        axes.grid(alpha=0.3)
        axes.legend(loc="lower right")

    return draw


def _load_points(result: Mapping[str, Any]) -> tuple[str, list[Mapping[str, Any]], str]:
    """What the load plot draws: the capacity steps when there are, else the timeline."""
    steps = _mappings(_at(result, "capacity", "steps"))
    if steps:
        return "calls", steps, "capacity steps"
    return "active", _mappings(result.get("timeline")), "timeline (each second)"


def _column(
    rows: Sequence[Mapping[str, Any]], x_key: str, y_key: str
) -> tuple[list[float], list[float]]:
    pairs = [(_number(row.get(x_key)), _number(row.get(y_key))) for row in rows]
    kept = sorted((x, y) for x, y in pairs if x is not None and y is not None)
    return [x for x, _ in kept], [y for _, y in kept]


def _load_plot(result: Mapping[str, Any]) -> Callable[[Axes], None]:
    x_key, rows, _ = _load_points(result)
    knee = _number(_at(result, "capacity", "knee_calls"))
    style = "o-" if x_key == "calls" else "o"

    def draw(axes: Axes) -> None:
        for y_key, label in (("p50_ms", "p50"), ("p99_ms", "p99")):
            xs, ys = _column(rows, x_key, y_key)
            axes.plot(xs, ys, style, markersize=3, label=f"latency {label}")
        axes.set_xlabel("concurrent calls")
        axes.set_ylabel("latency (ms)")
        axes.grid(alpha=0.3)
        xs, cpu = _column(rows, x_key, "cpu_percent")
        if cpu:
            right = axes.twinx()
            right.plot(xs, cpu, "s:", color="tab:gray", markersize=3, label="node CPU")
            right.set_ylabel("node CPU (% of one core)")
            right.legend(loc="upper right")
        if knee is not None:
            axes.axvline(knee, color="tab:red", linestyle="--", label=f"knee {knee:g} calls")
        axes.legend(loc="upper left")

    return draw


def _jitter_plot(edges: list[float], counts: list[float]) -> Callable[[Axes], None]:
    def draw(axes: Axes) -> None:
        axes.stairs(counts, edges, fill=True, alpha=0.7)
        axes.axvline(0, color="black", linewidth=0.8)
        axes.set_xlabel("inter-arrival minus 20 ms (ms)")
        axes.set_ylabel("returned frames")
        axes.grid(alpha=0.3)

    return draw


def _timeline_plot(rows: list[Mapping[str, Any]]) -> Callable[[Axes], None]:
    def draw(axes: Axes) -> None:
        ts, active = _column(rows, "t", "active")
        axes.plot(ts, active, color="tab:blue", label="active calls")
        axes.set_xlabel("time since start (s)")
        axes.set_ylabel("active calls")
        axes.grid(alpha=0.3)
        right = axes.twinx()
        ts, p99 = _column(rows, "t", "p99_ms")
        right.plot(ts, p99, color="tab:red", label="p99 latency")
        right.set_ylabel("p99 latency (ms)")
        axes.legend(loc="upper left")
        right.legend(loc="upper right")

    return draw


def _settings(result: Mapping[str, Any]) -> str:
    target = result.get("target")
    rows = [
        ("target", html.escape(redact_url(target)) if isinstance(target, str) else _fmt(target)),
        ("dialect", _fmt(result.get("dialect"))),
        ("bot", _fmt(result.get("bot"))),
        ("started at", _fmt(result.get("started_at"))),
        ("wall time", _fmt(result.get("wall_seconds"), "s")),
    ]
    if result.get("stopped_early"):
        rows.append(("stopped early", _fmt(result["stopped_early"])))
    settings = result.get("settings")
    if isinstance(settings, Mapping):
        rows += [
            (html.escape(str(key)), "none" if value is None else _fmt(value, digits=None))
            for key, value in settings.items()
        ]
    return _section("settings", "Settings", _table(("setting", "value"), rows))


def _of(part: Any, whole: Any, what: str = "") -> str:
    """The part and the whole ("4 of 58800 expected"), or the part alone when the whole
    was not measured."""
    if part is None or whole is None:
        return _fmt(part)
    return f"{_fmt(part)} of {_fmt(whole)} {what}".rstrip()


def _gaps(gaps: Any) -> str:
    count, longest = _at(gaps, "count"), _at(gaps, "max_ms")
    return _fmt(count) if longest is None else f"{_fmt(count)}, longest {_fmt(longest, 'ms')}"


def _summary_rows(result: Mapping[str, Any]) -> list[tuple[str, str]]:
    frames = result.get("frames")
    lost = _at(frames, "lost") if _at(frames, "lost") is not None else result.get("lost")
    latency = result.get("latency_ms") or {"p50": result.get("p50"), "p99": result.get("p99")}
    dtmf = result.get("dtmf")
    node = result.get("node")
    rows = [
        ("calls placed", _fmt(result.get("calls"))),
        ("calls answered", _fmt(result.get("calls_answered"))),
        ("calls failed", _fmt(result.get("calls_failed"))),
        ("frames lost", _of(lost, _at(frames, "expected"), "expected")),
        ("loss ratio", _percent(_at(frames, "loss_ratio"))),
        ("late frames", _fmt(_at(frames, "late"))),
        ("latency p50 / p99", _pair(latency, "p50", "p99", "ms")),
        ("latency samples", _fmt(_at(latency, "samples"))),
        ("call set-up p50 / p99", _pair(result.get("setup_ms"), "p50", "p99", "ms")),
        ("jitter mean / p99", _pair(result.get("jitter_ms"), "mean", "p99", "ms")),
        ("gaps", _gaps(result.get("gaps"))),
        ("DTMF detected", _of(_at(dtmf, "detected"), _at(dtmf, "sent"), "sent")),
        ("DTMF latency p50 / p99", _pair(_at(dtmf, "latency_ms"), "p50", "p99", "ms")),
        ("node CPU mean / max", _pair(_at(node, "cpu_percent"), "mean", "max", "%")),
        ("node RSS max", _fmt(_at(node, "rss_mib", "max"), "MiB")),
        ("node measured from", _fmt(_at(node, "source"))),
    ]
    rows += _optional_rows(result)
    bridge = result.get("bridge_metrics")
    if isinstance(bridge, Mapping):
        rows += [
            ("bridge inbound p50 / p99", _pair(bridge.get("inbound_ms"), "p50", "p99", "ms", 2)),
            ("bridge outbound p50 / p99", _pair(bridge.get("outbound_ms"), "p50", "p99", "ms", 2)),
        ]
    return rows


def _optional_rows(result: Mapping[str, Any]) -> list[tuple[str, str]]:
    """Rows for what only some runs report: shown when the result has them."""
    generator = result.get("generator")
    optional = {
        "calls dropped": (result.get("calls_dropped"), ""),
        "node measure error": (_at(result, "node", "error"), ""),
        "generator late ticks": (_at(generator, "late_ticks"), ""),
        "generator max lateness": (_at(generator, "max_lateness_ms"), "ms"),
    }
    rows = [
        (label, _fmt(value, unit)) for label, (value, unit) in optional.items() if value is not None
    ]
    first_audio = result.get("first_audio_ms")
    if isinstance(first_audio, Mapping):
        rows.append(("first audio p50 / p99", _pair(first_audio, "p50", "p99", "ms")))
    return rows


def _summary(result: Mapping[str, Any]) -> str:
    failures = result.get("failures")
    counts = failures.items() if isinstance(failures, Mapping) else []
    reasons = sorted(counts, key=lambda item: -(_number(item[1]) or 0))
    failed = [(html.escape(str(reason)), _fmt(count)) for reason, count in reasons if count]
    failure_part = (
        _table(("failure reason", "calls"), failed) if failed else _note("No call failed.")
    )
    return _section(
        "summary", "Summary", _table(("measure", "value"), _summary_rows(result)), failure_part
    )


def _latency(result: Mapping[str, Any]) -> str:
    samples = _floats(result.get("latency_samples_ms"))
    parts = [
        _plot("cdf", "Latency CDF over every marker", _latency_cdf(samples, result))
        if samples
        else _note(f"Latency CDF: {NOT_MEASURED} (no latency samples).")
    ]
    x_key, rows, source = _load_points(result)
    if any(_column(rows, x_key, key)[0] for key in ("p50_ms", "p99_ms", "cpu_percent")):
        caption = f"Latency and node CPU against concurrent calls, from the {source}"
        parts.append(_plot("load", caption, _load_plot(result)))
    else:
        parts.append(_note(f"Latency against load: {NOT_MEASURED}."))
    timeline = _mappings(result.get("timeline"))
    if _column(timeline, "t", "active")[0]:
        caption = "Active calls and p99 latency over time"
        parts.append(_plot("timeline", caption, _timeline_plot(timeline)))
    return _section("latency", "Latency", *parts)


def _capacity(capacity: Mapping[str, Any]) -> str:
    steps = _mappings(capacity.get("steps"))
    said = html.escape(verdict({**capacity, "steps": steps}))
    thresholds = capacity.get("thresholds")
    pairs = thresholds.items() if isinstance(thresholds, Mapping) else []
    named = [f"{html.escape(str(key))} {_fmt(value, digits=None)}" for key, value in pairs]
    limits = ", ".join(named) or NOT_MEASURED
    rows = [
        (
            _fmt(step.get("calls")),
            _fmt(step.get("p50_ms"), "ms"),
            _fmt(step.get("p99_ms"), "ms"),
            _percent(step.get("loss_ratio")),
            _fmt(step.get("cpu_percent"), "%"),
            _fmt(step.get("added_p99_ms"), "ms"),
            _fmt(step.get("passed")),
        )
        for step in steps
    ]
    classes = ["" if step.get("passed") else "failed" for step in steps]
    headings = ("calls", "p50", "p99", "loss", "node CPU", "node added p99", "passed")
    table = _table(headings, rows, classes)
    return _section("capacity", "Capacity", f"<p>{said}</p><p>Thresholds: {limits}.</p>", table)


def _jitter(result: Mapping[str, Any]) -> str:
    edges = _floats(_at(result, "jitter_histogram", "edges_ms"))
    counts = _floats(_at(result, "jitter_histogram", "counts"))
    if len(edges) >= 2 and len(counts) == len(edges) - 1 and any(counts):
        caption = "Inter-arrival of each returned frame, less 20 ms"
        part = _plot("jitter", caption, _jitter_plot(edges, counts))
    else:
        part = _note(f"Jitter histogram: {NOT_MEASURED}.")
    return _section("jitter", "Jitter", part)


def _troubled(call: Mapping[str, Any]) -> bool:
    """A call that did not complete (failed, dropped)."""
    return call.get("status") not in (None, "completed")


def _worst_first(call: Mapping[str, Any]) -> tuple[bool, float]:
    """Calls that did not complete first, then by p99, highest first; no p99 last."""
    p99 = _number(call.get("p99_ms"))
    return not _troubled(call), -p99 if p99 is not None else math.inf


def _call_row(call: Mapping[str, Any]) -> list[str]:
    cells = [
        "" if key == "failure" and call.get(key) is None else _fmt(call.get(key), unit)
        for _, key, unit in CALL_COLUMNS
    ]
    return [*cells, _of(call.get("dtmf_detected"), call.get("dtmf_sent"))]


def _calls(result: Mapping[str, Any]) -> str:
    calls = _mappings(result.get("per_call"))
    worst = sorted(calls, key=_worst_first)[:WORST_CALLS]
    rows = [_call_row(call) for call in worst]
    classes = ["failed" if _troubled(call) else "" for call in worst]
    headers = [heading for heading, _, _ in CALL_COLUMNS] + ["DTMF"]
    title = f"The {len(worst)} worst calls of {len(calls)}"
    part = _table(headers, rows, classes) if rows else _note(f"Per-call results: {NOT_MEASURED}.")
    return _section("calls", title, part)


def render_html(result: Mapping[str, Any]) -> str:
    """The whole report as one HTML5 page that needs no network and runs no script."""
    capacity = result.get("capacity")
    sections = [
        _summary(result),
        _settings(result),
        _latency(result),
        _capacity(capacity) if isinstance(capacity, Mapping) else "",
        _jitter(result),
        _calls(result),
    ]
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>voxgate load test</title><style>{STYLE}</style></head>"
        f"<body><h1>voxgate load test</h1>{''.join(sections)}</body></html>\n"
    )
