"""The PostgreSQL backend's own promises, between two store instances standing for two
nodes: claims never overlap, concurrent updates never lose one another, LISTEN/NOTIFY
crosses, and a lost connection is survived or reported; an unreachable server is a
ConfigError that names the server and never the password."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

import psycopg
import pytest
from served import free_port

from voxgate.bridge.store import CallRecord, Delivery
from voxgate.bridge.store.postgres import PostgresStore
from voxgate.errors import ConfigError

TERMINATE = (
    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
    " WHERE datname = current_database() AND pid <> pg_backend_pid() AND query LIKE %s"
)


@asynccontextmanager
async def two_nodes(url: str) -> AsyncIterator[tuple[PostgresStore, PostgresStore]]:
    one, two = PostgresStore(url), PostgresStore(url)
    await asyncio.gather(one.open(), two.open())
    try:
        yield one, two
    finally:
        await asyncio.gather(one.close(), two.close())


def run(url: str, scenario: Callable[[PostgresStore, PostgresStore], Awaitable[None]]) -> None:
    async def main() -> None:
        async with two_nodes(url) as (one, two):
            await scenario(one, two)

    asyncio.run(main())


def a_delivery(n: int) -> Delivery:
    return Delivery(
        f"dlv_{n}", "https://h.example.test", "s", f"evt_{n}", "call.completed", "{}",
        "pending", 0, 10.0, 1.0,
    )  # fmt: skip


def test_two_nodes_claiming_together_never_take_the_same_delivery(postgres_url: str) -> None:
    async def scenario(one: PostgresStore, two: PostgresStore) -> None:
        await one.enqueue([a_delivery(n) for n in range(200)])

        async def claimer(node: PostgresStore, worker: str) -> list[str]:
            taken: list[str] = []
            while batch := await node.claim_due(100.0, limit=7, lease=600.0, worker=worker):
                taken += [delivery.id for delivery in batch]
            return taken

        workers = [
            claimer(node, f"{name}-{k}")
            for name, node in (("a", one), ("b", two))
            for k in range(4)
        ]
        claims = await asyncio.gather(*workers)
        every = [delivery_id for taken in claims for delivery_id in taken]
        assert len(every) == len(set(every)) == 200
        assert any(claims[:4]) and any(claims[4:])  # both nodes took part
        assert await two.claim_due(100.0, limit=10, lease=600.0, worker="late") == []

    run(postgres_url, scenario)


def test_concurrent_updates_from_two_nodes_lose_nothing(postgres_url: str) -> None:
    async def scenario(one: PostgresStore, two: PostgresStore) -> None:
        await one.add_call(CallRecord("call_1", "live", "inbound", "ringing", "+1", "+2", 1.0))
        updates = [
            node.update_call("call_1", data={f"{name}{k}": k})
            for name, node in (("a", one), ("b", two))
            for k in range(15)
        ]
        await asyncio.gather(*updates)
        call = await two.get_call("call_1")
        assert call is not None and len(call.data) == 30

    run(postgres_url, scenario)


def test_batches_of_the_same_calls_in_opposite_orders_never_deadlock(postgres_url: str) -> None:
    async def scenario(one: PostgresStore, two: PostgresStore) -> None:
        calls = [f"call_{n:02d}" for n in range(20)]
        for call_id in calls:
            await one.add_call(CallRecord(call_id, "live", "inbound", "ringing", "+1", "+2", 1.0))
        batches = [
            node.update_calls([(call_id, {"data": {name: k}}) for call_id in order])
            for k in range(5)
            for name, node, order in (("a", one, calls), ("b", two, calls[::-1]))
        ]
        await asyncio.gather(*batches)
        call = await one.get_call("call_07")
        assert call is not None and call.data.keys() == {"a", "b"}

    run(postgres_url, scenario)


def test_a_notification_from_one_node_reaches_the_other(postgres_url: str) -> None:
    async def scenario(one: PostgresStore, two: PostgresStore) -> None:
        async with one.listen("call_events") as feed:
            await two.notify("call_events", '{"type":"call.ringing"}')
            await two.notify("call_events", '{"type":"call.completed"}')
            received = [await asyncio.wait_for(anext(feed), 10) for _ in range(2)]
        assert received == ['{"type":"call.ringing"}', '{"type":"call.completed"}']

    run(postgres_url, scenario)


def test_a_feed_whose_connection_is_killed_fails_with_connection_error(
    postgres_url: str,
) -> None:
    async def scenario(one: PostgresStore, two: PostgresStore) -> None:
        feed = one.listen("call_events")
        await feed.ready()
        with psycopg.connect(postgres_url, autocommit=True) as admin:
            admin.execute(TERMINATE, ("LISTEN%",))
        with pytest.raises(ConnectionError, match="listening on call_events at postgresql://"):
            await asyncio.wait_for(anext(feed), 10)
        assert [payload async for payload in feed] == []
        await feed.aclose()

    run(postgres_url, scenario)


def test_the_pool_reconnects_after_its_connections_are_killed(postgres_url: str) -> None:
    async def scenario(one: PostgresStore, two: PostgresStore) -> None:
        await one.setdefault_setting("name", "value")
        with psycopg.connect(postgres_url, autocommit=True) as admin:
            admin.execute(TERMINATE, ("%",))
        assert await one.get_setting("name") == "value"

    run(postgres_url, scenario)


def test_an_unreachable_server_is_a_config_error_without_the_password() -> None:
    url = f"postgresql://voxgate:pw-Secret-42@127.0.0.1:{free_port()}/voxgate"

    async def scenario() -> None:
        store = PostgresStore(url)
        assert store.url == f"postgresql://***@127.0.0.1:{url.rsplit(':', 1)[1]}"
        await store.open()

    with pytest.raises(
        ConfigError, match=r"cannot connect to PostgreSQL at postgresql://\*\*\*@127\.0\.0\.1"
    ) as caught:
        asyncio.run(scenario())
    assert "pw-Secret-42" not in str(caught.value)
    assert caught.value.__cause__ is None and caught.value.__suppress_context__


def test_a_missing_database_is_a_config_error(postgres_url: str) -> None:
    url = postgres_url.rsplit("/", 1)[0] + "/no_such_database"

    async def scenario() -> None:
        await PostgresStore(url).open()

    with pytest.raises(ConfigError, match='database "no_such_database" does not exist'):
        asyncio.run(scenario())
