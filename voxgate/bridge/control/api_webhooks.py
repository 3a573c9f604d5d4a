"""``/v1/webhooks``: subscriptions, and the outbox's deliveries (dead ones replayable)."""

from __future__ import annotations

import secrets
import time
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from starlette.responses import JSONResponse, Response

from voxgate.bridge.control.api import (
    ERROR_RESPONSES,
    Cursor,
    Key,
    control_of,
    cursor_text,
    parse_cursor,
)
from voxgate.bridge.control.dialer import vet_outgoing
from voxgate.bridge.control.ledger import iso
from voxgate.bridge.control.models import (
    Delivery,
    DeliveryPage,
    Webhook,
    WebhookCreate,
    WebhookPage,
)
from voxgate.bridge.control.webhook_events import ALL, EVENT_TYPES
from voxgate.bridge.store.records import Delivery as DeliveryRecord
from voxgate.bridge.store.records import Subscription
from voxgate.errors import ApiError
from voxgate.redact import redact_url

router = APIRouter(prefix="/v1", tags=["webhooks"], responses=ERROR_RESPONSES)


def webhook_json(sub: Subscription, *, with_secret: bool = False) -> dict[str, Any]:
    body: dict[str, Any] = {
        "id": sub.id,
        "object": "webhook",
        "url": redact_url(sub.url),
        "events": list(sub.events),
        "created_at": iso(sub.created_at),
    }
    if with_secret:
        body["secret"] = sub.secret
    return body


def delivery_json(d: DeliveryRecord) -> dict[str, Any]:
    return {
        "id": d.id,
        "object": "delivery",
        "event_id": d.event_id,
        "event_type": d.event_type,
        "url": redact_url(d.url),
        "status": d.status,
        "attempts": d.attempts,
        "next_attempt_at": iso(d.next_attempt_at) if d.status == "pending" else None,
        "created_at": iso(d.created_at),
        "delivered_at": iso(d.delivered_at),
        "last_error": d.last_error,
        "last_status": d.last_status,
        "subscription_id": d.subscription_id,
        "call_id": d.call_id,
    }


def _page(page: Any, render: Any) -> JSONResponse:
    return JSONResponse(
        {
            "object": "list",
            "data": [render(item) for item in page.data],
            "next_cursor": cursor_text(page.next_cursor),
            "has_more": page.has_more,
        }
    )


@router.post("/webhooks", status_code=201, response_model=Webhook, summary="Subscribe")
async def create_webhook(body: WebhookCreate, key: Key, request: Request) -> Response:
    """Subscribe ``url`` to ``events`` (``["*"]``: all). The answer holds the signing
    secret, shown this once."""
    control = control_of(request)
    unknown = [e for e in body.events if e != ALL and e not in EVENT_TYPES]
    if unknown:
        raise ApiError(
            422,
            "invalid_request",
            f"events: unknown type {unknown[0][:40]!r}; known: {', '.join(EVENT_TYPES)}",
            field="events",
        )
    await vet_outgoing(control, body.url, "url")
    sub = Subscription(
        id=f"wh_{secrets.token_hex(8)}",
        url=body.url,
        events=tuple(dict.fromkeys(body.events)),
        secret="whsec_" + secrets.token_urlsafe(32),
        created_at=time.time(),
    )
    sub = await control.store.add_subscription(sub)
    control.ledger.subscriptions_changed()
    return JSONResponse(webhook_json(sub, with_secret=True), status_code=201)


@router.get("/webhooks", response_model=WebhookPage, summary="List subscriptions")
async def list_webhooks(
    key: Key,
    request: Request,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    cursor: Cursor = None,
) -> Response:
    store = control_of(request).store
    page = await store.list_subscriptions(limit=limit, before=parse_cursor(cursor))
    return _page(page, webhook_json)


@router.get("/webhooks/deliveries", response_model=DeliveryPage, summary="List deliveries")
async def list_deliveries(
    key: Key,
    request: Request,
    status: Annotated[str | None, Query(pattern="^(pending|delivered|dead)$")] = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    cursor: Cursor = None,
) -> Response:
    store = control_of(request).store
    page = await store.list_deliveries(status=status, limit=limit, before=parse_cursor(cursor))
    return _page(page, delivery_json)


@router.post(
    "/webhooks/deliveries/{delivery_id}/replay",
    status_code=202,
    response_model=Delivery,
    summary="Send a delivery again",
)
async def replay_delivery(delivery_id: str, key: Key, request: Request) -> Response:
    control = control_of(request)
    delivery = (
        await control.store.replay(delivery_id, now=time.time()) if len(delivery_id) <= 64 else None
    )
    if delivery is None:
        raise ApiError(404, "not_found", f"no delivery {delivery_id[:64]!r}")
    control.outbox.poke()
    return JSONResponse(delivery_json(delivery), status_code=202)


@router.delete("/webhooks/{webhook_id}", status_code=204, summary="Unsubscribe")
async def delete_webhook(webhook_id: str, key: Key, request: Request) -> Response:
    control = control_of(request)
    if len(webhook_id) > 64 or not await control.store.delete_subscription(webhook_id):
        raise ApiError(404, "not_found", f"no webhook {webhook_id[:64]!r}")
    control.ledger.subscriptions_changed()
    return Response(status_code=204)
