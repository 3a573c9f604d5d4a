"""``GET /v1/events``: live call events as Server-Sent Events (optionally one call's).

Each event's ``id`` is the webhook event id, ``event`` its type and ``data`` the same JSON
a webhook receives. A comment line is sent every 15 s so proxies keep the stream open.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated, Any, Final

from fastapi import APIRouter, Query, Request
from sse_starlette.sse import EventSourceResponse

from voxgate.bridge.control.api import ERROR_RESPONSES, Key, control_of
from voxgate.bridge.control.bus import EventBus, Listener, event_mapping
from voxgate.errors import ApiError

router = APIRouter(prefix="/v1", tags=["events"], responses=ERROR_RESPONSES)


SSE_EVENT: Final = {
    "description": "One Server-Sent Event: `event` is the type (or `overflow`), `id` the "
    "event's id, `data` the webhook envelope as JSON text",
    "type": "object",
    "properties": {
        "event": {"type": "string"},
        "id": {"type": "string"},
        "data": {"type": "string"},
    },
    "required": ["data"],
}


@router.get(
    "/events",
    summary="Live call events (Server-Sent Events)",
    response_class=EventSourceResponse,
    responses={200: {"content": {"text/event-stream": {"schema": SSE_EVENT}}}},
)
async def events(
    key: Key,
    request: Request,
    call_id: Annotated[str | None, Query(min_length=1, max_length=64)] = None,
) -> EventSourceResponse:
    bus = control_of(request).bus
    listener = bus.listen(call_id=call_id, mode=key.mode)
    if listener is None:
        raise ApiError(503, "too_many_listeners", "too many event streams are open; try later")
    return EventSourceResponse(_stream(bus, listener), ping=15)


async def _stream(bus: EventBus, listener: Listener) -> AsyncIterator[dict[str, Any]]:
    try:
        while True:
            event = await listener.queue.get()
            if event is None:
                if listener.overflowed:
                    yield {"event": "overflow", "data": '{"reason":"too slow; reconnect"}'}
                return
            yield dict(event_mapping(event))
    finally:
        bus.leave(listener)
