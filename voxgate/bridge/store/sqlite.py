"""The store in one SQLite file: a single node's control plane.

Theory of operation. One connection, opened, used and closed only on the store's own
worker thread (a single-worker executor): each method hands its work to that thread and
awaits it, so the event loop never waits on the disk, and the work runs one at a time.
Every method is its own transaction, committed before it returns; one that writes more
than one statement holds the write lock from its start (``BEGIN IMMEDIATE``), so another
process on the same file (the ``voxgate`` command line) waits for it, never interleaves.

- ``journal_mode=WAL``: a commit appends to the write-ahead log; a process killed at any
  instant (SIGKILL included) leaves every committed transaction and nothing of the rest,
  and readers never wait for the writer.
- ``synchronous=NORMAL``: the log is synced at checkpoints, not at each commit. A process
  crash loses nothing committed; a power cut may lose the last commits, never consistency.
- ``busy_timeout``: a writer in another process is waited for, up to
  :data:`BUSY_TIMEOUT_MS`.

``notify``/``listen`` reach the listeners of this store object only (an in-memory fan-out):
SQLite has no cross-process messaging, and one SQLite file serves one node.
"""

from __future__ import annotations

import asyncio
import logging
import re
import sqlite3
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import replace
from functools import lru_cache
from pathlib import Path
from typing import Any, Final, TypeVar

from voxgate.bridge.store import queries as q
from voxgate.bridge.store.feed import Fanout, Feed
from voxgate.bridge.store.records import (
    ApiKey,
    CallFilter,
    CallRecord,
    Delivery,
    IdempotentResponse,
    NumberRoute,
    Page,
    Subscription,
)
from voxgate.bridge.store.schema import (
    CREATE_MIGRATIONS_TABLE,
    CURRENT_VERSION,
    MIGRATIONS,
    RECORD_VERSION,
    Migration,
    plan,
)
from voxgate.errors import ConfigError

log = logging.getLogger("voxgate.store")

T = TypeVar("T")
Db = sqlite3.Connection

BUSY_TIMEOUT_MS: Final = 10_000  # a write waits this long for another process's
MIN_SQLITE: Final = (3, 35)  # RETURNING
_DUPLICATE: Final = frozenset({"SQLITE_CONSTRAINT_UNIQUE", "SQLITE_CONSTRAINT_PRIMARYKEY"})


@lru_cache(maxsize=256)
def _sql(statement: str) -> str:
    """psycopg's ``%(name)s`` placeholders as SQLite's ``:name``."""
    return re.sub(r"%\((\w+)\)s", r":\1", statement)


def _rows(db: Db, statement: str, params: Mapping[str, Any] | None = None) -> list[Any]:
    return db.execute(_sql(statement), params or {}).fetchall()


def _row(db: Db, statement: str, params: Mapping[str, Any]) -> Any:
    rows = _rows(db, statement, params)
    return rows[0] if rows else None


def _changed(db: Db, statement: str, params: Mapping[str, Any]) -> bool:
    return db.execute(_sql(statement), params).rowcount > 0


@contextmanager
def _unique(what: str) -> Iterator[None]:
    """KeyError(``what``) for a taken unique key."""
    try:
        yield
    except sqlite3.IntegrityError as exc:
        if exc.sqlite_errorname in _DUPLICATE:
            raise KeyError(what) from exc
        raise


def _insert(db: Db, statement: str, params: Mapping[str, Any], what: str) -> int:
    """Run an ``INSERT ... RETURNING seq``; KeyError(``what``) if a unique key is taken."""
    with _unique(what):
        return int(_rows(db, statement, params)[0][0])


@contextmanager
def _transaction(db: Db) -> Iterator[None]:
    db.execute("BEGIN IMMEDIATE")
    try:
        yield
    except BaseException:
        db.execute("ROLLBACK")
        raise
    db.execute("COMMIT")


def _use_wal(db: Db, url: str) -> None:
    """``journal_mode=WAL``. Switching a new file takes an exclusive lock, and SQLite answers
    BUSY at once, without waiting, while another connection holds the file: retried."""
    deadline = time.monotonic() + BUSY_TIMEOUT_MS / 1000
    while True:
        try:
            mode = db.execute("PRAGMA journal_mode=WAL").fetchone()[0]
            break
        except sqlite3.OperationalError as exc:
            if exc.sqlite_errorname != "SQLITE_BUSY" or time.monotonic() > deadline:
                raise
            time.sleep(0.01)  # on the store's thread, not the event loop's
    if mode != "wal":  # a file system without shared memory: still consistent, but slower
        log.warning("store %s: journal_mode is %s, not wal", url, mode)


