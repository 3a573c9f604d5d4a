"""Ordered, non-blocking sending on one WebSocket.

The call core produces messages from synchronous code (a timer callback, a
received message); an :class:`Outbox` queues them and one writer task sends
them in order, then closes the socket when asked, after what was queued
before the close. A slow peer cannot stall the call core, only its own queue.

"Too slow" means the peer is not draining its socket: a send has waited on the
transport (its write buffer above the high-water mark) for longer than
:data:`STALL_SECONDS`. A burst of many small messages that the peer reads is
not too slow. As a last bound on memory, an outbox whose queue holds more than
:data:`MAX_QUEUED_BYTES` is closed too.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Final

from voxgate.obs import METRICS, safe_reason

log = logging.getLogger("voxgate.outbox")

STALL_SECONDS: Final = 10.0  # one send waiting this long: the peer is not reading
MAX_QUEUED_BYTES: Final = 32 * 1024 * 1024  # a last bound on what one socket may hold back

Send = Callable[[str | bytes], Awaitable[None]]
Close = Callable[[int, str], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class _Close:
    code: int
    reason: str


class Outbox:
    def __init__(
        self,
        name: str,
        send: Send,
        close: Close,
        *,
        call_id: str = "",
        latency_metric: str = "",
        stall_seconds: float = STALL_SECONDS,
    ) -> None:
        self.name = name
        self.stall_seconds = stall_seconds
        self._send = send
        self._close = close
        self._queue: asyncio.Queue[tuple[str | bytes, float | None] | _Close] = asyncio.Queue()
        self._queued_bytes = 0
        self._sending_since: float | None = None
        self.call_id = call_id
        self.closing = False
        self.sent = 0
        self._latency_metric = latency_metric
        self._task = asyncio.create_task(self._run(), name=f"outbox-{name}")

    def put(self, message: str | bytes, *, origin: float | None = None) -> None:
        """Queue ``message``; with ``origin`` (a monotonic time), the time from it to the
        message being sent is observed as this outbox's latency metric."""
        if self.closing:
            return
        if self.stalled(time.monotonic()) or self._queued_bytes > MAX_QUEUED_BYTES:
            METRICS.count("errors", kind=f"{self.name}_too_slow")
            log.error("%s is not reading; closing it", self.name, extra={"call_id": self.call_id})
            self.close(1008, "peer too slow")
            return
        self._queued_bytes += len(message)
        self._queue.put_nowait((message, origin))

    def stalled(self, now: float) -> bool:
        """Whether one send has waited on the peer for longer than :attr:`stall_seconds`."""
        return self._sending_since is not None and now - self._sending_since > self.stall_seconds

    def close(self, code: int, reason: str) -> None:
        if not self.closing:
            self.closing = True
            self._queue.put_nowait(_Close(code, safe_reason(reason)))

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
                    await self._close_socket(item)
                    return
                message, origin = item
                self._sending_since = time.monotonic()
                await self._send(message)
                self._sending_since = None
                self._queued_bytes -= len(message)
                self.sent += 1
                if origin is not None and self._latency_metric:
                    METRICS.observe(self._latency_metric, time.monotonic() - origin)
        except asyncio.CancelledError:
            raise
        except Exception as error:  # the peer went away mid-send: its reader will notice
            log.debug("%s send failed: %r", self.name, error, extra={"call_id": self.call_id})
            self.closing = True

    async def _close_socket(self, item: _Close) -> None:
        try:
            await self._close(item.code, item.reason)
        except Exception as error:
            METRICS.count("errors", kind=f"{self.name}_close")
            log.warning(
                "closing the %s socket failed: %r",
                self.name,
                error,
                extra={"call_id": self.call_id},
            )
