"""The live event bus: filters, bounded queues, the slow listener cut off."""

from __future__ import annotations

import asyncio

from voxgate.bridge.control.bus import MAX_LISTENERS, QUEUE, EventBus, LiveEvent


def _event(n: int, call_id: str = "vx-1") -> LiveEvent:
    return LiveEvent(f"evt_{n}", "call.answered", call_id, "{}")


def test_a_listener_gets_its_calls_events_of_its_mode_only() -> None:
    async def scenario() -> None:
        bus = EventBus()
        one = bus.listen(call_id="vx-1", mode="test")
        every = bus.listen(call_id=None, mode="test")
        live = bus.listen(call_id=None, mode="live")
        assert one and every and live
        bus.publish(_event(1, "vx-1"), "test")
        bus.publish(_event(2, "vx-2"), "test")
        assert [one.queue.get_nowait().id] == ["evt_1"] and one.queue.empty()  # type: ignore[union-attr]
        assert every.queue.qsize() == 2
        assert live.queue.empty()
        bus.close()
        assert every.queue.get_nowait() is not None and bus.listeners == 0

    asyncio.run(scenario())


def test_a_listener_that_falls_behind_is_cut_off_not_grown() -> None:
    async def scenario() -> None:
        bus = EventBus()
        slow = bus.listen(call_id=None, mode="test")
        assert slow is not None
        for n in range(QUEUE + 50):
            bus.publish(_event(n), "test")
        assert slow.overflowed and bus.listeners == 0
        assert slow.queue.qsize() == QUEUE + 1  # its events, then the end marker
        items = [slow.queue.get_nowait() for _ in range(QUEUE + 1)]
        assert items[-1] is None

    asyncio.run(scenario())


def test_listeners_are_bounded() -> None:
    async def scenario() -> None:
        bus = EventBus()
        listeners = [bus.listen(call_id=None, mode="test") for _ in range(MAX_LISTENERS)]
        assert all(listeners)
        assert bus.listen(call_id=None, mode="test") is None

    asyncio.run(scenario())
