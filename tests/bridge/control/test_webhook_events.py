"""Webhook events: the envelope's exact text, and one delivery per receiver."""

from __future__ import annotations

import itertools
import json
import re
from collections.abc import Callable

import pytest

from voxgate.bridge.control.webhook_events import (
    API_VERSION,
    EVENT_TYPES,
    deliveries_for,
    iso_utc,
    new_event,
    random_id,
)
from voxgate.bridge.store.records import Subscription

NOW = 1_764_588_481.123456  # 2025-12-01T11:28:01.123Z


def counter() -> Callable[[str], str]:
    numbers = itertools.count(1)
    return lambda prefix: f"{prefix}_{next(numbers)}"


def sub(sub_id: str, events: tuple[str, ...], url: str = "") -> Subscription:
    return Subscription(
        id=sub_id,
        url=url or f"https://hooks.example.com/{sub_id}",
        events=events,
        secret=f"whsec_{sub_id}",
        created_at=0.0,
    )


def test_the_event_types() -> None:
    assert EVENT_TYPES == (
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
    assert len(set(EVENT_TYPES)) == len(EVENT_TYPES)


@pytest.mark.parametrize(
    ("now", "text"),
    [
        (0.0, "1970-01-01T00:00:00.000Z"),
        (NOW, "2025-12-01T11:28:01.123Z"),
        (1_764_588_481.9999, "2025-12-01T11:28:01.999Z"),  # truncated, never rounded up
        (951_782_400.5, "2000-02-29T00:00:00.500Z"),
    ],
)
def test_iso_utc(now: float, text: str) -> None:
    assert iso_utc(now) == text


def test_the_exact_body() -> None:
    event_id, body = new_event(
        "dtmf.received",
        {"call": {"id": "vx-1", "to": "+4930123"}, "digit": "5", "note": "caf\u00e9"},
        now=NOW,
        new_id=counter(),
    )
    assert event_id == "evt_1"
    assert body == (
        '{"id":"evt_1","type":"dtmf.received","created_at":"2025-12-01T11:28:01.123Z",'
        '"api_version":"v1","data":{"call":{"id":"vx-1","to":"+4930123"},"digit":"5",'
        '"note":"caf\u00e9"}}'
    )
    assert json.loads(body)["api_version"] == API_VERSION == "v1"


def test_default_ids_are_random_hex() -> None:
    first, _ = new_event("call.answered", {}, now=NOW)
    second, _ = new_event("call.answered", {}, now=NOW)
    assert re.fullmatch(r"evt_[0-9a-f]{24}", first)
    assert first != second
    assert re.fullmatch(r"dlv_[0-9a-f]{24}", random_id("dlv"))


@pytest.mark.parametrize("event_type", ["call.unknown", "", "*", "CALL.ANSWERED"])
def test_unknown_types_are_refused(event_type: str) -> None:
    with pytest.raises(ValueError, match="not a webhook event type"):
        new_event(event_type, {}, now=NOW)


def test_data_must_be_json() -> None:
    with pytest.raises(ValueError, match="JSON compliant"):
        new_event("call.answered", {"x": float("nan")}, now=NOW)
    with pytest.raises(TypeError):
        new_event("call.answered", {"x": object()}, now=NOW)


def test_one_delivery_per_matching_subscription_and_extra_url() -> None:
    ids = counter()
    event_id, body = new_event("call.answered", {"call": {"id": "vx-9"}}, now=NOW, new_id=ids)
    subscriptions = [
        sub("wh_all", ("*",)),
        sub("wh_answered", ("call.ringing", "call.answered")),
        sub("wh_other", ("call.completed",)),
        sub("wh_none", ()),
    ]
    deliveries = deliveries_for(
        event_id,
        "call.answered",
        body,
        now=NOW,
        subscriptions=subscriptions,
        extra_urls=[("https://call.example.com/hook?token=t", "whsec_install")],
        call_id="vx-9",
        new_id=ids,
    )
    assert [(d.id, d.url, d.secret, d.subscription_id) for d in deliveries] == [
        ("dlv_2", "https://hooks.example.com/wh_all", "whsec_wh_all", "wh_all"),
        ("dlv_3", "https://hooks.example.com/wh_answered", "whsec_wh_answered", "wh_answered"),
        ("dlv_4", "https://call.example.com/hook?token=t", "whsec_install", None),
    ]
    for delivery in deliveries:
        assert delivery.event_id == "evt_1"
        assert delivery.event_type == "call.answered"
        assert delivery.body == body  # the very same text for every receiver
        assert delivery.status == "pending"
        assert delivery.attempts == 0
        assert delivery.next_attempt_at == delivery.created_at == NOW
        assert delivery.call_id == "vx-9"
        assert delivery.delivered_at is None and delivery.last_status is None


def test_no_receiver_no_delivery() -> None:
    event_id, body = new_event("bot.connected", {}, now=NOW)
    subscriptions = [sub("wh_1", ("call.answered",))]
    assert deliveries_for(event_id, "bot.connected", body, now=NOW, subscriptions=[]) == []
    assert (
        deliveries_for(event_id, "bot.connected", body, now=NOW, subscriptions=subscriptions) == []
    )


def test_delivery_ids_are_unique_by_default() -> None:
    event_id, body = new_event("call.completed", {}, now=NOW)
    deliveries = deliveries_for(
        event_id,
        "call.completed",
        body,
        now=NOW,
        subscriptions=[sub(f"wh_{n}", ("*",)) for n in range(50)],
    )
    assert len({d.id for d in deliveries}) == 50
    assert all(d.call_id is None for d in deliveries)
