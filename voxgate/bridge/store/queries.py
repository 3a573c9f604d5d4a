"""The SQL both backends run, and the conversions between rows and records.

Statements use psycopg's named placeholders ``%(name)s``; the SQLite backend rewrites them
to ``:name``. Where the dialects differ, a :class:`~.schema.PerDialect` holds both side by
side. Every value is a parameter: the only text put together here is column names and
conditions taken from this module's own constants.

Every SELECT returns ``seq`` first, then the columns named in the table's ``*_COLUMNS``;
``*_from_row`` read such a row back into a record. Pages are newest first: ``seq < before``,
``ORDER BY seq DESC``, one row more than asked to tell whether there are more.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Final, Literal, TypeVar, cast

from voxgate.bridge.store.records import (
    FINAL_STATUSES,
    ApiKey,
    CallFilter,
    CallRecord,
    CallStatus,
    Delivery,
    IdempotentResponse,
    NumberRoute,
    Page,
    Subscription,
)
from voxgate.bridge.store.schema import PerDialect

Row = Sequence[Any]
Params = dict[str, Any]
T = TypeVar("T")
Action = Literal["auto_accept", "reject", "webhook"]  # NumberRoute.incoming_call_action

MAX_ERROR: Final = 1000  # characters of a delivery's last error kept


def _insert(table: str, columns: Sequence[str]) -> str:
    values = ", ".join(f"%({c})s" for c in columns)
    return f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({values})"


def _select(table: str, columns: Sequence[str]) -> str:
    return f"SELECT seq, {', '.join(columns)} FROM {table}"


def dumps(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"))


# --- pages ----------------------------------------------------------------------------


def paged(
    select: str, conditions: Sequence[str], params: Params, *, limit: int, before: int | None
) -> tuple[str, Params]:
    """``select`` narrowed by ``conditions`` (AND), newest first, ``limit`` + 1 rows."""
    if limit < 1:
        raise ValueError(f"a page holds at least one row, not {limit}")
    if before is not None:
        conditions, params = [*conditions, "seq < %(before)s"], {**params, "before": before}
    where = f" WHERE {' AND '.join(conditions)}" if conditions else ""
    return f"{select}{where} ORDER BY seq DESC LIMIT %(limit)s", {**params, "limit": limit + 1}


def page(rows: Sequence[Row], limit: int, decode: Callable[[Row], T]) -> Page[T]:
    more = len(rows) > limit
    return Page([decode(row) for row in rows[:limit]], rows[limit - 1][0] if more else None, more)


# --- settings -------------------------------------------------------------------------

GET_SETTING: Final = "SELECT value FROM settings WHERE name = %(name)s"
ADD_SETTING: Final = _insert("settings", ("name", "value")) + " ON CONFLICT (name) DO NOTHING"

# --- API keys -------------------------------------------------------------------------

KEY_COLUMNS: Final = ("id", "mode", "prefix", "secret_hash", "created_at", "revoked")
ADD_KEY: Final = _insert("api_keys", KEY_COLUMNS)
_KEY_SELECT: Final = f"SELECT {', '.join(KEY_COLUMNS)} FROM api_keys"  # no seq: not paged
KEY_BY_HASH: Final = f"{_KEY_SELECT} WHERE secret_hash = %(secret_hash)s"
LIST_KEYS: Final = f"{_KEY_SELECT} ORDER BY created_at, id"
REVOKE_KEY: Final = "UPDATE api_keys SET revoked = 1 WHERE id = %(id)s"


def key_params(key: ApiKey) -> Params:
    return {
        "id": key.id,
        "mode": key.mode,
        "prefix": key.prefix,
        "secret_hash": key.secret_hash,
        "created_at": key.created_at,
        "revoked": int(key.revoked),
    }


def key_from_row(row: Row) -> ApiKey:
    return ApiKey(row[0], row[1], row[2], row[3], row[4], revoked=bool(row[5]))


# --- calls ----------------------------------------------------------------------------

CALL_COLUMNS: Final = (
    "id",
    "mode",
    "direction",
    "status",
    "from_number",
    "to_number",
    "created_at",
    "owner",
    "data",
)
CALL_SELECT: Final = _select("calls", CALL_COLUMNS)
ADD_CALL: Final = _insert("calls", CALL_COLUMNS) + " RETURNING seq"
GET_CALL: Final = f"{CALL_SELECT} WHERE id = %(id)s"
SET_CALL: Final = (
    "UPDATE calls SET status = %(status)s, owner = %(owner)s, data = %(data)s WHERE id = %(id)s"
)
_FINAL: Final = ", ".join(f"'{status}'" for status in sorted(FINAL_STATUSES))  # constants
LIVE_CALLS: Final = (
    f"{CALL_SELECT} WHERE owner = %(owner)s AND status NOT IN ({_FINAL}) ORDER BY seq"
)

_CALL_FILTERS: Final = (  # CallFilter field, condition on its parameter of the same name
    ("status", "status = %(status)s"),
    ("direction", "direction = %(direction)s"),
    ("number", "(from_number = %(number)s OR to_number = %(number)s)"),
    ("created_after", "created_at >= %(created_after)s"),
    ("created_before", "created_at < %(created_before)s"),
    ("mode", "mode = %(mode)s"),
)
CALL_UPDATE_FIELDS: Final = frozenset({"status", "owner", "data"})


def list_calls(filters: CallFilter, *, limit: int, before: int | None) -> tuple[str, Params]:
    params = {
        name: getattr(filters, name)
        for name, _ in _CALL_FILTERS
        if getattr(filters, name) is not None
    }
    conditions = [condition for name, condition in _CALL_FILTERS if name in params]
    return paged(CALL_SELECT, conditions, params, limit=limit, before=before)


def call_params(call: CallRecord) -> Params:
    return {
        "id": call.id,
        "mode": call.mode,
        "direction": call.direction,
        "status": call.status,
        "from_number": call.from_number,
        "to_number": call.to_number,
        "created_at": call.created_at,
        "owner": call.owner,
        "data": dumps(dict(call.data)),
    }


def call_from_row(row: Row) -> CallRecord:
    return CallRecord(
        id=row[1],
        mode=row[2],
        direction=row[3],
        status=row[4],
        from_number=row[5],
        to_number=row[6],
        created_at=row[7],
        owner=row[8],
        seq=row[0],
        data=json.loads(row[9]),
    )


@dataclass(frozen=True, slots=True)
class CallUpdate:
    """Set ``status``/``owner`` if given; merge ``data`` (shallow: top-level keys replaced)."""

    call_id: str
    status: str | None = None
    owner: str | None = None
    data: Mapping[str, Any] = field(default_factory=dict)


def call_updates(updates: Sequence[tuple[str, Mapping[str, Any]]]) -> list[CallUpdate]:
    """The items of ``update_calls``; ValueError for a field that is not one."""
    for _, fields in updates:
        if unknown := fields.keys() - CALL_UPDATE_FIELDS:
            raise ValueError(f"a call update sets only {sorted(CALL_UPDATE_FIELDS)}, not {unknown}")
    return [
        CallUpdate(call_id, fields.get("status"), fields.get("owner"), fields.get("data") or {})
        for call_id, fields in updates
    ]


def updated_call(call: CallRecord, update: CallUpdate) -> CallRecord:
    return replace(
        call,
        status=call.status if update.status is None else cast(CallStatus, update.status),
        owner=call.owner if update.owner is None else update.owner,
        data={**call.data, **update.data},
    )


def apply_call_updates(
    calls: Sequence[CallRecord], updates: Sequence[CallUpdate]
) -> dict[str, CallRecord]:
    """The ``calls`` that ``updates`` change, by id, after all of them in order; an update
    of a call not in ``calls`` (there is no such call) is skipped."""
    current = {call.id: call for call in calls}
    changed: dict[str, CallRecord] = {}
    for update in updates:
        if (call := current.get(update.call_id)) is not None:
            current[call.id] = changed[call.id] = updated_call(call, update)
    return changed


def set_call_params(call: CallRecord) -> Params:
    return {"id": call.id, "status": call.status, "owner": call.owner, "data": dumps(call.data)}


# --- numbers --------------------------------------------------------------------------

NUMBER_COLUMNS: Final = (
    "id",
    "number",
    "incoming_call_action",
    "settings",
    "created_at",
    "updated_at",
)
NUMBER_SELECT: Final = _select("numbers", NUMBER_COLUMNS)
ADD_NUMBER: Final = _insert("numbers", NUMBER_COLUMNS) + " RETURNING seq"
GET_NUMBER: Final = f"{NUMBER_SELECT} WHERE id = %(id)s"
GET_NUMBER_TO_UPDATE: Final = PerDialect(sqlite=GET_NUMBER, postgres=f"{GET_NUMBER} FOR UPDATE")
NUMBER_BY_CALLED: Final = f"{NUMBER_SELECT} WHERE number = %(number)s"
SET_NUMBER: Final = (
    "UPDATE numbers SET incoming_call_action = %(incoming_call_action)s,"
    " settings = %(settings)s, updated_at = %(updated_at)s WHERE id = %(id)s"
)
DELETE_NUMBER: Final = "DELETE FROM numbers WHERE id = %(id)s"


def number_params(route: NumberRoute) -> Params:
    return {
        "id": route.id,
        "number": route.number,
        "incoming_call_action": route.incoming_call_action,
        "settings": dumps(dict(route.settings)),
        "created_at": route.created_at,
        "updated_at": route.updated_at,
    }


def number_from_row(row: Row) -> NumberRoute:
    return NumberRoute(
        id=row[1],
        number=row[2],
        incoming_call_action=row[3],
        settings=json.loads(row[4]),
        created_at=row[5],
        updated_at=row[6],
        seq=row[0],
    )


def updated_number(
    route: NumberRoute,
    action: str | None,
    settings: Mapping[str, Any] | None,
    updated_at: float,
) -> NumberRoute:
    """``route`` with ``action`` set if given and ``settings`` merged (None removes a key)."""
    merged = {**route.settings, **(settings or {})}
    return replace(
        route,
        incoming_call_action=route.incoming_call_action if action is None else cast(Action, action),
        settings={name: value for name, value in merged.items() if value is not None},
        updated_at=updated_at,
    )


# --- webhook subscriptions ------------------------------------------------------------

SUBSCRIPTION_COLUMNS: Final = ("id", "url", "events", "secret", "created_at")
SUBSCRIPTION_SELECT: Final = _select("subscriptions", SUBSCRIPTION_COLUMNS)
ADD_SUBSCRIPTION: Final = _insert("subscriptions", SUBSCRIPTION_COLUMNS) + " RETURNING seq"
GET_SUBSCRIPTION: Final = f"{SUBSCRIPTION_SELECT} WHERE id = %(id)s"
ALL_SUBSCRIPTIONS: Final = f"{SUBSCRIPTION_SELECT} ORDER BY seq"
DELETE_SUBSCRIPTION: Final = "DELETE FROM subscriptions WHERE id = %(id)s"


def subscription_params(sub: Subscription) -> Params:
    return {
        "id": sub.id,
        "url": sub.url,
        "events": dumps(list(sub.events)),
        "secret": sub.secret,
        "created_at": sub.created_at,
    }


def subscription_from_row(row: Row) -> Subscription:
    return Subscription(row[1], row[2], tuple(json.loads(row[3])), row[4], row[5], seq=row[0])


def subscribed(subs: Sequence[Subscription], event_type: str) -> list[Subscription]:
    """The subscriptions (few: one per webhook endpoint) that take ``event_type``."""
    return [sub for sub in subs if event_type in sub.events or "*" in sub.events]


# --- the webhook outbox ---------------------------------------------------------------

DELIVERY_COLUMNS: Final = (
    "id",
    "url",
    "secret",
    "event_id",
    "event_type",
    "body",
    "status",
    "attempts",
    "next_attempt_at",
    "created_at",
    "subscription_id",
    "call_id",
    "last_error",
    "last_status",
    "delivered_at",
)
DELIVERY_SELECT: Final = _select("deliveries", DELIVERY_COLUMNS)
_RETURNING_DELIVERY: Final = f" RETURNING seq, {', '.join(DELIVERY_COLUMNS)}"
ADD_DELIVERY: Final = _insert("deliveries", DELIVERY_COLUMNS)
GET_DELIVERY: Final = f"{DELIVERY_SELECT} WHERE id = %(id)s"
_DUE: Final = (
    "SELECT seq FROM deliveries WHERE status = 'pending' AND next_attempt_at <= %(now)s"
    " AND leased_until <= %(now)s ORDER BY next_attempt_at, seq LIMIT %(limit)s"
)
_LEASE: Final = "UPDATE deliveries SET leased_until = %(until)s, lease_owner = %(worker)s"
CLAIM_DUE: Final = PerDialect(
    # One writer at a time holds the database (BEGIN IMMEDIATE): the pick is atomic.
    sqlite=f"{_LEASE} WHERE seq IN ({_DUE}){_RETURNING_DELIVERY}",
    # A row another node is claiming right now is skipped, not waited for; one it has
    # just claimed fails the re-checked condition (its lease is in the future).
    postgres=f"{_LEASE} WHERE seq IN ({_DUE} FOR UPDATE SKIP LOCKED){_RETURNING_DELIVERY}",
)
_UNLEASE: Final = "leased_until = 0, lease_owner = ''"
DELIVERED: Final = (
    "UPDATE deliveries SET status = 'delivered', attempts = attempts + 1,"
    f" delivered_at = %(at)s, last_status = %(last_status)s, {_UNLEASE} WHERE id = %(id)s"
)
FAILED: Final = (
    "UPDATE deliveries SET status = %(status)s, attempts = attempts + 1,"
    " next_attempt_at = COALESCE(%(next_attempt_at)s, next_attempt_at),"
    f" last_error = %(error)s, last_status = %(last_status)s, {_UNLEASE} WHERE id = %(id)s"
)
REPLAY: Final = (
    "UPDATE deliveries SET status = 'pending', next_attempt_at = %(now)s, delivered_at = NULL,"
    f" {_UNLEASE} WHERE id = %(id)s{_RETURNING_DELIVERY}"
)
PENDING_COUNT: Final = "SELECT COUNT(*) FROM deliveries WHERE status = 'pending'"
RELEASE_LEASES: Final = (
    "UPDATE deliveries SET leased_until = 0, lease_owner = ''"
    " WHERE lease_owner = %(worker)s AND status = 'pending'"
)


def list_deliveries(status: str | None, *, limit: int, before: int | None) -> tuple[str, Params]:
    conditions, params = (["status = %(status)s"], {"status": status}) if status else ([], {})
    return paged(DELIVERY_SELECT, conditions, params, limit=limit, before=before)


def delivery_params(delivery: Delivery) -> Params:
    params = {name: getattr(delivery, name) for name in DELIVERY_COLUMNS}
    params["status"] = "pending"  # enqueue: the outbox starts every delivery pending
    return params


def failed_params(
    delivery_id: str, next_attempt_at: float | None, error: str, status: int | None
) -> Params:
    return {
        "id": delivery_id,
        "status": "dead" if next_attempt_at is None else "pending",
        "next_attempt_at": next_attempt_at,
        "error": error[:MAX_ERROR],
        "last_status": status,
    }


def delivery_from_row(row: Row) -> Delivery:
    return Delivery(**dict(zip(DELIVERY_COLUMNS, row[1:], strict=True)), seq=row[0])


# --- idempotency ----------------------------------------------------------------------

IDEMPOTENCY_COLUMNS: Final = (
    "key_id",
    "idem_key",
    "status",
    "body",
    "request_hash",
    "created_at",
)
GET_IDEMPOTENT: Final = (
    "SELECT status, body, request_hash, created_at FROM idempotency"
    " WHERE key_id = %(key_id)s AND idem_key = %(idem_key)s"
)
PUT_IDEMPOTENT: Final = (
    _insert("idempotency", IDEMPOTENCY_COLUMNS) + " ON CONFLICT (key_id, idem_key) DO NOTHING"
)


def idempotent_params(key_id: str, idem_key: str, response: IdempotentResponse) -> Params:
    return {
        "key_id": key_id,
        "idem_key": idem_key,
        "status": response.status,
        "body": response.body,
        "request_hash": response.request_hash,
        "created_at": response.created_at,
    }


def idempotent_from_row(row: Row) -> IdempotentResponse:
    return IdempotentResponse(row[0], row[1], row[2], row[3])
