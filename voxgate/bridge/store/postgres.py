"""The store in PostgreSQL: several nodes sharing one database.

Theory of operation. A pool of connections (``psycopg_pool.AsyncConnectionPool``, every
connection in autocommit) serves the methods: a method of one statement borrows a
connection for it; one that reads then writes holds one transaction and locks the row it
changes (``SELECT ... FOR UPDATE``), so concurrent updates from several nodes never lose
one another's changes. The pool checks a connection before lending it: after a server
restart a method reconnects rather than fails.

``open`` first connects on its own, which turns an unreachable server, a refused login or
a missing database into one :class:`ConfigError` naming the server (never the password),
and migrates the schema there under an advisory lock (nodes starting together migrate
once; the others wait, then find nothing to do). Only then does it open the pool.

Claiming due webhook deliveries picks rows ``FOR UPDATE SKIP LOCKED``: nodes claiming
at the same time take disjoint rows and never wait for one another.

LISTEN/NOTIFY: each feed (:meth:`PostgresStore.listen`) has its own connection and a
reader task that pushes its notifications into the feed; a lost connection fails the feed
(:mod:`.feed`); ``close`` ends the feeds and stops their readers.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import replace
from typing import Any, Final

import psycopg
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict, make_conninfo
from psycopg_pool import AsyncConnectionPool, PoolTimeout

from voxgate.bridge.store import queries as q
from voxgate.bridge.store.feed import Feed, check_channel, check_payload
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
from voxgate.redact import MASK, redact_url, scrub

log = logging.getLogger("voxgate.store")

Conn = psycopg.AsyncConnection[Any]
Row = tuple[Any, ...]

CONNECT_TIMEOUT: Final = 10  # seconds to reach the server, unless the URL says otherwise
_MIGRATION_LOCK: Final = 0x766F78  # the advisory lock key held while migrating ("vox")

# The PostgreSQL-only statements (the shared ones are in .queries and .schema).
_LOCK_MIGRATIONS: Final = "SELECT pg_advisory_xact_lock(%(key)s)"
_NOTIFY: Final = "SELECT pg_notify(%(channel)s, %(payload)s)"
_LISTEN: Final = sql.SQL("LISTEN {}")
_LOCK_CALLS: Final = f"{q.CALL_SELECT} WHERE id = ANY(%(ids)s) ORDER BY id FOR UPDATE"

# libpq quotes the part of a URL it cannot parse, which may be the password or the whole
# URL: a quoted part is kept only if the redacted URL shows it too.
_QUOTED: Final = re.compile(r'"([^"]*)"')


def conninfo(url: str) -> tuple[str, str]:
    """libpq's connection string for ``url`` with voxgate's defaults, and the password
    (to hide it); ConfigError if ``url`` is not one."""
    try:
        params = conninfo_to_dict(url)
    except psycopg.Error as exc:
        shown = redact_url(url)
        reason = _QUOTED.sub(lambda m: m[0] if m[1] in shown else f'"{MASK}"', str(exc).strip())
        raise ConfigError(f"{shown}: not a valid PostgreSQL URL: {scrub(reason)}") from None
    params.setdefault("connect_timeout", CONNECT_TIMEOUT)
    params.setdefault("application_name", "voxgate")
    return make_conninfo("", **params), str(params.get("password") or "")


async def _rows(conn: Conn, statement: str, params: Mapping[str, Any] | None = None) -> list[Row]:
    cursor = await conn.execute(statement, params)
    return await cursor.fetchall()


async def _row(conn: Conn, statement: str, params: Mapping[str, Any]) -> Row | None:
    rows = await _rows(conn, statement, params)
    return rows[0] if rows else None


async def _update_calls(conn: Conn, updates: Sequence[q.CallUpdate]) -> dict[str, CallRecord]:
    """In the caller's transaction: the calls locked (in id order, so that two nodes
    updating the same calls never deadlock), merged, written back in one pipeline."""
    ids = sorted({update.call_id for update in updates})
    calls = [q.call_from_row(row) for row in await _rows(conn, _LOCK_CALLS, {"ids": ids})]
    changed = q.apply_call_updates(calls, updates)
    params = [q.set_call_params(call) for call in changed.values()]
    await conn.cursor().executemany(q.SET_CALL, params)
    return changed


class PostgresStore:
    """:class:`~voxgate.bridge.store.api.Store` in the PostgreSQL database at ``url``."""

    def __init__(
        self,
        url: str,
        *,
        migrations: Sequence[Migration] = MIGRATIONS,
        min_size: int = 1,
        max_size: int = 10,
    ) -> None:
        self.url = redact_url(url)
        self._conninfo, self._password = conninfo(url)
        self._migrations = migrations
        self._sizes = (min_size, max_size)
        self._pool: AsyncConnectionPool[Conn] | None = None
        self._readers: dict[Feed, asyncio.Task[None]] = {}

    # --- connections ---

    async def _connect(self) -> Conn:
        """A connection of its own (migrations, a feed); ConfigError if there is none."""
        try:
            return await psycopg.AsyncConnection.connect(self._conninfo, autocommit=True)
        except psycopg.OperationalError as exc:
            reason = self._reason(exc)
            raise ConfigError(f"cannot connect to PostgreSQL at {self.url}: {reason}") from None

    def _reason(self, error: Exception) -> str:
        """libpq's message, for a log or an error, with the password hidden come what may."""
        reason = scrub(str(error).strip())
        return reason.replace(self._password, MASK) if self._password else reason

    @asynccontextmanager
    async def _connection(self) -> AsyncIterator[Conn]:
        if self._pool is None:
            raise RuntimeError(f"{self.url}: the store is not open")
        async with self._pool.connection() as conn:
            yield conn

    @asynccontextmanager
    async def _transaction(self) -> AsyncIterator[Conn]:
        async with self._connection() as conn, conn.transaction():
            yield conn

    async def _rows(self, statement: str, params: Mapping[str, Any] | None = None) -> list[Row]:
        async with self._connection() as conn:
            return await _rows(conn, statement, params)

    async def _row(self, statement: str, params: Mapping[str, Any]) -> Row | None:
        rows = await self._rows(statement, params)
        return rows[0] if rows else None

    async def _changed(self, statement: str, params: Mapping[str, Any]) -> bool:
        async with self._connection() as conn:
            return (await conn.execute(statement, params)).rowcount > 0

    async def _insert(self, statement: str, params: Mapping[str, Any], what: str) -> int:
        """Run an ``INSERT ... RETURNING seq``; KeyError(``what``) if a unique key is taken."""
        try:
            rows = await self._rows(statement, params)
        except psycopg.errors.UniqueViolation as exc:
            raise KeyError(what) from exc
        return int(rows[0][0])

    # --- life cycle ---

    async def open(self) -> None:
        if self._pool is not None:
            return
        version = await self._migrate()
        min_size, max_size = self._sizes
        pool: AsyncConnectionPool[Conn] = AsyncConnectionPool(
            self._conninfo,
            kwargs={"autocommit": True},
            min_size=min_size,
            max_size=max_size,
            open=False,
            check=AsyncConnectionPool.check_connection,
            name="voxgate-store",
        )
        try:
            await pool.open(wait=True, timeout=CONNECT_TIMEOUT)
        except PoolTimeout:
            await pool.close()
            raise ConfigError(f"cannot connect to PostgreSQL at {self.url}: timed out") from None
        self._pool = pool
        log.info("store open: %s (schema version %d)", self.url, version)

    async def _migrate(self) -> int:
        async with await self._connect() as conn, conn.transaction():
            await conn.execute(_LOCK_MIGRATIONS, {"key": _MIGRATION_LOCK})
            await conn.execute(CREATE_MIGRATIONS_TABLE)
            current = int((await _rows(conn, CURRENT_VERSION))[0][0])
            for migration in plan(current, self._migrations, url=self.url):
                for statement in migration.sql("postgres"):
                    await conn.execute(statement)
                await conn.execute(RECORD_VERSION, migration.record(time.time()))
                log.info("store %s: schema migrated to version %d", self.url, migration.version)
                current = migration.version
        return current

    async def close(self) -> None:
        for feed in list(self._readers):
            feed.end()
        await asyncio.gather(*(self._stop_reader(feed) for feed in list(self._readers)))
        pool, self._pool = self._pool, None
        if pool is not None:
            await pool.close()

    async def schema_version(self) -> int:
        return int((await self._rows(CURRENT_VERSION))[0][0])

    # --- settings ---

    async def get_setting(self, name: str) -> str | None:
        row = await self._row(q.GET_SETTING, {"name": name})
        return None if row is None else str(row[0])

    async def setdefault_setting(self, name: str, value: str) -> str:
        async with self._connection() as conn:
            await conn.execute(q.ADD_SETTING, {"name": name, "value": value})
            row = await _row(conn, q.GET_SETTING, {"name": name})
        assert row is not None  # settings are never deleted
        return str(row[0])

    # --- API keys ---

    async def add_key(self, key: ApiKey) -> None:
        try:
            await self._changed(q.ADD_KEY, q.key_params(key))
        except psycopg.errors.UniqueViolation as exc:
            raise KeyError(key.id) from exc

    async def key_by_hash(self, secret_hash: str) -> ApiKey | None:
        row = await self._row(q.KEY_BY_HASH, {"secret_hash": secret_hash})
        return None if row is None else q.key_from_row(row)

    async def list_keys(self) -> Sequence[ApiKey]:
        return [q.key_from_row(row) for row in await self._rows(q.LIST_KEYS)]

    async def revoke_key(self, key_id: str) -> bool:
        return await self._changed(q.REVOKE_KEY, {"id": key_id})

    # --- calls ---

    async def add_call(self, call: CallRecord) -> CallRecord:
        return replace(call, seq=await self._insert(q.ADD_CALL, q.call_params(call), call.id))

    async def update_call(
        self,
        call_id: str,
        *,
        status: str | None = None,
        owner: str | None = None,
        data: Mapping[str, Any] | None = None,
    ) -> CallRecord | None:
        update = q.CallUpdate(call_id, status, owner, data or {})
        async with self._transaction() as conn:
            return (await _update_calls(conn, [update])).get(call_id)

    async def update_calls(
        self,
        updates: Sequence[tuple[str, Mapping[str, Any]]],
        deliveries: Sequence[Delivery] = (),
    ) -> None:
        items = q.call_updates(updates)
        params = [q.delivery_params(delivery) for delivery in deliveries]
        if not items and not params:
            return
        try:
            async with self._transaction() as conn:
                if items:
                    await _update_calls(conn, items)
                if params:
                    await conn.cursor().executemany(q.ADD_DELIVERY, params)
        except psycopg.errors.UniqueViolation as exc:
            raise KeyError("a delivery with that id is in the outbox already") from exc

    async def get_call(self, call_id: str) -> CallRecord | None:
        row = await self._row(q.GET_CALL, {"id": call_id})
        return None if row is None else q.call_from_row(row)

    async def list_calls(
        self, filters: CallFilter, *, limit: int, before: int | None = None
    ) -> Page[CallRecord]:
        statement, params = q.list_calls(filters, limit=limit, before=before)
        return q.page(await self._rows(statement, params), limit, q.call_from_row)

    async def live_calls_of(self, owner: str) -> Sequence[CallRecord]:
        return [q.call_from_row(row) for row in await self._rows(q.LIVE_CALLS, {"owner": owner})]

    # --- numbers ---

    async def add_number(self, route: NumberRoute) -> NumberRoute:
        seq = await self._insert(q.ADD_NUMBER, q.number_params(route), route.number)
        return replace(route, seq=seq)

    async def get_number(self, number_id: str) -> NumberRoute | None:
        row = await self._row(q.GET_NUMBER, {"id": number_id})
        return None if row is None else q.number_from_row(row)

    async def number_by_called(self, number: str) -> NumberRoute | None:
        row = await self._row(q.NUMBER_BY_CALLED, {"number": number})
        return None if row is None else q.number_from_row(row)

    async def list_numbers(self, *, limit: int, before: int | None = None) -> Page[NumberRoute]:
        statement, params = q.paged(q.NUMBER_SELECT, [], {}, limit=limit, before=before)
        return q.page(await self._rows(statement, params), limit, q.number_from_row)

    async def update_number(
        self,
        number_id: str,
        *,
        incoming_call_action: str | None = None,
        settings: Mapping[str, Any] | None = None,
        updated_at: float,
    ) -> NumberRoute | None:
        async with self._transaction() as conn:
            row = await _row(conn, q.GET_NUMBER_TO_UPDATE.postgres, {"id": number_id})
            if row is None:
                return None
            route = q.number_from_row(row)
            route = q.updated_number(route, incoming_call_action, settings, updated_at)
            await conn.execute(q.SET_NUMBER, q.number_params(route))
        return route

    async def delete_number(self, number_id: str) -> bool:
        return await self._changed(q.DELETE_NUMBER, {"id": number_id})

    # --- webhook subscriptions ---

    async def add_subscription(self, sub: Subscription) -> Subscription:
        seq = await self._insert(q.ADD_SUBSCRIPTION, q.subscription_params(sub), sub.id)
        return replace(sub, seq=seq)

    async def get_subscription(self, sub_id: str) -> Subscription | None:
        row = await self._row(q.GET_SUBSCRIPTION, {"id": sub_id})
        return None if row is None else q.subscription_from_row(row)

    async def list_subscriptions(
        self, *, limit: int, before: int | None = None
    ) -> Page[Subscription]:
        statement, params = q.paged(q.SUBSCRIPTION_SELECT, [], {}, limit=limit, before=before)
        return q.page(await self._rows(statement, params), limit, q.subscription_from_row)

    async def subscriptions_for(self, event_type: str) -> Sequence[Subscription]:
        subs = [q.subscription_from_row(row) for row in await self._rows(q.ALL_SUBSCRIPTIONS)]
        return q.subscribed(subs, event_type)

    async def delete_subscription(self, sub_id: str) -> bool:
        return await self._changed(q.DELETE_SUBSCRIPTION, {"id": sub_id})

    # --- the webhook outbox ---

    async def enqueue(self, deliveries: Sequence[Delivery]) -> None:
        params = [q.delivery_params(delivery) for delivery in deliveries]
        if not params:
            return
        try:
            async with self._transaction() as conn:
                await conn.cursor().executemany(q.ADD_DELIVERY, params)
        except psycopg.errors.UniqueViolation as exc:
            raise KeyError("a delivery with that id is in the outbox already") from exc

    async def claim_due(
        self, now: float, *, limit: int, lease: float, worker: str
    ) -> Sequence[Delivery]:
        params = {"now": now, "limit": limit, "until": now + lease, "worker": worker}
        claimed = [
            q.delivery_from_row(row) for row in await self._rows(q.CLAIM_DUE.postgres, params)
        ]
        return sorted(claimed, key=lambda d: (d.next_attempt_at, d.seq))  # RETURNING: any order

    async def delivered(self, delivery_id: str, *, at: float, status: int) -> None:
        await self._changed(q.DELIVERED, {"id": delivery_id, "at": at, "last_status": status})

    async def failed(
        self,
        delivery_id: str,
        *,
        next_attempt_at: float | None,
        error: str,
        status: int | None,
    ) -> None:
        await self._changed(q.FAILED, q.failed_params(delivery_id, next_attempt_at, error, status))

    async def get_delivery(self, delivery_id: str) -> Delivery | None:
        row = await self._row(q.GET_DELIVERY, {"id": delivery_id})
        return None if row is None else q.delivery_from_row(row)

    async def list_deliveries(
        self, *, status: str | None, limit: int, before: int | None = None
    ) -> Page[Delivery]:
        statement, params = q.list_deliveries(status, limit=limit, before=before)
        return q.page(await self._rows(statement, params), limit, q.delivery_from_row)

    async def replay(self, delivery_id: str, *, now: float) -> Delivery | None:
        row = await self._row(q.REPLAY, {"id": delivery_id, "now": now})
        return None if row is None else q.delivery_from_row(row)

    async def release_leases(self, worker: str) -> int:
        async with self._connection() as conn:
            return (await conn.execute(q.RELEASE_LEASES, {"worker": worker})).rowcount

    async def pending_count(self) -> int:
        return int((await self._rows(q.PENDING_COUNT))[0][0])

    # --- idempotency ---

    async def idempotent_get(self, key_id: str, idem_key: str) -> IdempotentResponse | None:
        row = await self._row(q.GET_IDEMPOTENT, {"key_id": key_id, "idem_key": idem_key})
        return None if row is None else q.idempotent_from_row(row)

    async def idempotent_put(
        self, key_id: str, idem_key: str, response: IdempotentResponse
    ) -> IdempotentResponse:
        params = q.idempotent_params(key_id, idem_key, response)
        async with self._connection() as conn:
            await conn.execute(q.PUT_IDEMPOTENT, params)
            row = await _row(conn, q.GET_IDEMPOTENT, params)
        assert row is not None  # just written, or written by the first writer
        return q.idempotent_from_row(row)

    # --- messages between nodes (LISTEN/NOTIFY) ---

    async def notify(self, channel: str, payload: str) -> None:
        params = {"channel": check_channel(channel), "payload": check_payload(payload)}
        await self._rows(_NOTIFY, params)

    def listen(self, channel: str) -> Feed:
        if self._pool is None:
            raise RuntimeError(f"{self.url}: the store is not open")
        feed = Feed(check_channel(channel), self._stop_reader)
        reader = asyncio.get_running_loop().create_task(self._read(feed))
        self._readers[feed] = reader
        return feed

    async def _read(self, feed: Feed) -> None:
        try:
            async with await self._connect() as conn:
                await conn.execute(_LISTEN.format(sql.Identifier(feed.channel)))
                feed.mark_ready()
                async for notification in conn.notifies():
                    feed.push(notification.payload)
                    if feed.done:  # the consumer fell behind
                        return
        except (ConfigError, psycopg.Error) as exc:
            reason = self._reason(exc)
            feed.fail(ConnectionError(f"listening on {feed.channel} at {self.url}: {reason}"))

    async def _stop_reader(self, feed: Feed) -> None:
        reader = self._readers.pop(feed, None)
        if reader is not None:
            reader.cancel()
            await asyncio.wait({reader})  # its connection closed; the cancellation not re-raised
