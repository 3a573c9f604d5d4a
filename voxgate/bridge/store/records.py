"""What the control plane keeps: API keys, calls, number routes, webhook subscriptions and
the webhook outbox, as plain frozen records. The backends (:mod:`.sqlite`, :mod:`.postgres`)
store and return these; nothing here touches a database.

Times are Unix seconds (float). ``data`` fields are JSON-ready dicts, stored as JSON text.
Ids are strings with a type prefix (``call_``/``vx-``, ``num_``, ``wh_``, ``dlv_``, ``key_``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final, Generic, Literal, TypeVar, get_args

KeyMode = Literal["test", "live"]

CallStatus = Literal[
    "queued", "ringing", "in-progress", "completed", "busy", "no-answer", "failed", "canceled"
]
CALL_STATUSES: Final[tuple[CallStatus, ...]] = get_args(CallStatus)
FINAL_STATUSES: Final[frozenset[str]] = frozenset(
    {"completed", "busy", "no-answer", "failed", "canceled"}
)

Direction = Literal["inbound", "outbound"]

DeliveryStatus = Literal["pending", "delivered", "dead"]

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class ApiKey:
    id: str  # "key_<hex>"
    mode: KeyMode
    prefix: str  # the first characters of the secret, to tell keys apart in listings
    secret_hash: str  # hex SHA-256 of the whole secret; the secret itself is never stored
    created_at: float
    revoked: bool = False


@dataclass(frozen=True, slots=True)
class CallRecord:
    """One call as the API shows it. ``data`` holds everything beyond the indexed columns
    (timings, parties, disposition, hangup cause/side, SIP call-id and final code, DTMF,
    quality, the bot URL with secrets removed, custom parameters ...)."""

    id: str
    mode: KeyMode
    direction: Direction
    status: CallStatus
    from_number: str
    to_number: str
    created_at: float
    owner: str = ""  # which node/worker holds the call while it is live ("" once final)
    seq: int = 0  # insertion order, assigned by the store (pagination key)
    data: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class CallFilter:
    status: str | None = None
    direction: str | None = None
    number: str | None = None  # matches from_number or to_number
    created_after: float | None = None  # inclusive
    created_before: float | None = None  # exclusive
    mode: KeyMode | None = None  # a key sees only calls of its own mode


@dataclass(frozen=True, slots=True)
class NumberRoute:
    """Routing for one called number. ``settings`` holds the bot settings
    (wss_url, wss_header, bot_dialect, bot_audio, connect_ws_after_answer, webhook_url,
    record ...); ``wss_header`` may hold secrets: the API never shows it back."""

    id: str
    number: str  # unique
    incoming_call_action: Literal["auto_accept", "reject", "webhook"]
    settings: Mapping[str, Any]
    created_at: float
    updated_at: float
    seq: int = 0


@dataclass(frozen=True, slots=True)
class Subscription:
    id: str
    url: str
    events: tuple[str, ...]  # event types; ("*",) for all
    secret: str  # HMAC key for X-Voxgate-Signature
    created_at: float
    seq: int = 0


@dataclass(frozen=True, slots=True)
class Delivery:
    """One webhook event to one URL, in the outbox until delivered or dead."""

    id: str
    url: str
    secret: str
    event_id: str
    event_type: str
    body: str  # the exact JSON text that is signed and sent
    status: DeliveryStatus
    attempts: int
    next_attempt_at: float
    created_at: float
    subscription_id: str | None = None  # None: a call's or number's own webhook_url
    call_id: str | None = None
    last_error: str = ""
    last_status: int | None = None
    delivered_at: float | None = None
    seq: int = 0


@dataclass(frozen=True, slots=True)
class Page(Generic[T]):
    data: Sequence[T]
    next_cursor: int | None  # pass as ``before`` to get the next page; None: no more
    has_more: bool


@dataclass(frozen=True, slots=True)
class IdempotentResponse:
    status: int
    body: str
    request_hash: str
    created_at: float
