"""The repository interface every backend implements (SQLite, PostgreSQL).

All methods are coroutines; a backend runs its blocking work off the event loop.
Pagination is newest first by ``seq`` (the store's insertion counter): ``before`` is the
``next_cursor`` of the previous page; rows inserted meanwhile have a larger ``seq`` and
never shift a page already being walked.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Protocol

from voxgate.bridge.store.feed import Feed
from voxgate.bridge.store.records import (
    ApiKey,
    CallFilter,
    CallRecord,
    Delivery,
    IdempotentResponse,
    NumberRoute,
    Page,
    Subscription,
)


class Store(Protocol):
    url: str  # redacted form, for logs

    async def open(self) -> None:
        """Connect and bring the schema to the newest version (migrations)."""

    async def close(self) -> None: ...

    async def schema_version(self) -> int: ...

    # --- settings (installation-wide values, e.g. the default webhook signing secret) ---
    async def get_setting(self, name: str) -> str | None: ...
    async def setdefault_setting(self, name: str, value: str) -> str:
        """Store ``value`` unless ``name`` has one already; return the stored value."""

    # --- API keys ---
    async def add_key(self, key: ApiKey) -> None: ...
    async def key_by_hash(self, secret_hash: str) -> ApiKey | None: ...
    async def list_keys(self) -> Sequence[ApiKey]: ...
    async def revoke_key(self, key_id: str) -> bool: ...

    # --- calls ---
    async def add_call(self, call: CallRecord) -> CallRecord:
        """Insert; returns the record with its ``seq``. Raises KeyError if the id exists."""

    async def update_call(
        self,
        call_id: str,
        *,
        status: str | None = None,
        owner: str | None = None,
        data: Mapping[str, Any] | None = None,
    ) -> CallRecord | None:
        """Set ``status``/``owner`` if given and merge ``data`` into the stored data
        (shallow: top-level keys replaced). None if there is no such call."""

    async def update_calls(
        self,
        updates: Sequence[tuple[str, Mapping[str, Any]]],
        deliveries: Sequence[Delivery] = (),
    ) -> None:
        """Many updates in one transaction (the media path's batched writes); each item is
        (call_id, {"status"?: ..., "owner"?: ..., "data"?: {...}}). ``deliveries`` are
        enqueued in the same transaction (a call's change and the webhooks announcing it
        are written together or not at all)."""

    async def get_call(self, call_id: str) -> CallRecord | None: ...
    async def list_calls(
        self, filters: CallFilter, *, limit: int, before: int | None = None
    ) -> Page[CallRecord]: ...
    async def live_calls_of(self, owner: str) -> Sequence[CallRecord]:
        """Calls not in a final status whose owner is ``owner`` (to fail them after a crash)."""

    # --- numbers ---
    async def add_number(self, route: NumberRoute) -> NumberRoute:
        """Raises KeyError if the number is routed already."""

    async def get_number(self, number_id: str) -> NumberRoute | None: ...
    async def number_by_called(self, number: str) -> NumberRoute | None: ...
    async def list_numbers(self, *, limit: int, before: int | None = None) -> Page[NumberRoute]: ...
    async def update_number(
        self,
        number_id: str,
        *,
        incoming_call_action: str | None = None,
        settings: Mapping[str, Any] | None = None,
        updated_at: float,
    ) -> NumberRoute | None:
        """Merge ``settings`` (a key set to None is removed)."""

    async def delete_number(self, number_id: str) -> bool: ...

    # --- webhook subscriptions ---
    async def add_subscription(self, sub: Subscription) -> Subscription: ...
    async def get_subscription(self, sub_id: str) -> Subscription | None: ...
    async def list_subscriptions(
        self, *, limit: int, before: int | None = None
    ) -> Page[Subscription]: ...
    async def subscriptions_for(self, event_type: str) -> Sequence[Subscription]:
        """Every subscription whose events include ``event_type`` or ``*``."""

    async def delete_subscription(self, sub_id: str) -> bool: ...

    # --- the webhook outbox ---
    async def enqueue(self, deliveries: Sequence[Delivery]) -> None:
        """Add deliveries in one transaction (status pending)."""

    async def claim_due(
        self, now: float, *, limit: int, lease: float, worker: str
    ) -> Sequence[Delivery]:
        """Pending deliveries due at ``now``, leased to ``worker`` until ``now + lease`` so no
        other worker or node takes them meanwhile (PostgreSQL: FOR UPDATE SKIP LOCKED).
        A lease that ran out (its worker died) makes the delivery claimable again."""

    async def delivered(self, delivery_id: str, *, at: float, status: int) -> None: ...
    async def failed(
        self,
        delivery_id: str,
        *,
        next_attempt_at: float | None,
        error: str,
        status: int | None,
    ) -> None:
        """Count a failed attempt: retry at ``next_attempt_at``, or dead when None."""

    async def get_delivery(self, delivery_id: str) -> Delivery | None: ...
    async def list_deliveries(
        self, *, status: str | None, limit: int, before: int | None = None
    ) -> Page[Delivery]: ...
    async def replay(self, delivery_id: str, *, now: float) -> Delivery | None:
        """Make a delivery pending again, due now (attempts kept). None if unknown."""

    async def pending_count(self) -> int: ...
    async def release_leases(self, worker: str) -> int:
        """Make the deliveries leased to ``worker`` claimable now (that worker restarted:
        what it had in flight when it stopped goes out again at once); how many."""

    # --- idempotency ---
    async def idempotent_get(self, key_id: str, idem_key: str) -> IdempotentResponse | None: ...
    async def idempotent_put(
        self, key_id: str, idem_key: str, response: IdempotentResponse
    ) -> IdempotentResponse:
        """Store unless present; return what is stored (first writer wins)."""

    # --- messages between nodes (PostgreSQL: LISTEN/NOTIFY; SQLite: within the process) ---
    async def notify(self, channel: str, payload: str) -> None:
        """Send ``payload`` (at most :data:`.feed.MAX_PAYLOAD` bytes) to the feeds listening
        on ``channel`` (``[a-z][a-z0-9_]*``), on every node. Delivered once committed; not
        stored: a listener that was not listening never sees it."""

    def listen(self, channel: str) -> Feed:
        """A feed of the payloads sent on ``channel`` from the moment it is ready
        (``await feed.ready()``, or ``async with store.listen(channel) as feed``).
        Close it with ``aclose``; :meth:`close` ends every feed."""