def _migrate(db: Db, migrations: Sequence[Migration], url: str) -> int:
    with _transaction(db):
        db.execute(CREATE_MIGRATIONS_TABLE)
        current: int = db.execute(CURRENT_VERSION).fetchone()[0]
        for migration in plan(current, migrations, url=url):
            for statement in migration.sql("sqlite"):
                db.execute(statement)
            db.execute(_sql(RECORD_VERSION), migration.record(time.time()))
            log.info("store %s: schema migrated to version %d", url, migration.version)
            current = migration.version
    return current


def _update_calls(db: Db, updates: Sequence[q.CallUpdate]) -> dict[str, CallRecord]:
    rows = [_row(db, q.GET_CALL, {"id": call_id}) for call_id in {u.call_id for u in updates}]
    calls = [q.call_from_row(row) for row in rows if row is not None]
    changed = q.apply_call_updates(calls, updates)
    db.executemany(_sql(q.SET_CALL), [q.set_call_params(call) for call in changed.values()])
    return changed


def _update_number(
    db: Db, number_id: str, action: str | None, settings: Mapping[str, Any] | None, at: float
) -> NumberRoute | None:
    row = _row(db, q.GET_NUMBER, {"id": number_id})
    if row is None:
        return None
    route = q.updated_number(q.number_from_row(row), action, settings, at)
    db.execute(_sql(q.SET_NUMBER), q.number_params(route))
    return route


