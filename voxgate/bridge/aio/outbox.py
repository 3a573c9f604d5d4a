"""Ordered, non-blocking sending on one WebSocket.

The call core produces messages from synchronous code (a timer callback, a
received message); an :class:`Outbox` queues them and one writer task sends
them in order, then closes the socket when asked, after what was queued
before the close. A slow peer cannot stall the call core, only its own queue;
a peer that falls too far behind (:data:`MAX_BACKLOG` messages) is closed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Final

from voxgate.obs import METRICS

log = logging.getLogger("voxgate.outbox")

MAX_BACKLOG: Final = 3000  # one minute of 20 ms frames

Send = Callable[[str | bytes], Awaitable[None]]
Close = Callable[[int, str], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class _Close:
    code: int
    reason: str


class Outbox:
    def __init__(
        self, name: str, send: Send, close: Close, *, call_id: str = "", latency_metric: str = ""
    ) -> None:
        self.name = name
        self._send = send
        self._close = close
        self._queue: asyncio.Queue[tuple[str | bytes, float | None] | _Close] = asyncio.Queue()
        self._call_id = call_id
        self.closing = False
        self.sent = 0
        self._latency_metric = latency_metric
        self._task = asyncio.create_task(self._run(), name=f"outbox-{name}")

    def put(self, message: str | bytes, *, origin: float | None = None) -> None:
        """Queue ``message``; with ``origin`` (a monotonic time), the time from it to the
        message being sent is observed as this outbox's latency metric."""
        if self.closing:
            return
        if self._queue.qsize() >= MAX_BACKLOG:
            METRICS.count("errors", kind=f"{self.name}_backlog")
            log.error("%s is not reading; closing it", self.name, extra={"call_id": self._call_id})
            self.close(1008, "peer too slow")
            return
        self._queue.put_nowait((message, origin))

    def close(self, code: int, reason: str) -> None:
        if not self.closing:
            self.closing = True
            self._queue.put_nowait(_Close(code, reason[:120]))

    async def wait_closed(self, timeout: float = 2.0) -> None:
        with contextlib.suppress(TimeoutError, asyncio.CancelledError):
            await asyncio.wait_for(asyncio.shield(self._task), timeout)

    def cancel(self) -> None:
        self._task.cancel()

    async def _run(self) -> None:
        try:
            while True:
                item = await self._queue.get()
                if isinstance(item, _Close):
                    with contextlib.suppress(Exception):
                        await self._close(item.code, item.reason)
                    return
                message, origin = item
                await self._send(message)
                self.sent += 1
                if origin is not None and self._latency_metric:
                    METRICS.observe(self._latency_metric, time.monotonic() - origin)
        except asyncio.CancelledError:
            raise
        except Exception as error:  # the peer went away mid-send: its reader will notice
            log.debug("%s send failed: %r", self.name, error, extra={"call_id": self._call_id})
            self.closing = True
