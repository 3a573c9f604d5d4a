"""voxgate.bridge.aio.outbox: ordered sending, "too slow" meaning a peer that does not drain."""

from __future__ import annotations

import asyncio
import logging

import pytest
from e2e import run

from voxgate.bridge.aio.outbox import Outbox


class Peer:
    """A socket's send and close, as an outbox sees them; ``reading`` gates the sends."""

    def __init__(self) -> None:
        self.received: list[str | bytes] = []
        self.closed: tuple[int, str] | None = None
        self.reading = asyncio.Event()
        self.reading.set()

    async def send(self, message: str | bytes) -> None:
        await self.reading.wait()
        self.received.append(message)

    async def close(self, code: int, reason: str) -> None:
        if len(reason.encode()) > 123:  # RFC 6455 section 5.5: what a real socket refuses
            raise ValueError("close reason too long")
        self.closed = (code, reason)


def test_a_burst_of_many_small_messages_to_a_reading_peer_is_not_too_slow() -> None:
    async def scenario() -> None:
        peer = Peer()
        outbox = Outbox("carrier", peer.send, peer.close, stall_seconds=0.5)
        for number in range(20_000):
            outbox.put(f"mark {number}")
        outbox.close(1000, "done")
        await outbox.wait_closed()
        assert len(peer.received) == 20_000
        assert peer.received[-1] == "mark 19999"
        assert peer.closed == (1000, "done")

    run(scenario())


def test_a_peer_that_stops_draining_is_closed_as_too_slow() -> None:
    async def scenario() -> None:
        peer = Peer()
        outbox = Outbox("bot", peer.send, peer.close, stall_seconds=0.2)
        peer.reading.clear()  # the transport's buffer is full: sends wait
        outbox.put("first")
        await asyncio.sleep(0.05)
        outbox.put("second")  # waiting 50 ms is not too slow
        assert not _closing(outbox)
        await asyncio.sleep(0.3)
        outbox.put("third")  # one send has waited 350 ms
        assert _closing(outbox)
        peer.reading.set()
        await outbox.wait_closed()
        assert peer.closed == (1008, "peer too slow")
        assert peer.received == ["first", "second"]

    run(scenario())


def _closing(outbox: Outbox) -> bool:
    return outbox.closing


@pytest.mark.parametrize("reason", ["é" * 200, "x" * 200, "a\nb" + "ü" * 80])
def test_close_reasons_are_cut_to_123_bytes_at_a_character_boundary(reason: str) -> None:
    async def scenario() -> None:
        peer = Peer()
        outbox = Outbox("carrier", peer.send, peer.close)
        outbox.close(1008, reason)
        await outbox.wait_closed()
        assert peer.closed is not None
        code, sent = peer.closed
        assert code == 1008
        assert len(sent.encode()) <= 123
        assert "\n" not in sent
        assert reason.replace("\n", " ").startswith(sent[:20].replace("\n", " "))

    run(scenario())


def test_a_close_that_fails_is_logged_and_counted(caplog: pytest.LogCaptureFixture) -> None:
    async def failing_close(code: int, reason: str) -> None:
        raise ConnectionResetError("gone")

    async def scenario() -> None:
        peer = Peer()
        outbox = Outbox("carrier", peer.send, failing_close, call_id="vx-test")
        outbox.close(1000, "bye")
        await outbox.wait_closed()

    with caplog.at_level(logging.WARNING, logger="voxgate.outbox"):
        run(scenario())
    (record,) = [r for r in caplog.records if "closing the carrier socket failed" in r.message]
    assert getattr(record, "call_id", None) == "vx-test"
