"""Feeds and the in-process fan-out (voxgate/bridge/store/feed.py): bounded, never blocking
a producer, ending cleanly or failing once with ConnectionError."""

from __future__ import annotations

import asyncio

import pytest

from voxgate.bridge.store.feed import (
    MAX_PAYLOAD,
    QUEUE,
    Fanout,
    Feed,
    check_channel,
    check_payload,
)
from voxgate.obs import METRICS


class Stops:
    def __init__(self) -> None:
        self.stopped: list[Feed] = []

    async def __call__(self, feed: Feed) -> None:
        self.stopped.append(feed)


async def drain(feed: Feed) -> list[str]:
    return [payload async for payload in feed]


@pytest.mark.parametrize("channel", ["a", "voxgate_events", "x" + "9" * 62])
def test_good_channel_names(channel: str) -> None:
    assert check_channel(channel) == channel


@pytest.mark.parametrize("channel", ["", "Events", "9lives", "a-b", "a b", "x" * 64, 'a"; --'])
def test_bad_channel_names(channel: str) -> None:
    with pytest.raises(ValueError, match="channel"):
        check_channel(channel)


def test_a_payload_is_at_most_max_payload_bytes_of_utf8() -> None:
    assert check_payload("x" * MAX_PAYLOAD) == "x" * MAX_PAYLOAD
    with pytest.raises(ValueError, match="bytes"):
        check_payload("é" * (MAX_PAYLOAD // 2 + 1))


def test_an_ended_feed_gives_what_it_holds_then_stops() -> None:
    async def scenario() -> None:
        feed = Feed("c", Stops())
        feed.mark_ready()
        await feed.ready()
        feed.push("one")
        feed.push("two")
        feed.end()
        feed.push("late")  # after the end: dropped
        assert await drain(feed) == ["one", "two"]
        assert await drain(feed) == []

    asyncio.run(scenario())


def test_a_failed_feed_raises_once_after_what_it_holds() -> None:
    async def scenario() -> None:
        feed = Feed("c", Stops())
        feed.push("one")
        feed.fail(ConnectionError("lost"))
        with pytest.raises(ConnectionError, match="lost"):
            await feed.ready()
        assert await anext(feed) == "one"
        with pytest.raises(ConnectionError, match="lost"):
            await anext(feed)
        assert await drain(feed) == []

    asyncio.run(scenario())


def test_a_consumer_that_falls_behind_is_cut_off() -> None:
    async def scenario() -> None:
        before = METRICS.value("store_feed_overflows")
        feed = Feed("c", Stops())
        for n in range(QUEUE + 5):
            feed.push(str(n))
        received: list[str] = []

        async def collect() -> None:
            async for payload in feed:
                received.append(payload)

        with pytest.raises(ConnectionError, match="fell behind"):
            await collect()
        assert received == [str(n) for n in range(QUEUE)]
        assert METRICS.value("store_feed_overflows") == before + 1

    asyncio.run(scenario())


def test_a_waiting_consumer_wakes_for_a_payload_and_for_the_end() -> None:
    async def scenario() -> None:
        feed = Feed("c", Stops())
        waiting = asyncio.create_task(drain(feed))
        await asyncio.sleep(0)
        feed.push("one")
        await asyncio.sleep(0)
        feed.end()
        assert await waiting == ["one"]

    asyncio.run(scenario())


def test_aclose_drops_what_is_held_and_stops_the_producer() -> None:
    async def scenario() -> None:
        stops = Stops()
        feed = Feed("c", stops)
        feed.mark_ready()
        async with feed:
            feed.push("held")
        assert stops.stopped == [feed]
        assert await drain(feed) == []
        refused = Feed("c", stops)
        refused.fail(ConnectionError("refused"))
        with pytest.raises(ConnectionError, match="refused"):
            async with refused:
                pass
        assert stops.stopped == [feed, refused]

    asyncio.run(scenario())


def test_the_fanout_reaches_every_feed_of_a_channel_until_it_leaves() -> None:
    async def scenario() -> None:
        fanout = Fanout()
        first, second, other = fanout.listen("a"), fanout.listen("a"), fanout.listen("b")
        fanout.notify("a", "x")
        await first.aclose()
        fanout.notify("a", "y")
        fanout.notify("nobody", "z")
        fanout.close()
        assert (await drain(first), await drain(second), await drain(other)) == ([], ["x", "y"], [])
        with pytest.raises(ValueError, match="channel"):
            fanout.listen("A")

    asyncio.run(scenario())


def test_the_fanout_forgets_a_feed_it_cut_off() -> None:
    async def scenario() -> None:
        fanout = Fanout()
        slow = fanout.listen("a")
        for n in range(QUEUE + 1):
            fanout.notify("a", str(n))
        fresh = fanout.listen("a")
        fanout.notify("a", "after")
        fanout.close()
        assert await drain(fresh) == ["after"]
        with pytest.raises(ConnectionError):
            await drain(slow)

    asyncio.run(scenario())
