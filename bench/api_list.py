"""The REST API's reads against a store of 100,000 calls: ``GET /v1/calls`` and one call.

    .venv/bin/python -m bench.api_list                    # 100,000 calls, SQLite, 2 rounds
    .venv/bin/python -m bench.api_list --calls 20000 --requests 300 --rounds 1   # a quick look
    .venv/bin/python -m bench.api_list --store-url postgresql://user@127.0.0.1:5432/empty
    .venv/bin/python -m bench.api_list --profile /tmp/api-top.txt   # py-spy over round 1

A store (a SQLite file in a temporary directory, or ``--store-url``: an empty database)
gets its schema, two API keys and 20 number routes through voxgate's store API, then
``--calls`` calls in one bulk insert of the store's own statement and row conversion
(``queries.ADD_CALL``, ``queries.call_params``): 90 days of a node's calls, oldest first,
inbound and outbound, final statuses in realistic shares, 2,000 customers against 20
numbers of ours, the data of a finished call (times, disposition, carrier ids, bot,
quality counters, DTMF, custom parameters); 95 % live, 5 % test.

Then ``voxgate serve --workers 1`` on that store (rate limit raised out of the way), and
this process as the client (httpx on uvloop), timing each request from send to the
last byte read. Kinds, each ``--requests`` times sequentially and again with
``--concurrency`` requests in flight (the order rotates from round to round):

- ``first``: the first page (limit 50) of the live key's calls;
- ``deep``: page 1000 (or the last full one), its cursor found by walking the pages;
- ``status``: ``status=busy``; ``number``: one customer's calls; ``our_number``: a line
  of ours (5 % of all calls, both directions); ``dates``: a one-day window a month ago;
- ``get``: ``GET /v1/calls/{id}`` of calls picked at random.

Beside each kind, the SQL alone: the statement the store runs for it, timed on a
connection of this process, and SQLite's ``EXPLAIN QUERY PLAN`` (or PostgreSQL's
``EXPLAIN``; its store is ``ANALYZE``d after the fill, as autovacuum would), so the time
over the SQL's is the HTTP/ASGI/JSON path's.
Target (the control plane's issue): ``GET /v1/calls`` p99 under 20 ms.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import shutil
import sqlite3
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final

import httpx
import numpy as np
import psycopg

from bench import sip_path_run as runner
from bench.sip_path_load import percentiles
from voxgate.bridge.control.keys import new_key
from voxgate.bridge.control.plane import QUALITY_FIELDS
from voxgate.bridge.store import CallFilter, CallRecord, NumberRoute, SqliteStore, open_store
from voxgate.bridge.store import queries as q
from voxgate.bridge.store.sqlite import _sql
from voxgate.cli import run_fast

DAY: Final = 86400.0
SPAN_DAYS: Final = 90
CUSTOMERS: Final = 2000
OURS: Final = tuple(f"+1555010{n:04d}" for n in range(20))
STATUSES: Final = (("completed", 72), ("busy", 9), ("no-answer", 9), ("failed", 5), ("canceled", 5))
SIP_CODES: Final = {"busy": 486, "no-answer": 480, "failed": 503, "canceled": 487}
REASONS: Final = (("caller_hangup", "caller"), ("bot_hangup", "bot"), ("transferred", "bot"))
CARRIERS: Final = ("sip", "twilio", "telnyx", "plivo")
PAGE: Final = 50
DEEP_PAGE: Final = 1000
KINDS: Final = ("first", "deep", "status", "number", "our_number", "dates", "get")
TARGET_MS: Final = 20.0
PathsOf = Callable[[str], list[str]]


def synthetic_call(index: int, created_at: float, rng: random.Random) -> CallRecord:
    """One finished call as a node would have written it."""
    inbound = rng.random() < 0.6
    ours, theirs = rng.choice(OURS), f"+1555{2000000 + int(rng.paretovariate(1.2)) % CUSTOMERS}"
    status = rng.choices([s for s, _ in STATUSES], [w for _, w in STATUSES])[0]
    carrier = rng.choice(CARRIERS)
    data: dict[str, Any] = {
        "carrier": carrier,
        "carrier_call_id": f"CA{uuid.UUID(int=rng.getrandbits(128)).hex}",
        "sip_call_id": f"{rng.getrandbits(64):016x}@10.0.0.7" if carrier == "sip" else None,
        "bot_url": "wss://bots.example.com/agent/v2",
        "bot_dialect": "voxgate.v1",
        "record": rng.random() < 0.1,
        "custom_parameters": {"campaign": f"spring-{index % 7}", "customer": f"c{index % 9973}"},
        "webhook_url": None,
        "ringing_at": created_at + 0.2,
    }
    ring = rng.uniform(1.0, 12.0)
    if status == "completed":
        reason, side = rng.choice(REASONS)
        duration = round(rng.expovariate(1 / 180), 3)
        frames = int(duration * 50)
        counts = (frames, frames, frames - 12, rng.randrange(4), rng.randrange(30), 0, 1, 0, 0, 0)
        data |= {
            "answered_at": created_at + ring,
            "ended_at": created_at + ring + duration,
            "duration": duration,
            "disposition": reason,
            "hangup_cause": reason,
            "hangup_side": side,
            "transfer_target": "sip:agent@pbx.example.com" if reason == "transferred" else None,
            "dtmf": "".join(rng.choices("0123456789#*", k=rng.choice((0, 0, 0, 1, 4)))),
            "quality": dict(zip(QUALITY_FIELDS, counts, strict=True)),
        }
    else:
        data |= {
            "ended_at": created_at + ring,
            "disposition": status,
            "hangup_cause": status,
            "hangup_side": "callee" if status != "canceled" else "caller",
            "sip_final_code": SIP_CODES[status],
        }
    return CallRecord(
        id=f"vx-{uuid.UUID(int=rng.getrandbits(128)).hex[:20]}",
        mode="test" if rng.random() < 0.05 else "live",
        direction="inbound" if inbound else "outbound",
        status=status,  # type: ignore[arg-type]  # one of STATUSES
        from_number=theirs if inbound else ours,
        to_number=ours if inbound else theirs,
        created_at=created_at,
        data=data,
    )


@dataclass(frozen=True, slots=True)
class Filled:
    """What the bench needs to know of the store it filled."""

    live_key: str
    test_key: str
    ids: tuple[str, ...]  # a sample of the live calls' ids
    customer: str  # a customer with a typical number of calls
    live: int  # live calls stored
    now: float
    seconds: float


async def fill_store(url: str, count: int, seed: int = 7) -> Filled:
    """Schema, keys and number routes through voxgate's store; ``count`` calls in bulk."""
    rng, now = random.Random(seed), time.time()
    store = open_store(url)
    await store.open()
    try:
        (live_secret, live), (test_secret, test) = new_key("live", now), new_key("test", now)
        for key in (live, test):
            await store.add_key(key)
        for number in OURS:
            settings = {"wss_url": "wss://bots.example.com/agent/v2", "bot_dialect": "voxgate.v1"}
            await store.add_number(NumberRoute(f"num_{rng.getrandbits(64):016x}", number,
                                               "auto_accept", settings, now, now))  # fmt: skip
    finally:
        await store.close()
    began = time.monotonic()
    start, step = now - SPAN_DAYS * DAY, SPAN_DAYS * DAY / max(count, 1)
    calls = [synthetic_call(i, start + i * step + rng.uniform(0, step), rng) for i in range(count)]
    rows = [q.call_params(call) for call in calls]
    statement = q.ADD_CALL.removesuffix(" RETURNING seq")
    if isinstance(store, SqliteStore):
        with sqlite3.connect(store.path, isolation_level=None) as db:
            db.execute("BEGIN IMMEDIATE")
            db.executemany(_sql(statement), rows)
            db.execute("COMMIT")
        db.close()
    else:
        with psycopg.connect(url) as conn, conn.cursor() as cursor:
            cursor.executemany(statement, rows)
            cursor.execute("ANALYZE calls")  # autovacuum would, soon after such an insert
    live_ids = [call.id for call in calls if call.mode == "live"]
    counts = Counter(number for call in calls for number in (call.from_number, call.to_number))
    typical = sorted((n for n in counts if n not in OURS), key=counts.__getitem__)
    return Filled(live_secret, test_secret, tuple(rng.sample(live_ids, min(5000, len(live_ids)))),
                  typical[len(typical) // 2], len(live_ids), now,
                  time.monotonic() - began)  # fmt: skip


def kind_filter(kind: str, filled: Filled) -> CallFilter:
    """The filter of a kind of listing, for the live key (whose calls it lists)."""
    window = filled.now - 31 * DAY
    return {
        "status": CallFilter(status="busy", mode="live"),
        "number": CallFilter(number=filled.customer, mode="live"),
        "our_number": CallFilter(number=OURS[3], mode="live"),
        "dates": CallFilter(created_after=window, created_before=window + DAY, mode="live"),
    }.get(kind, CallFilter(mode="live"))


def query_params(filters: CallFilter) -> dict[str, str]:
    """``filters`` as the API's query parameters (the mode is the key's)."""
    params = {"status": filters.status, "number": filters.number}
    for name in ("created_after", "created_before"):
        when = getattr(filters, name)
        params[name] = None if when is None else datetime.fromtimestamp(when, UTC).isoformat()
    return {name: value for name, value in params.items() if value is not None}


def kind_sql(kind: str, filled: Filled, deep: int) -> tuple[str, dict[str, Any]]:
    if kind == "get":
        return q.GET_CALL, {"id": filled.ids[0]}
    before = deep if kind == "deep" else None
    return q.list_calls(kind_filter(kind, filled), limit=PAGE, before=before)


def sql_figures(url: str, statement: str, params: dict[str, Any]) -> dict[str, Any]:
    """The statement timed alone (200 times) and the database's plan for it."""
    if url.startswith("sqlite"):
        store = open_store(url)
        assert isinstance(store, SqliteStore)
        db = sqlite3.connect(store.path)
        run: Callable[[], object] = lambda: db.execute(_sql(statement), params).fetchall()  # noqa: E731
        plan = [str(row[-1]) for row in db.execute("EXPLAIN QUERY PLAN " + _sql(statement), params)]
        close: Callable[[], None] = db.close
    else:
        conn = psycopg.connect(url, autocommit=True)
        run = lambda: conn.execute(statement, params).fetchall()  # noqa: E731
        plan = [str(row[0]) for row in conn.execute("EXPLAIN " + statement, params).fetchall()]
        close = conn.close
    times = []
    for _ in range(200):
        began = time.perf_counter()
        run()
        times.append(time.perf_counter() - began)
    close()
    return {"sql": percentiles(np.array(times)), "plan": plan}


async def timed(client: httpx.AsyncClient, paths: Sequence[str], concurrency: int) -> list[float]:
    """GET each of ``paths`` with ``concurrency`` in flight; each one's seconds."""
    times: list[float] = []
    queue = list(reversed(paths))

    async def worker() -> None:
        while queue:
            path = queue.pop()
            began = time.perf_counter()
            response = await client.get(path)
            times.append(time.perf_counter() - began)
            if response.status_code != 200:
                raise RuntimeError(f"GET {path}: {response.status_code} {response.text[:200]}")

    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return times


async def walk(client: httpx.AsyncClient, pages: int) -> tuple[str, float]:
    """The cursor of page ``pages`` + 1, found by walking; the mean seconds per page."""
    cursor, began = "", time.perf_counter()
    for _ in range(pages):
        params = {"limit": str(PAGE)} | ({"cursor": cursor} if cursor else {})
        response = await client.get("/v1/calls", params=params)
        cursor = response.raise_for_status().json()["next_cursor"]
        if cursor is None:
            raise RuntimeError(f"fewer than {pages} pages of live calls")
    return cursor, (time.perf_counter() - began) / pages


def kind_paths(kind: str, filled: Filled, cursor: str, count: int, rng: random.Random) -> list[str]:
    if kind == "get":
        return [f"/v1/calls/{rng.choice(filled.ids)}" for _ in range(count)]
    params = {"limit": str(PAGE), **query_params(kind_filter(kind, filled))}
    if kind == "deep":
        params["cursor"] = cursor
    return [str(httpx.URL("/v1/calls", params=params))] * count


async def start_voxgate(url: str, scratch: Path) -> tuple[int, str]:
    """``voxgate serve`` (one worker) on the store at ``url``; its pid and base URL."""
    port = runner.free_tcp_port()
    env = runner.clean_env() | {
        "VOXGATE_PORT": str(port), "VOXGATE_STORE_URL": url, "VOXGATE_API_RATE_LIMIT": "1000000",
        "VOXGATE_SIP_ENABLED": "false", "VOXGATE_LOG_LEVEL": "warning",
    }  # fmt: skip
    argv = [sys.executable, "-m", "voxgate", "serve", "--workers", "1"]
    server = runner.PROCESSES.spawn(argv, env, scratch / "voxgate.log", name="voxgate")
    base = f"http://127.0.0.1:{port}"
    await runner.wait_http(base)
    return server.pid, base


async def run_round(client: httpx.AsyncClient, kinds: Sequence[str], paths: PathsOf,
                    concurrency: int) -> dict[str, Any]:  # fmt: skip
    result: dict[str, Any] = {}
    for kind in kinds:
        for in_flight in (1, concurrency):
            began = time.perf_counter()
            times = await timed(client, paths(kind), in_flight)
            rate = len(times) / (time.perf_counter() - began)
            result[f"{kind}@{in_flight}"] = percentiles(np.array(times)) | {"rps": rate}
    return result


async def measure(args: argparse.Namespace, scratch: Path) -> dict[str, Any]:
    url = args.store_url or f"sqlite:///{scratch / 'voxgate.db'}"
    filled = await fill_store(url, args.calls)
    print(f"store filled: {args.calls} calls in {filled.seconds:.1f} s ({url.split(':')[0]})")
    pid, base = await start_voxgate(url, scratch)
    figures: dict[str, Any] = {"calls": args.calls, "fill_seconds": filled.seconds, "rounds": []}
    rng = random.Random(11)
    headers = {"Authorization": f"Bearer {filled.live_key}"}
    limits = httpx.Limits(max_connections=args.concurrency)
    async with httpx.AsyncClient(base_url=base, headers=headers, limits=limits,
                                 timeout=30) as client:  # fmt: skip
        await timed(client, kind_paths("first", filled, "", 50, rng), 1)  # warm-up
        pages = min(DEEP_PAGE, filled.live // PAGE) - 1
        cursor, per_page = await walk(client, pages)
        figures |= {"deep_page": pages + 1, "walk_ms_per_page": per_page * 1000}
        figures["sql"] = {k: sql_figures(url, *kind_sql(k, filled, int(cursor))) for k in KINDS}

        def paths(kind: str) -> list[str]:
            return kind_paths(kind, filled, cursor, args.requests, rng)

        for number in range(args.rounds):
            kinds = args.kinds[number % len(args.kinds) :] + args.kinds[: number % len(args.kinds)]
            spy = None
            if args.profile is not None and number == 0:
                spy = runner.start_profile(pid, args.profile_seconds, scratch / "profile.raw")
            figures["rounds"].append(await run_round(client, kinds, paths, args.concurrency))
            if spy is not None:
                raw, out = scratch / "profile.raw", args.profile
                await asyncio.to_thread(runner.profile_report, spy, raw, out)
    runner.PROCESSES.stop("voxgate")
    return figures


def _cell(f: dict[str, float]) -> str:
    return f" | {f['p50_ms']:.2f}/{f['p99_ms']:.2f}/{f['max_ms']:.1f} ({f['rps']:.0f}/s)"


def report(figures: dict[str, Any], kinds: Sequence[str], concurrency: int) -> list[str]:
    lines = [f"{figures['calls']} calls stored; walk to page {figures['deep_page']}: "
             f"{figures['walk_ms_per_page']:.2f} ms a page on average"]  # fmt: skip
    head = f"{'kind':<11} {'SQL alone p50/p99 ms':>21}"
    for number in range(len(figures["rounds"])):
        head += f" | round {number + 1}: 1 in flight p50/p99/max ms, {concurrency} in flight"
    lines.append(head)
    for kind in kinds:
        sql = figures["sql"][kind]["sql"]
        row = f"{kind:<11} {sql['p50_ms']:>10.3f}/{sql['p99_ms']:<10.3f}"
        cells = [r[f"{kind}@{c}"] for r in figures["rounds"] for c in (1, concurrency)]
        lines.append(row + "".join(_cell(f) for f in cells))
    lines.append("query plans:")
    lines += [f"  {k}: {'; '.join(figures['sql'][k]['plan'])}" for k in KINDS]
    for c in (1, concurrency):
        p99, worst = max((r[f"{k}@{c}"]["p99_ms"], k) for r in figures["rounds"] for k in kinds
                         if k != "get")  # fmt: skip
        word = "met" if p99 < TARGET_MS else "MISSED"
        lines.append(f"target GET /v1/calls p99 < {TARGET_MS:g} ms, {c} in flight: {word}"
                     f" (worst: {worst}, {p99:.2f} ms)")  # fmt: skip
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser("python -m bench.api_list", description=__doc__)
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.add_argument("--calls", type=int, default=100_000, help="call records stored")
    parser.add_argument("--requests", type=int, default=2000, help="per kind and concurrency")
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--kinds", default=",".join(KINDS), help="comma-separated subset")
    parser.add_argument("--store-url", help="postgresql://... (an empty database); else SQLite")
    parser.add_argument("--profile", type=Path, help="py-spy voxgate in round 1: top frames here")
    parser.add_argument("--profile-seconds", type=float, default=30.0)
    parser.add_argument("--json", type=Path, help="write every figure here")
    parser.add_argument("--keep", action="store_true", help="keep the store and the logs")
    args = parser.parse_args(argv)
    args.kinds = [k for k in args.kinds.split(",") if k]
    if set(args.kinds) - set(KINDS) or not args.kinds:
        parser.error(f"--kinds: among {', '.join(KINDS)}")
    scratch = Path(tempfile.mkdtemp(prefix="voxgate-api-list-"))
    figures: dict[str, Any] = {}

    async def run() -> None:
        figures.update(await measure(args, scratch))

    try:
        run_fast(run())
    finally:
        runner.PROCESSES.stop_all()
        if args.keep:
            print(f"kept: {scratch}")
        else:
            shutil.rmtree(scratch, ignore_errors=True)
    print("\n".join(report(figures, args.kinds, args.concurrency)))
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
