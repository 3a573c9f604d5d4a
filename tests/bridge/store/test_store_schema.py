"""Schema migrations (voxgate/bridge/store/schema.py), on each backend."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import pytest

from voxgate.bridge.store import CallFilter, Store
from voxgate.bridge.store.postgres import PostgresStore
from voxgate.bridge.store.schema import MIGRATIONS, Migration, PerDialect, latest, plan
from voxgate.bridge.store.sqlite import SqliteStore
from voxgate.errors import ConfigError

EXTRA = Migration(2, "a test table", ("CREATE TABLE extra (x INTEGER)",))
BROKEN = Migration(2, "half a migration", ("CREATE TABLE extra (x INTEGER)", "NOT SQL AT ALL"))


def backend(url: str, migrations: Sequence[Migration] = MIGRATIONS) -> Store:
    if url.startswith("sqlite:///"):
        return SqliteStore(url.removeprefix("sqlite:///"), migrations=migrations)
    return PostgresStore(url, migrations=migrations)


async def version_after_open(url: str, migrations: Sequence[Migration] = MIGRATIONS) -> int:
    store = backend(url, migrations)
    await store.open()
    try:
        return await store.schema_version()
    finally:
        await store.close()


def test_the_migrations_are_numbered_one_by_one() -> None:
    assert [m.version for m in MIGRATIONS] == list(range(1, len(MIGRATIONS) + 1))
    assert latest() == len(MIGRATIONS)
    assert plan(0) == list(MIGRATIONS)
    assert plan(latest()) == []
    with pytest.raises(ConfigError, match="newer than this voxgate"):
        plan(latest() + 1)


def test_per_dialect_statements_pick_their_dialect() -> None:
    migration = Migration(1, "m", ("SELECT 1", PerDialect(sqlite="A", postgres="B")))
    assert migration.sql("sqlite") == ["SELECT 1", "A"]
    assert migration.sql("postgres") == ["SELECT 1", "B"]


def test_a_fresh_database_gets_the_newest_schema_and_a_reopen_changes_nothing(
    store_url: str,
) -> None:
    async def scenario() -> None:
        assert await version_after_open(store_url) == latest()
        store = backend(store_url)
        await store.open()  # every CREATE of version 1 would fail if it ran again
        try:
            assert await store.schema_version() == latest()
            assert (await store.list_calls(CallFilter(), limit=1)).data == []
        finally:
            await store.close()

    asyncio.run(scenario())


def test_a_reopen_applies_only_the_missing_migrations(store_url: str) -> None:
    async def scenario() -> None:
        assert await version_after_open(store_url) == 1
        assert await version_after_open(store_url, [*MIGRATIONS, EXTRA]) == 2

    asyncio.run(scenario())


def test_a_database_newer_than_the_code_is_refused(store_url: str) -> None:
    async def scenario() -> None:
        assert await version_after_open(store_url, [*MIGRATIONS, EXTRA]) == 2
        with pytest.raises(ConfigError, match="version 2, newer than this voxgate knows"):
            await version_after_open(store_url)

    asyncio.run(scenario())


def test_a_failed_migration_leaves_the_previous_version(store_url: str) -> None:
    async def scenario() -> None:
        assert await version_after_open(store_url) == 1
        with pytest.raises(Exception, match=r"(?i)syntax"):
            await version_after_open(store_url, [*MIGRATIONS, BROKEN])
        # the table the broken migration made first was rolled back with it
        assert await version_after_open(store_url, [*MIGRATIONS, EXTRA]) == 2

    asyncio.run(scenario())


def test_two_stores_opening_a_fresh_database_together_migrate_it_once(store_url: str) -> None:
    async def scenario() -> None:
        versions = await asyncio.gather(
            version_after_open(store_url), version_after_open(store_url)
        )
        assert list(versions) == [latest(), latest()]

    asyncio.run(scenario())
