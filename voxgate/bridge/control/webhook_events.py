"""Webhook events: the envelope, serialized once, and its fan-out to the outbox, sans I/O.

Theory of operation
-------------------
An event is made once and becomes one JSON text; that exact text is stored with every
delivery, signed and sent, so every receiver of an event gets the same bytes and the
same event id (a receiver drops duplicates by ``id``: delivery is at least once)::

    new_event(type, data, now) -> (event id, body)
    {"id": "evt_<hex>", "type": "call.answered", "created_at": "2026-12-01T11:28:01.123Z",
     "api_version": "v1", "data": {...}}

    deliveries_for(event id, type, body, now, subscriptions, extra_urls)
        -> one pending Delivery per subscription whose events hold the type (or "*"),
           and one per extra (url, secret) (a call's or number's own webhook_url),
           each due at once, attempts 0

``created_at`` is ISO 8601 / RFC 3339 section 5.6 in UTC with ``Z``, to the millisecond.
The body is compact JSON (RFC 8259) with non-ASCII characters kept as UTF-8.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, Final

from voxgate.bridge.store.records import Delivery, Subscription

API_VERSION: Final = "v1"
EVENT_TYPES: Final = (
    "call.initiated",
    "call.ringing",
    "call.answered",
    "call.completed",
    "call.failed",
    "dtmf.received",
    "call.transferred",
    "bot.connected",
    "bot.disconnected",
    "recording.ready",
    "transcript.ready",
)
ALL: Final = "*"  # a subscription to every event type

IdMaker = Callable[[str], str]
"""``prefix -> id``: ``"evt"`` gives ``"evt_<hex>"``, ``"dlv"`` gives ``"dlv_<hex>"``."""


def random_id(prefix: str) -> str:
    """A fresh id: the prefix, ``_`` and 96 random bits in hex."""
    return f"{prefix}_{secrets.token_hex(12)}"


def iso_utc(now: float) -> str:
    """``2026-12-01T11:28:01.123Z``."""
    moment = datetime.fromtimestamp(now, UTC)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def new_event(
    event_type: str, data: Mapping[str, Any], *, now: float, new_id: IdMaker = random_id
) -> tuple[str, str]:
    """``(event id, body)`` of a new event; ValueError for a type not in EVENT_TYPES or
    data that is not JSON."""
    if event_type not in EVENT_TYPES:
        raise ValueError(f"not a webhook event type: {event_type[:40]!r}")
    event_id = new_id("evt")
    envelope = {
        "id": event_id,
        "type": event_type,
        "created_at": iso_utc(now),
        "api_version": API_VERSION,
        "data": dict(data),
    }
    body = json.dumps(envelope, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
    return event_id, body


def subscribed(subscription: Subscription, event_type: str) -> bool:
    return event_type in subscription.events or ALL in subscription.events


def deliveries_for(
    event_id: str,
    event_type: str,
    body: str,
    *,
    now: float,
    subscriptions: Sequence[Subscription],
    extra_urls: Iterable[tuple[str, str]] = (),
    call_id: str | None = None,
    new_id: IdMaker = random_id,
) -> list[Delivery]:
    """The deliveries of one event (made by :func:`new_event`): one per subscription that
    wants ``event_type``, then one per ``(url, secret)`` in ``extra_urls``."""
    targets: list[tuple[str, str, str | None]] = [
        (s.url, s.secret, s.id) for s in subscriptions if subscribed(s, event_type)
    ]
    targets += [(url, secret, None) for url, secret in extra_urls]
    return [
        Delivery(
            id=new_id("dlv"),
            url=url,
            secret=secret,
            event_id=event_id,
            event_type=event_type,
            body=body,
            status="pending",
            attempts=0,
            next_attempt_at=now,
            created_at=now,
            subscription_id=subscription_id,
            call_id=call_id,
        )
        for url, secret, subscription_id in targets
    ]
