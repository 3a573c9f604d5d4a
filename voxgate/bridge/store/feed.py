"""Feeds: the payloads one listener receives on one channel (``Store.listen``).

Theory of operation. A producer (the PostgreSQL backend's reader task on its own
LISTEN connection, or the SQLite backend's in-process fan-out) pushes payloads; one
consumer iterates over them. Producers never wait: a feed holds at most :data:`QUEUE`
payloads, and a consumer that falls further behind is cut off.

    starting --mark_ready--> listening --end--> ended
         \\                        \\
          '-------fail-------------'--> failed

- ``ended`` (``Store.close``, ``aclose``): the buffered payloads, then the iteration stops.
- ``failed`` (the connection was lost, the consumer fell behind, the connection could not
  be made): the buffered payloads, then :class:`ConnectionError` once, then the iteration
  stops. The caller listens anew and re-reads from the store what it may have missed:
  notifications are a hint, never the record.

``await feed.ready()`` (or ``async with store.listen(ch) as feed``) returns once the
listener is registered: a payload sent after that reaches it.
"""

from __future__ import annotations

import asyncio
import re
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Final

from voxgate.obs import METRICS

QUEUE: Final = 1000  # payloads held for one feed
MAX_PAYLOAD: Final = 7999  # bytes of UTF-8: PostgreSQL's NOTIFY takes fewer than 8000
_CHANNEL: Final = re.compile(r"[a-z][a-z0-9_]{0,62}")  # a plain PostgreSQL identifier

_ENDED: Final = "ended"


def check_channel(channel: str) -> str:
    if not _CHANNEL.fullmatch(channel):
        raise ValueError(f"a channel name is [a-z][a-z0-9_]{{0,62}}, not {channel[:70]!r}")
    return channel


def check_payload(payload: str) -> str:
    if len(payload.encode()) > MAX_PAYLOAD:
        raise ValueError(f"a notification payload holds at most {MAX_PAYLOAD} bytes")
    return payload


class Feed:
    """An async iterator of payloads, and an async context manager that closes it."""

    def __init__(self, channel: str, stop: Callable[[Feed], Awaitable[None]]) -> None:
        self.channel = channel
        self._stop = stop  # the backend's clean-up: unregister, close the connection
        self._items: deque[str] = deque()
        self._wakeup = asyncio.Event()
        self._ready = asyncio.Event()
        self._outcome: str | Exception | None = None  # _ENDED or the error

    @property
    def done(self) -> bool:
        return self._outcome is not None

    # --- the producer's side ---

    def mark_ready(self) -> None:
        self._ready.set()

    def push(self, payload: str) -> None:
        if self._outcome is not None:
            return
        if len(self._items) >= QUEUE:
            METRICS.count("store_feed_overflows")
            self.fail(ConnectionError(f"the listener on {self.channel} fell behind"))
            return
        self._items.append(payload)
        self._wakeup.set()

    def end(self) -> None:
        self._finish(_ENDED)

    def fail(self, error: Exception) -> None:
        self._finish(error)

    def _finish(self, outcome: str | Exception) -> None:
        if self._outcome is None:
            self._outcome = outcome
        self._ready.set()
        self._wakeup.set()

    # --- the consumer's side ---

    async def ready(self) -> None:
        """Return once listening; raise the feed's error if it failed first."""
        await self._ready.wait()
        if isinstance(self._outcome, Exception):
            raise self._outcome

    def __aiter__(self) -> Feed:
        return self

    async def __anext__(self) -> str:
        while not self._items and self._outcome is None:
            self._wakeup.clear()
            await self._wakeup.wait()
        if self._items:
            return self._items.popleft()
        if isinstance(self._outcome, Exception):
            error, self._outcome = self._outcome, _ENDED
            raise error
        raise StopAsyncIteration

    async def aclose(self) -> None:
        self._items.clear()
        self.end()
        await self._stop(self)

    async def __aenter__(self) -> Feed:
        try:
            await self.ready()
        except BaseException:
            await self.aclose()
            raise
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()


class Fanout:
    """Feeds within one process, by channel: the SQLite backend's LISTEN/NOTIFY."""

    def __init__(self) -> None:
        self._feeds: dict[str, set[Feed]] = {}

    def listen(self, channel: str) -> Feed:
        feed = Feed(check_channel(channel), self._leave)
        self._feeds.setdefault(channel, set()).add(feed)
        feed.mark_ready()
        return feed

    def notify(self, channel: str, payload: str) -> None:
        check_payload(payload)
        for feed in list(self._feeds.get(check_channel(channel), ())):
            feed.push(payload)
            if feed.done:
                self._forget(feed)

    def close(self) -> None:
        for feeds in self._feeds.values():
            for feed in feeds:
                feed.end()
        self._feeds.clear()

    async def _leave(self, feed: Feed) -> None:
        self._forget(feed)

    def _forget(self, feed: Feed) -> None:
        feeds = self._feeds.get(feed.channel, set())
        feeds.discard(feed)
        if not feeds:
            self._feeds.pop(feed.channel, None)
