"""Live call events for ``GET /v1/events`` (Server-Sent Events).

Every listener has its own bounded queue. Publishing never waits: a listener too slow to
keep up (its queue full) is cut off with a last ``overflow`` event rather than slowing
the calls or growing without bound; a dashboard reconnects.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final

from voxgate.obs import METRICS

QUEUE: Final = 1000  # events held for one listener
MAX_LISTENERS: Final = 256


@dataclass(frozen=True, slots=True)
class LiveEvent:
    id: str
    type: str
    call_id: str | None
    body: str  # the JSON text sent as the SSE data


@dataclass(eq=False)
class Listener:
    call_id: str | None  # only this call's events; None: all
    mode: str  # a key sees only calls of its own mode
    queue: asyncio.Queue[LiveEvent | None] = field(default_factory=lambda: asyncio.Queue(QUEUE + 1))
    overflowed: bool = False


class EventBus:
    def __init__(self) -> None:
        self._listeners: set[Listener] = set()

    @property
    def listeners(self) -> int:
        return len(self._listeners)

    def listen(self, *, call_id: str | None, mode: str) -> Listener | None:
        """A new listener, or None when there are too many already."""
        if len(self._listeners) >= MAX_LISTENERS:
            return None
        listener = Listener(call_id, mode)
        self._listeners.add(listener)
        return listener

    def leave(self, listener: Listener) -> None:
        self._listeners.discard(listener)

    def publish(self, event: LiveEvent, mode: str) -> None:
        for listener in list(self._listeners):
            if listener.mode != mode or listener.call_id not in (None, event.call_id):
                continue
            if listener.queue.qsize() >= QUEUE:
                self._overflow(listener)
            else:
                listener.queue.put_nowait(event)

    def close(self) -> None:
        for listener in list(self._listeners):
            listener.queue.put_nowait(None)
        self._listeners.clear()

    def _overflow(self, listener: Listener) -> None:
        METRICS.count("sse_overflows")
        listener.overflowed = True
        listener.queue.put_nowait(None)  # room kept for it: the queue holds QUEUE + 1
        self._listeners.discard(listener)


def event_mapping(event: LiveEvent) -> Mapping[str, Any]:
    return {"id": event.id, "event": event.type, "data": event.body}