class SqliteStore:
    """:class:`~voxgate.bridge.store.api.Store` on the SQLite file at ``path``."""

    def __init__(
        self,
        path: str | Path,
        *,
        url: str | None = None,
        migrations: Sequence[Migration] = MIGRATIONS,
    ) -> None:
        self.path = Path(path)
        self.url = url or f"sqlite:///{self.path}"
        self._migrations = migrations
        self._executor: ThreadPoolExecutor | None = None
        self._db: Db | None = None  # touched on the worker thread only
        self._fanout = Fanout()

    # --- running work on the store's thread ---

    async def _run(self, work: Callable[[Db], T], *, write: bool = False) -> T:
        """``work(connection)`` on the store's thread; in one write transaction if ``write``."""
        if self._executor is None:
            raise RuntimeError(f"{self.url}: the store is not open")
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, self._on_thread, work, write)

    def _on_thread(self, work: Callable[[Db], T], write: bool) -> T:
        if self._db is None:
            raise RuntimeError(f"{self.url}: the store is closed")
        if not write:
            return work(self._db)
        with _transaction(self._db):
            return work(self._db)

    def _connect(self) -> int:
        if sqlite3.sqlite_version_info < MIN_SQLITE:
            raise ConfigError(f"{self.url}: SQLite {sqlite3.sqlite_version} is older than 3.35")
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            db = sqlite3.connect(self.path, isolation_level=None)  # BEGIN/COMMIT are ours
        except (OSError, sqlite3.Error) as exc:
            raise ConfigError(f"{self.url}: cannot open the database: {exc}") from exc
        try:
            db.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
            _use_wal(db, self.url)
            db.execute("PRAGMA synchronous=NORMAL")
            version = _migrate(db, self._migrations, self.url)
        except sqlite3.DatabaseError as exc:  # not a database, read-only, disk full...
            db.close()
            raise ConfigError(f"{self.url}: cannot use the database: {exc}") from exc
        except BaseException:
            db.close()
            raise
        self._db = db
        return version

    def _disconnect(self) -> None:
        if self._db is not None:
            self._db.close()  # the last connection out checkpoints the log into the file
            self._db = None

    # --- life cycle ---

    async def open(self) -> None:
        if self._executor is not None:
            return
        self._executor = ThreadPoolExecutor(1, thread_name_prefix="voxgate-store")
        try:
            version = await asyncio.get_running_loop().run_in_executor(
                self._executor, self._connect
            )
        except BaseException:
            await self.close()
            raise
        log.info("store open: %s (schema version %d)", self.url, version)

    async def close(self) -> None:
        self._fanout.close()
        executor, self._executor = self._executor, None
        if executor is None:
            return
        await asyncio.get_running_loop().run_in_executor(executor, self._disconnect)
        executor.shutdown(wait=False)  # idle: its last job has just finished

    async def schema_version(self) -> int:
        return await self._run(lambda db: int(_rows(db, CURRENT_VERSION)[0][0]))

    # --- settings ---

    async def get_setting(self, name: str) -> str | None:
        row = await self._run(lambda db: _row(db, q.GET_SETTING, {"name": name}))
        return None if row is None else str(row[0])

    async def setdefault_setting(self, name: str, value: str) -> str:
        def work(db: Db) -> str:
            db.execute(_sql(q.ADD_SETTING), {"name": name, "value": value})
            return str(_row(db, q.GET_SETTING, {"name": name})[0])

        return await self._run(work, write=True)

    # --- API keys ---

    async def add_key(self, key: ApiKey) -> None:
        def work(db: Db) -> None:
            with _unique(key.id):
                db.execute(_sql(q.ADD_KEY), q.key_params(key))

        await self._run(work)

    async def key_by_hash(self, secret_hash: str) -> ApiKey | None:
        row = await self._run(lambda db: _row(db, q.KEY_BY_HASH, {"secret_hash": secret_hash}))
        return None if row is None else q.key_from_row(row)

    async def list_keys(self) -> Sequence[ApiKey]:
        return [q.key_from_row(row) for row in await self._run(lambda db: _rows(db, q.LIST_KEYS))]

    async def revoke_key(self, key_id: str) -> bool:
        return await self._run(lambda db: _changed(db, q.REVOKE_KEY, {"id": key_id}))

    # --- calls ---

    async def add_call(self, call: CallRecord) -> CallRecord:
        seq = await self._run(lambda db: _insert(db, q.ADD_CALL, q.call_params(call), call.id))
        return replace(call, seq=seq)

    async def update_call(
        self,
        call_id: str,
        *,
        status: str | None = None,
        owner: str | None = None,
        data: Mapping[str, Any] | None = None,
    ) -> CallRecord | None:
        update = q.CallUpdate(call_id, status, owner, data or {})
        changed = await self._run(lambda db: _update_calls(db, [update]), write=True)
        return changed.get(call_id)

    async def update_calls(
        self,
        updates: Sequence[tuple[str, Mapping[str, Any]]],
        deliveries: Sequence[Delivery] = (),
    ) -> None:
        items = q.call_updates(updates)
        params = [q.delivery_params(delivery) for delivery in deliveries]

        def work(db: Db) -> None:
            if items:
                _update_calls(db, items)
            with _unique("a delivery with that id is in the outbox already"):
                db.executemany(_sql(q.ADD_DELIVERY), params)

        if items or params:
            await self._run(work, write=True)

    async def get_call(self, call_id: str) -> CallRecord | None:
        row = await self._run(lambda db: _row(db, q.GET_CALL, {"id": call_id}))
        return None if row is None else q.call_from_row(row)

    async def list_calls(
        self, filters: CallFilter, *, limit: int, before: int | None = None
    ) -> Page[CallRecord]:
        statement, params = q.list_calls(filters, limit=limit, before=before)
        rows = await self._run(lambda db: _rows(db, statement, params))
        return q.page(rows, limit, q.call_from_row)

    async def live_calls_of(self, owner: str) -> Sequence[CallRecord]:
        rows = await self._run(lambda db: _rows(db, q.LIVE_CALLS, {"owner": owner}))
        return [q.call_from_row(row) for row in rows]

    # --- numbers ---

    async def add_number(self, route: NumberRoute) -> NumberRoute:
        params = q.number_params(route)
        seq = await self._run(lambda db: _insert(db, q.ADD_NUMBER, params, route.number))
        return replace(route, seq=seq)

    async def get_number(self, number_id: str) -> NumberRoute | None:
        row = await self._run(lambda db: _row(db, q.GET_NUMBER, {"id": number_id}))
        return None if row is None else q.number_from_row(row)

    async def number_by_called(self, number: str) -> NumberRoute | None:
        row = await self._run(lambda db: _row(db, q.NUMBER_BY_CALLED, {"number": number}))
        return None if row is None else q.number_from_row(row)

    async def list_numbers(self, *, limit: int, before: int | None = None) -> Page[NumberRoute]:
        statement, params = q.paged(q.NUMBER_SELECT, [], {}, limit=limit, before=before)
        rows = await self._run(lambda db: _rows(db, statement, params))
        return q.page(rows, limit, q.number_from_row)

    async def update_number(
        self,
        number_id: str,
        *,
        incoming_call_action: str | None = None,
        settings: Mapping[str, Any] | None = None,
        updated_at: float,
    ) -> NumberRoute | None:
        return await self._run(
            lambda db: _update_number(db, number_id, incoming_call_action, settings, updated_at),
            write=True,
        )

    async def delete_number(self, number_id: str) -> bool:
        return await self._run(lambda db: _changed(db, q.DELETE_NUMBER, {"id": number_id}))

    # --- webhook subscriptions ---

    async def add_subscription(self, sub: Subscription) -> Subscription:
        params = q.subscription_params(sub)
        seq = await self._run(lambda db: _insert(db, q.ADD_SUBSCRIPTION, params, sub.id))
        return replace(sub, seq=seq)

    async def get_subscription(self, sub_id: str) -> Subscription | None:
        row = await self._run(lambda db: _row(db, q.GET_SUBSCRIPTION, {"id": sub_id}))
        return None if row is None else q.subscription_from_row(row)

    async def list_subscriptions(
        self, *, limit: int, before: int | None = None
    ) -> Page[Subscription]:
        statement, params = q.paged(q.SUBSCRIPTION_SELECT, [], {}, limit=limit, before=before)
        rows = await self._run(lambda db: _rows(db, statement, params))
        return q.page(rows, limit, q.subscription_from_row)

    async def subscriptions_for(self, event_type: str) -> Sequence[Subscription]:
        rows = await self._run(lambda db: _rows(db, q.ALL_SUBSCRIPTIONS))
        return q.subscribed([q.subscription_from_row(row) for row in rows], event_type)

    async def delete_subscription(self, sub_id: str) -> bool:
        return await self._run(lambda db: _changed(db, q.DELETE_SUBSCRIPTION, {"id": sub_id}))

    # --- the webhook outbox ---

    async def enqueue(self, deliveries: Sequence[Delivery]) -> None:
        params = [q.delivery_params(delivery) for delivery in deliveries]

        def work(db: Db) -> None:
            with _unique("a delivery with that id is in the outbox already"):
                db.executemany(_sql(q.ADD_DELIVERY), params)

        if params:
            await self._run(work, write=True)

    async def claim_due(
        self, now: float, *, limit: int, lease: float, worker: str
    ) -> Sequence[Delivery]:
        params = {"now": now, "limit": limit, "until": now + lease, "worker": worker}
        rows = await self._run(lambda db: _rows(db, q.CLAIM_DUE.sqlite, params), write=True)
        claimed = [q.delivery_from_row(row) for row in rows]
        return sorted(claimed, key=lambda d: (d.next_attempt_at, d.seq))  # RETURNING: any order

    async def delivered(self, delivery_id: str, *, at: float, status: int) -> None:
        params = {"id": delivery_id, "at": at, "last_status": status}
        await self._run(lambda db: _changed(db, q.DELIVERED, params))

    async def failed(
        self,
        delivery_id: str,
        *,
        next_attempt_at: float | None,
        error: str,
        status: int | None,
    ) -> None:
        params = q.failed_params(delivery_id, next_attempt_at, error, status)
        await self._run(lambda db: _changed(db, q.FAILED, params))

    async def get_delivery(self, delivery_id: str) -> Delivery | None:
        row = await self._run(lambda db: _row(db, q.GET_DELIVERY, {"id": delivery_id}))
        return None if row is None else q.delivery_from_row(row)

    async def list_deliveries(
        self, *, status: str | None, limit: int, before: int | None = None
    ) -> Page[Delivery]:
        statement, params = q.list_deliveries(status, limit=limit, before=before)
        rows = await self._run(lambda db: _rows(db, statement, params))
        return q.page(rows, limit, q.delivery_from_row)

    async def replay(self, delivery_id: str, *, now: float) -> Delivery | None:
        row = await self._run(lambda db: _row(db, q.REPLAY, {"id": delivery_id, "now": now}))
        return None if row is None else q.delivery_from_row(row)

    async def release_leases(self, worker: str) -> int:
        params = {"worker": worker}
        return await self._run(
            lambda db: db.execute(_sql(q.RELEASE_LEASES), params).rowcount, write=True
        )

    async def pending_count(self) -> int:
        return await self._run(lambda db: int(_rows(db, q.PENDING_COUNT)[0][0]))

    # --- idempotency ---

    async def idempotent_get(self, key_id: str, idem_key: str) -> IdempotentResponse | None:
        params = {"key_id": key_id, "idem_key": idem_key}
        row = await self._run(lambda db: _row(db, q.GET_IDEMPOTENT, params))
        return None if row is None else q.idempotent_from_row(row)

    async def idempotent_put(
        self, key_id: str, idem_key: str, response: IdempotentResponse
    ) -> IdempotentResponse:
        params = q.idempotent_params(key_id, idem_key, response)

        def work(db: Db) -> IdempotentResponse:
            db.execute(_sql(q.PUT_IDEMPOTENT), params)
            return q.idempotent_from_row(_row(db, q.GET_IDEMPOTENT, params))

        return await self._run(work, write=True)

    # --- messages within this process ---

    async def notify(self, channel: str, payload: str) -> None:
        self._fanout.notify(channel, payload)

    def listen(self, channel: str) -> Feed:
        if self._executor is None:
            raise RuntimeError(f"{self.url}: the store is not open")
        return self._fanout.listen(channel)
