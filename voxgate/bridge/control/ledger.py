"""The call ledger: what happens to calls, written to the store and told to listeners.

Theory of operation
-------------------
The media path never waits for the database. Everything a call reports (a status, a
digit, its end) becomes a change in memory at once (the live call's record, held here
while the call lives on this worker) and an entry in a bounded queue; a flusher task
writes the queue in batches, every :data:`FLUSH_EVERY` seconds or sooner when the queue
fills past :data:`FLUSH_AT`: new calls first, then the batch's record updates and its
webhook deliveries in one transaction, so a webhook never announces what a read of the
call would not show, and a crash never keeps a change without its events.

Each event is published to the live event bus (SSE) at once, and fanned out to the
webhook subscriptions for its type and to the call's own ``webhook_url`` in the batch;
the outbox worker is poked after every batch with deliveries.

Bounds: the queue holds :data:`MAX_QUEUED` entries; past it the oldest record updates
are merged (a call's later update carries all its fields) and, past that, events are
dropped and counted (``ledger_dropped``): a dead database must not grow memory.
A call created through the API is inserted before the API answers (awaited), so
``POST /v1/calls`` followed by ``GET`` always finds it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Final

from voxgate.bridge.control.bus import EventBus, LiveEvent
from voxgate.bridge.control.webhook_events import deliveries_for, iso_utc, new_event
from voxgate.bridge.store.api import Store
from voxgate.bridge.store.records import FINAL_STATUSES, CallRecord, Subscription
from voxgate.obs import METRICS

log = logging.getLogger("voxgate.control")

FLUSH_EVERY: Final = 0.05
FLUSH_AT: Final = 200
MAX_QUEUED: Final = 20_000
LAST_EVENTS: Final = frozenset({"call.completed", "call.failed"})  # a call's last word
SUBSCRIPTIONS_TTL: Final = 1.0  # seconds a subscription list is reused before a re-read


@dataclass(slots=True)
class LiveCall:
    record: CallRecord
    webhook_url: str | None = None
    dtmf: list[str] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class _Insert:
    record: CallRecord


@dataclass(frozen=True, slots=True)
class _Update:
    call_id: str
    changes: Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class _Event:
    event_id: str
    event_type: str
    body: str
    mode: str
    webhook_url: str | None
    call_id: str | None


class CallLedger:
    def __init__(
        self,
        store: Store,
        bus: EventBus,
        *,
        owner: str,
        webhook_secret: Callable[[], str],
        poke: Callable[[], None],
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.store = store
        self.bus = bus
        self.owner = owner
        self.live: dict[str, LiveCall] = {}
        self._secret = webhook_secret
        self._poke = poke
        self._clock = clock
        self._queue: list[_Insert | _Update | _Event] = []
        self._lock = asyncio.Lock()  # one batch written at a time, in order
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._subscriptions: dict[str, tuple[float, Sequence[Subscription]]] = {}

    # --- the life of a call ---------------------------------------------------------------

    def remember(self, record: CallRecord, webhook_url: str | None) -> None:
        """Follow a call that is in the store already (one a restart ended)."""
        self.live[record.id] = LiveCall(record, webhook_url)

    def begin(self, record: CallRecord, *, webhook_url: str | None) -> CallRecord:
        """A new call held here: inserted with the next batch, ``call.initiated`` announced."""
        record = replace(record, owner=self.owner)
        self.live[record.id] = LiveCall(record, webhook_url)
        self._put(_Insert(record))
        self.event(record.id, "call.initiated")
        return record

    async def open_call(self, record: CallRecord, *, webhook_url: str | None) -> CallRecord:
        """:meth:`begin`, written before returning (the API answers with what a read finds)."""
        record = self.begin(record, webhook_url=webhook_url)
        await self.flush()
        return record

    def change(self, call_id: str, *, status: str | None = None, **data: Any) -> CallRecord | None:
        """Record a change of a live call (queued); returns its record as it is now."""
        live = self.live.get(call_id)
        if live is None:
            return None
        changes: dict[str, Any] = {"data": data}
        record = replace(live.record, data={**live.record.data, **data})
        if status is not None:
            changes["status"] = status
            record = replace(record, status=status)  # type: ignore[arg-type]
            if status in FINAL_STATUSES:
                changes["owner"] = ""
                record = replace(record, owner="")
        live.record = record
        self._put(_Update(call_id, changes))
        return record

    def dtmf(self, call_id: str, digit: str, method: object) -> None:
        live = self.live.get(call_id)
        if live is None:
            return
        live.dtmf.append(digit)
        digits = "".join(live.dtmf)[-256:]
        self.change(call_id, dtmf=digits)
        self.event(call_id, "dtmf.received", {"digit": digit, "method": method}, record=live.record)

    def event(
        self,
        call_id: str,
        event_type: str,
        extra: Mapping[str, Any] | None = None,
        *,
        record: CallRecord | None = None,
    ) -> None:
        """Announce ``event_type`` about a call: SSE now, webhooks with the next batch."""
        live = self.live.get(call_id)
        record = record or (live.record if live is not None else None)
        if record is None:
            return
        data = {"call": call_json(record), **(extra or {})}
        event_id, body = new_event(event_type, data, now=self._clock())
        webhook_url = live.webhook_url if live is not None else None
        self.bus.publish(LiveEvent(event_id, event_type, call_id, body), record.mode)
        self._put(_Event(event_id, event_type, body, record.mode, webhook_url, call_id))
        if event_type in LAST_EVENTS:
            self.live.pop(call_id, None)

    @property
    def queued(self) -> int:
        return len(self._queue)

    def webhook_of(self, call_id: str) -> str | None:
        live = self.live.get(call_id)
        return live.webhook_url if live is not None else None

    # --- the flusher ----------------------------------------------------------------------

    def start(self) -> None:
        self._task = asyncio.create_task(self._run())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        await self.flush()

    def _put(self, item: _Insert | _Update | _Event) -> None:
        if len(self._queue) >= MAX_QUEUED:
            METRICS.count("ledger_dropped", kind="event" if isinstance(item, _Event) else "update")
            log.error("call ledger queue full: the store is not keeping up; dropped an entry")
            return
        self._queue.append(item)
        if len(self._queue) >= FLUSH_AT:
            self._wake.set()

    async def _run(self) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), FLUSH_EVERY)
            self._wake.clear()
            try:
                await self.flush()
            except Exception:
                METRICS.count("errors", kind="store")
                log.exception("writing the call ledger failed; will retry")
                await asyncio.sleep(1.0)

    async def flush(self) -> None:
        """Write what is queued: record updates first, then the webhook deliveries."""
        async with self._lock:
            if not self._queue:
                return
            batch, self._queue = self._queue, []
            try:
                await self._write(batch)
            except BaseException:
                self._queue[:0] = batch  # kept, in order, for the next try
                raise

    async def _write(self, batch: list[_Insert | _Update | _Event]) -> None:
        for item in batch:
            if isinstance(item, _Insert):
                with contextlib.suppress(KeyError):  # written by an earlier try of this batch
                    await self.store.add_call(item.record)
        updates = [(u.call_id, u.changes) for u in batch if isinstance(u, _Update)]
        deliveries = []
        now = self._clock()
        secret = self._secret()
        for item in batch:
            if not isinstance(item, _Event):
                continue
            extra = [(item.webhook_url, secret)] if item.webhook_url else []
            subscriptions = await self._subscribed(item.event_type, now)
            deliveries += deliveries_for(
                item.event_id,
                item.event_type,
                item.body,
                now=now,
                subscriptions=subscriptions,
                extra_urls=extra,
                call_id=item.call_id,
            )
        await self.store.update_calls(_merged(updates), deliveries)
        if deliveries:
            METRICS.count("webhooks_enqueued", len(deliveries))
            self._poke()

    async def _subscribed(self, event_type: str, now: float) -> Sequence[Subscription]:
        cached = self._subscriptions.get(event_type)
        if cached is not None and now - cached[0] < SUBSCRIPTIONS_TTL:
            return cached[1]
        subscriptions = await self.store.subscriptions_for(event_type)
        self._subscriptions[event_type] = (now, subscriptions)
        return subscriptions

    def subscriptions_changed(self) -> None:
        self._subscriptions.clear()


def _merged(updates: list[tuple[str, Mapping[str, Any]]]) -> list[tuple[str, Mapping[str, Any]]]:
    """One update per call, in the order calls first appear; later fields win."""
    merged: dict[str, dict[str, Any]] = {}
    for call_id, changes in updates:
        into = merged.setdefault(call_id, {})
        for name, value in changes.items():
            if name == "data":
                into["data"] = {**into.get("data", {}), **value}
            else:
                into[name] = value
    return list(merged.items())


TIME_FIELDS: Final = ("ringing_at", "answered_at", "ended_at")


def iso(when: float | None) -> str | None:
    return None if when is None else iso_utc(when)


def call_json(record: CallRecord) -> dict[str, Any]:
    """A call as the API shows it (the ``Call`` model's fields)."""
    data = dict(record.data)
    body: dict[str, Any] = {
        "id": record.id,
        "object": "call",
        "status": record.status,
        "direction": record.direction,
        "mode": record.mode,
        "from": record.from_number,
        "to": record.to_number,
        "created_at": iso(record.created_at),
    }
    for name in TIME_FIELDS:
        value = data.pop(name, None)
        body[name] = iso(value) if isinstance(value, int | float) else None
    for name in (
        "duration",
        "disposition",
        "hangup_cause",
        "hangup_side",
        "sip_call_id",
        "sip_final_code",
        "bot_url",
        "bot_dialect",
        "carrier",
        "transfer_target",
    ):
        body[name] = data.get(name)
    body["dtmf"] = data.get("dtmf", "")
    body["quality"] = data.get("quality", {})
    body["record"] = bool(data.get("record", False))
    body["custom_parameters"] = data.get("custom_parameters", {})
    return body
