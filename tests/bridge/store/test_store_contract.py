"""The Store contract (voxgate/bridge/store/api.py), on each backend: a SQLite file and a
fresh PostgreSQL database (the ``with_store`` fixture runs every test on both)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import replace
from typing import Any

import pytest

from voxgate.bridge.store import (
    ApiKey,
    CallFilter,
    CallRecord,
    Delivery,
    IdempotentResponse,
    NumberRoute,
    Store,
    Subscription,
)
from voxgate.bridge.store.feed import MAX_PAYLOAD

WithStore = Callable[[Callable[[Store], Awaitable[None]]], None]


def a_call(n: int, **changes: Any) -> CallRecord:
    call = CallRecord(
        id=f"call_{n}",
        mode="test",
        direction="outbound",
        status="queued",
        from_number="+15550000001",
        to_number=f"+1555100{n:04d}",
        created_at=1000.0 + n,
        data={"n": n},
    )
    return replace(call, **changes)


def a_delivery(n: int, due: float = 100.0, **changes: Any) -> Delivery:
    delivery = Delivery(
        id=f"dlv_{n}",
        url="https://hooks.example.test/voxgate",
        secret="whsec_test",
        event_id=f"evt_{n}",
        event_type="call.completed",
        body=f'{{"n":{n}}}',
        status="pending",
        attempts=0,
        next_attempt_at=due,
        created_at=50.0,
        call_id=f"call_{n}",
    )
    return replace(delivery, **changes)


def a_route(n: int, **changes: Any) -> NumberRoute:
    route = NumberRoute(
        id=f"num_{n}",
        number=f"+1555200{n:04d}",
        incoming_call_action="auto_accept",
        settings={"wss_url": f"wss://bot.example.test/{n}", "record": False},
        created_at=10.0,
        updated_at=10.0,
    )
    return replace(route, **changes)


def ids(records: Any) -> list[str]:
    return [record.id for record in records]


# --- settings, keys -------------------------------------------------------------------


def test_setdefault_setting_keeps_the_first_value(with_store: WithStore) -> None:
    async def scenario(store: Store) -> None:
        assert await store.get_setting("webhook_secret") is None
        assert await store.setdefault_setting("webhook_secret", "first") == "first"
        assert await store.setdefault_setting("webhook_secret", "second") == "first"
        assert await store.get_setting("webhook_secret") == "first"

    with_store(scenario)


def test_keys_are_found_by_hash_listed_and_revoked(with_store: WithStore) -> None:
    async def scenario(store: Store) -> None:
        live = ApiKey("key_1", "live", "vx_live_ab", "a" * 64, created_at=1.0)
        test = ApiKey("key_2", "test", "vx_test_cd", "b" * 64, created_at=2.0)
        await store.add_key(test)
        await store.add_key(live)
        assert await store.key_by_hash("a" * 64) == live
        assert await store.key_by_hash("c" * 64) is None
        assert await store.list_keys() == [live, test]  # oldest first
        assert await store.revoke_key("key_1") is True
        assert await store.revoke_key("key_9") is False
        assert await store.key_by_hash("a" * 64) == replace(live, revoked=True)
        with pytest.raises(KeyError):
            await store.add_key(replace(test, id="key_3"))  # the same secret hash
        with pytest.raises(KeyError):
            await store.add_key(replace(test, secret_hash="d" * 64))  # the same id

    with_store(scenario)


# --- calls ----------------------------------------------------------------------------


def test_a_call_is_added_once_and_gets_an_increasing_seq(with_store: WithStore) -> None:
    async def scenario(store: Store) -> None:
        first = await store.add_call(a_call(1))
        second = await store.add_call(a_call(2, data={"nested": {"a": [1, 2]}, "x": None}))
        assert 0 < first.seq < second.seq
        assert first == replace(a_call(1), seq=first.seq)
        assert await store.get_call("call_2") == second
        assert await store.get_call("call_3") is None
        with pytest.raises(KeyError):
            await store.add_call(a_call(1, to_number="+15559999999"))

    with_store(scenario)


def test_update_call_sets_status_and_owner_and_merges_data(with_store: WithStore) -> None:
    async def scenario(store: Store) -> None:
        await store.add_call(a_call(1, owner="node-a", data={"a": 1, "b": 2}))
        updated = await store.update_call("call_1", status="ringing", data={"b": 3, "c": 4})
        assert updated is not None
        assert (updated.status, updated.owner) == ("ringing", "node-a")
        assert updated.data == {"a": 1, "b": 3, "c": 4}
        assert await store.get_call("call_1") == updated
        ended = await store.update_call("call_1", status="completed", owner="")
        assert ended is not None
        assert (ended.status, ended.owner, ended.data) == ("completed", "", updated.data)
        assert await store.update_call("call_9", status="failed") is None

    with_store(scenario)


def test_update_calls_applies_a_batch(with_store: WithStore) -> None:
    async def scenario(store: Store) -> None:
        for n in (1, 2, 3):
            await store.add_call(a_call(n))
        await store.update_calls(
            [
                ("call_1", {"status": "ringing"}),
                ("call_2", {"owner": "node-b", "data": {"sip_code": 486}}),
                ("call_1", {"status": "in-progress", "data": {"answered_at": 5.0}}),
                ("call_9", {"status": "failed"}),  # unknown: nothing to update
            ]
        )
        one, two, three = [await store.get_call(f"call_{n}") for n in (1, 2, 3)]
        assert one is not None and (one.status, one.owner) == ("in-progress", "")
        assert one.data == {"n": 1, "answered_at": 5.0}
        assert two is not None and (two.owner, two.data) == ("node-b", {"n": 2, "sip_code": 486})
        assert three is not None and three.status == "queued"
        await store.update_calls([])

    with_store(scenario)


def test_update_calls_enqueues_deliveries_in_the_same_transaction(with_store: WithStore) -> None:
    async def scenario(store: Store) -> None:
        await store.add_call(a_call(1))
        await store.update_calls([("call_1", {"status": "completed"})], [a_delivery(1)])
        call = await store.get_call("call_1")
        assert call is not None and call.status == "completed"
        assert await store.pending_count() == 1
        with pytest.raises(KeyError):  # a delivery already there: the update is undone too
            await store.update_calls([("call_1", {"status": "failed"})], [a_delivery(1)])
        call = await store.get_call("call_1")
        assert call is not None and call.status == "completed"
        await store.update_calls([], [a_delivery(2)])  # deliveries alone
        assert await store.pending_count() == 2

    with_store(scenario)


def test_update_calls_refuses_an_unknown_field_and_writes_nothing(with_store: WithStore) -> None:
    async def scenario(store: Store) -> None:
        await store.add_call(a_call(1))
        with pytest.raises(ValueError, match="bogus"):
            await store.update_calls([("call_1", {"status": "ringing"}), ("call_1", {"bogus": 1})])
        call = await store.get_call("call_1")
        assert call is not None and call.status == "queued"

    with_store(scenario)


def _calls_for_filters() -> list[CallRecord]:
    return [
        a_call(1, status="completed", direction="inbound", from_number="+15557770000"),
        a_call(2, status="failed", mode="live"),
        a_call(3, status="completed", to_number="+15557770000"),
        a_call(4, status="ringing", direction="inbound", mode="live"),
        a_call(5, status="completed"),
    ]


@pytest.mark.parametrize(
    ("filters", "expected"),
    [
        (CallFilter(), [5, 4, 3, 2, 1]),
        (CallFilter(status="completed"), [5, 3, 1]),
        (CallFilter(direction="inbound"), [4, 1]),
        (CallFilter(number="+15557770000"), [3, 1]),
        (CallFilter(created_after=1002.0), [5, 4, 3, 2]),  # inclusive
        (CallFilter(created_before=1003.0), [2, 1]),  # exclusive
        (CallFilter(created_after=1002.0, created_before=1004.0), [3, 2]),
        (CallFilter(mode="live"), [4, 2]),
        (CallFilter(mode="test", status="completed", direction="outbound"), [5, 3]),
        (CallFilter(status="busy"), []),
    ],
)
def test_list_calls_newest_first_under_each_filter(
    with_store: WithStore, filters: CallFilter, expected: list[int]
) -> None:
    async def scenario(store: Store) -> None:
        for call in _calls_for_filters():
            await store.add_call(call)
        page = await store.list_calls(filters, limit=10)
        assert ids(page.data) == [f"call_{n}" for n in expected]
        assert (page.has_more, page.next_cursor) == (False, None)

    with_store(scenario)


def test_pages_of_calls_see_each_call_once_while_calls_are_added(with_store: WithStore) -> None:
    async def scenario(store: Store) -> None:
        originals = [f"call_{n}" for n in range(1, 10)]
        for n in range(1, 10):
            await store.add_call(a_call(n))
        go: asyncio.Queue[int] = asyncio.Queue()
        done: asyncio.Queue[None] = asyncio.Queue()

        async def insert_between_pages() -> None:
            while (step := await go.get()) >= 0:
                for k in range(2):
                    await store.add_call(a_call(100 + 2 * step + k))
                await done.put(None)

        inserter = asyncio.create_task(insert_between_pages())
        seen: list[str] = []
        page = await store.list_calls(CallFilter(), limit=2)
        for step in range(20):
            seen += ids(page.data)
            if not page.has_more:
                break
            await go.put(step)
            await done.get()
            page = await store.list_calls(CallFilter(), limit=2, before=page.next_cursor)
        await go.put(-1)
        await inserter
        assert seen == originals[::-1]
        assert (page.has_more, page.next_cursor) == (False, None)
        assert len((await store.list_calls(CallFilter(), limit=100)).data) == 9 + 2 * 4

    with_store(scenario)


def test_live_calls_of_an_owner_are_its_calls_not_yet_final(with_store: WithStore) -> None:
    async def scenario(store: Store) -> None:
        statuses = ["queued", "ringing", "in-progress", "completed", "failed", "no-answer"]
        for n, status in enumerate(statuses):
            await store.add_call(a_call(n, status=status, owner="node-a"))
        await store.add_call(a_call(10, status="in-progress", owner="node-b"))
        assert ids(await store.live_calls_of("node-a")) == ["call_0", "call_1", "call_2"]
        assert ids(await store.live_calls_of("node-c")) == []

    with_store(scenario)


# --- numbers --------------------------------------------------------------------------


def test_a_number_is_routed_once_found_updated_and_deleted(with_store: WithStore) -> None:
    async def scenario(store: Store) -> None:
        route = await store.add_number(a_route(1))
        assert route.seq > 0 and route == replace(a_route(1), seq=route.seq)
        assert await store.get_number("num_1") == route
        assert await store.number_by_called("+15552000001") == route
        assert await store.number_by_called("+15552000002") is None
        with pytest.raises(KeyError):
            await store.add_number(a_route(1, id="num_2"))  # the same number
        updated = await store.update_number(
            "num_1",
            incoming_call_action="webhook",
            settings={"record": None, "webhook_url": "https://hooks.example.test/n"},
            updated_at=20.0,
        )
        assert updated == replace(
            route,
            incoming_call_action="webhook",
            settings={
                "wss_url": "wss://bot.example.test/1",
                "webhook_url": "https://hooks.example.test/n",
            },
            updated_at=20.0,
        )
        assert await store.get_number("num_1") == updated
        kept = await store.update_number("num_1", updated_at=30.0)
        assert kept == replace(updated, updated_at=30.0)
        assert await store.update_number("num_9", updated_at=1.0) is None
        assert await store.delete_number("num_1") is True
        assert await store.delete_number("num_1") is False
        assert await store.number_by_called("+15552000001") is None
        await store.add_number(a_route(1, id="num_3"))  # free again

    with_store(scenario)


def test_numbers_are_listed_newest_first_in_pages(with_store: WithStore) -> None:
    async def scenario(store: Store) -> None:
        for n in range(1, 6):
            await store.add_number(a_route(n))
        first = await store.list_numbers(limit=2)
        second = await store.list_numbers(limit=2, before=first.next_cursor)
        last = await store.list_numbers(limit=2, before=second.next_cursor)
        assert [ids(p.data) for p in (first, second, last)] == [
            ["num_5", "num_4"],
            ["num_3", "num_2"],
            ["num_1"],
        ]
        assert (first.has_more, last.has_more, last.next_cursor) == (True, False, None)

    with_store(scenario)


# --- webhook subscriptions ------------------------------------------------------------


def test_subscriptions_for_an_event_include_the_wildcard(with_store: WithStore) -> None:
    async def scenario(store: Store) -> None:
        events = [("call.completed",), ("*",), ("call.ringing", "call.completed")]
        for n, types in enumerate(events, 1):
            sub = Subscription(f"wh_{n}", f"https://h.example.test/{n}", types, "s", 5.0)
            stored = await store.add_subscription(sub)
            assert stored == replace(sub, seq=stored.seq) and stored.seq > 0
        assert ids(await store.subscriptions_for("call.completed")) == ["wh_1", "wh_2", "wh_3"]
        assert ids(await store.subscriptions_for("call.ringing")) == ["wh_2", "wh_3"]
        assert ids(await store.subscriptions_for("number.updated")) == ["wh_2"]
        got = await store.get_subscription("wh_3")
        assert got is not None and got.events == ("call.ringing", "call.completed")
        page = await store.list_subscriptions(limit=2)
        rest = await store.list_subscriptions(limit=2, before=page.next_cursor)
        assert (ids(page.data), ids(rest.data), rest.has_more) == (
            ["wh_3", "wh_2"],
            ["wh_1"],
            False,
        )
        assert await store.delete_subscription("wh_2") is True
        assert await store.delete_subscription("wh_2") is False
        assert await store.get_subscription("wh_2") is None
        assert ids(await store.subscriptions_for("number.updated")) == []

    with_store(scenario)


# --- the webhook outbox ---------------------------------------------------------------


def test_claim_due_takes_only_due_deliveries_and_leases_them(with_store: WithStore) -> None:
    async def scenario(store: Store) -> None:
        await store.enqueue([a_delivery(3, due=300.0), a_delivery(1, due=100.0)])
        await store.enqueue([a_delivery(2, due=200.0)])
        assert await store.pending_count() == 3
        assert ids(await store.claim_due(50.0, limit=10, lease=30.0, worker="w1")) == []
        claimed = await store.claim_due(250.0, limit=10, lease=30.0, worker="w1")
        assert claimed == [replace(a_delivery(1), seq=claimed[0].seq), claimed[1]]
        assert ids(claimed) == ["dlv_1", "dlv_2"]  # the earliest due first
        assert ids(await store.claim_due(250.0, limit=10, lease=30.0, worker="w2")) == []
        # dlv_1's worker died: once its lease has run out, another worker takes it
        assert ids(await store.claim_due(279.0, limit=10, lease=30.0, worker="w2")) == []
        again = await store.claim_due(301.0, limit=1, lease=30.0, worker="w2")
        assert ids(again) == ["dlv_1"]
        assert ids(await store.claim_due(301.0, limit=5, lease=30.0, worker="w2")) == [
            "dlv_2",
            "dlv_3",
        ]
        assert await store.pending_count() == 3  # leased, still pending

    with_store(scenario)


def test_a_restarted_worker_releases_its_own_leases(with_store: WithStore) -> None:
    async def scenario(store: Store) -> None:
        await store.enqueue([a_delivery(n) for n in (1, 2, 3)])
        assert ids(await store.claim_due(100.0, limit=2, lease=60.0, worker="node-a/0")) == [
            "dlv_1",
            "dlv_2",
        ]
        assert ids(await store.claim_due(100.0, limit=1, lease=60.0, worker="node-b/0")) == [
            "dlv_3"
        ]
        assert await store.release_leases("node-a/0") == 2  # node-a restarted
        again = await store.claim_due(101.0, limit=10, lease=60.0, worker="node-a/0")
        assert ids(again) == ["dlv_1", "dlv_2"]  # not node-b's, whose lease still runs
        await store.delivered("dlv_1", at=102.0, status=200)
        assert await store.release_leases("node-a/0") == 1  # a delivered one stays delivered

    with_store(scenario)


def test_delivered_failed_and_dead_deliveries(with_store: WithStore) -> None:
    async def scenario(store: Store) -> None:
        await store.enqueue([a_delivery(n) for n in (1, 2, 3)])
        await store.claim_due(100.0, limit=10, lease=60.0, worker="w1")
        await store.delivered("dlv_1", at=101.0, status=204)
        await store.failed("dlv_2", next_attempt_at=130.0, error="HTTP 503", status=503)
        await store.failed("dlv_3", next_attempt_at=None, error="x" * 5000, status=None)
        one, two, three = [await store.get_delivery(f"dlv_{n}") for n in (1, 2, 3)]
        assert one is not None and two is not None and three is not None
        assert (one.status, one.attempts, one.delivered_at, one.last_status) == (
            "delivered",
            1,
            101.0,
            204,
        )
        assert (two.status, two.attempts, two.next_attempt_at) == ("pending", 1, 130.0)
        assert (two.last_error, two.last_status) == ("HTTP 503", 503)
        assert (three.status, three.attempts, three.last_status) == ("dead", 1, None)
        assert three.last_error == "x" * 1000  # bounded
        assert await store.pending_count() == 1
        # a failure ends the lease: the retry is due at its own time, not the lease's
        assert ids(await store.claim_due(129.0, limit=10, lease=60.0, worker="w1")) == []
        assert ids(await store.claim_due(130.0, limit=10, lease=60.0, worker="w1")) == ["dlv_2"]
        assert await store.get_delivery("dlv_9") is None

    with_store(scenario)


def test_deliveries_are_listed_by_status_in_pages(with_store: WithStore) -> None:
    async def scenario(store: Store) -> None:
        await store.enqueue([a_delivery(n) for n in range(1, 8)])
        for n in (2, 4, 5, 7):
            await store.failed(f"dlv_{n}", next_attempt_at=None, error="gone", status=410)
        seen: list[str] = []
        before: int | None = None
        while True:
            page = await store.list_deliveries(status="dead", limit=3, before=before)
            seen += ids(page.data)
            if not page.has_more:
                break
            before = page.next_cursor
        assert seen == ["dlv_7", "dlv_5", "dlv_4", "dlv_2"]
        pending = await store.list_deliveries(status="pending", limit=10)
        assert ids(pending.data) == ["dlv_6", "dlv_3", "dlv_1"]
        everything = await store.list_deliveries(status=None, limit=10)
        assert ids(everything.data) == [f"dlv_{n}" for n in range(7, 0, -1)]

    with_store(scenario)


def test_replay_makes_a_delivery_pending_and_due_now(with_store: WithStore) -> None:
    async def scenario(store: Store) -> None:
        await store.enqueue([a_delivery(1), a_delivery(2)])
        await store.failed("dlv_1", next_attempt_at=None, error="timeout", status=None)
        await store.delivered("dlv_2", at=101.0, status=200)
        replayed = await store.replay("dlv_1", now=500.0)
        assert replayed is not None
        assert (replayed.status, replayed.next_attempt_at, replayed.attempts) == (
            "pending",
            500.0,
            1,
        )
        again = await store.replay("dlv_2", now=500.0)
        assert again is not None and (again.status, again.delivered_at) == ("pending", None)
        assert await store.get_delivery("dlv_1") == replayed
        due = await store.claim_due(500.0, limit=10, lease=60.0, worker="w")
        assert sorted(ids(due)) == ["dlv_1", "dlv_2"]
        assert await store.replay("dlv_9", now=1.0) is None

    with_store(scenario)


def test_enqueue_refuses_an_id_already_in_the_outbox(with_store: WithStore) -> None:
    async def scenario(store: Store) -> None:
        await store.enqueue([])
        await store.enqueue([a_delivery(1)])
        with pytest.raises(KeyError):
            await store.enqueue([a_delivery(2), a_delivery(1)])
        assert await store.pending_count() == 1  # all or nothing

    with_store(scenario)


# --- idempotency ----------------------------------------------------------------------


def test_idempotent_put_keeps_the_first_response(with_store: WithStore) -> None:
    async def scenario(store: Store) -> None:
        first = IdempotentResponse(201, '{"id":"call_1"}', "h1", 1.0)
        second = IdempotentResponse(201, '{"id":"call_2"}', "h2", 2.0)
        assert await store.idempotent_get("key_1", "abc") is None
        assert await store.idempotent_put("key_1", "abc", first) == first
        assert await store.idempotent_put("key_1", "abc", second) == first
        assert await store.idempotent_get("key_1", "abc") == first
        assert await store.idempotent_put("key_2", "abc", second) == second  # another key

    with_store(scenario)


# --- messages -------------------------------------------------------------------------


def test_a_listener_receives_what_is_notified_until_closed(with_store: WithStore) -> None:
    async def scenario(store: Store) -> None:
        async with store.listen("voxgate_events") as feed:
            for payload in ("one", "two", "é" * 100):
                await store.notify("voxgate_events", payload)
            await store.notify("other_channel", "not for this feed")
            received = [await asyncio.wait_for(anext(feed), 10) for _ in range(3)]
            assert received == ["one", "two", "é" * 100]
        with pytest.raises(ValueError, match="channel"):
            await store.notify("Bad-Channel", "x")
        with pytest.raises(ValueError, match="bytes"):
            await store.notify("voxgate_events", "x" * (MAX_PAYLOAD + 1))
        kept = store.listen("voxgate_events")
        await kept.ready()
        await store.close()  # ends every feed
        assert [payload async for payload in kept] == []

    with_store(scenario)


def test_a_closed_store_refuses_work(with_store: WithStore) -> None:
    async def scenario(store: Store) -> None:
        await store.close()
        await store.close()  # twice is fine
        with pytest.raises(RuntimeError, match="not open"):
            await store.get_call("call_1")
        with pytest.raises(RuntimeError, match="not open"):
            store.listen("voxgate_events")

    with_store(scenario)
