"""The REST API's request and response bodies (pydantic), from which /openapi.json is made.

Requests are strict about unknown fields (a typo is an error naming the field, not a
silently ignored setting). The AI-voicebot dial APIs' field names are accepted as
documented aliases: ``customer_no`` for ``to``, ``caller_id`` for ``from``.
"""

from __future__ import annotations

from typing import Any, Final, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from voxgate.bridge.store.records import CALL_STATUSES

PARTY: Final = r"^[+A-Za-z0-9._@:*#-]+$"  # a number, or a SIP URI's user@host
Dialect = Literal["voxgate.v1", "v1", "twilio", "telnyx"]
Action = Literal["auto_accept", "reject", "webhook"]
StatusName = Literal[
    "queued", "ringing", "in-progress", "completed", "busy", "no-answer", "failed", "canceled"
]
assert set(CALL_STATUSES) == set(StatusName.__args__)  # type: ignore[attr-defined]


def _party(**options: Any) -> Any:
    """A phone number or SIP URI field (optional: a model check says which are needed)."""
    return Field(None, min_length=1, max_length=64, pattern=PARTY, **options)


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)


# --- errors -------------------------------------------------------------------------------


class ErrorDetail(BaseModel):
    code: str
    message: str
    field: str | None = None


class ErrorBody(BaseModel):
    error: ErrorDetail


# --- calls --------------------------------------------------------------------------------


class DigitPress(Strict):
    at: float = Field(ge=0, le=3600, description="seconds after the answer")
    digit: str = Field(pattern=r"^[0-9A-Da-d*#]$")


class SimulatedCallee(Strict):
    """What the simulated callee of a test-key call does (ignored for live keys)."""

    outcome: Literal["answer", "busy", "no-answer", "fail"] = "answer"
    ring: float = Field(1.0, ge=0, le=60, description="seconds of ringing")
    prompt: Literal["tones", "speech", "silence"] = Field(
        "tones", description="what the callee says when it answers"
    )
    prompt_audio: str | None = Field(
        None, max_length=400_000, description="base64 mu-law 8 kHz said instead of prompt"
    )
    prompt_at: float = Field(0.0, ge=0, le=3600, description="seconds after the answer")
    digits: str | list[DigitPress] = Field(
        "", description='"12#": one digit every digit_interval s from digits_at; or presses'
    )
    digits_at: float = Field(1.0, ge=0, le=3600)
    digit_interval: float = Field(1.0, gt=0, le=60)
    digit_ms: int = Field(100, ge=20, le=5000)
    hangup_after: float | None = Field(
        5.0, gt=0, le=3600, description="seconds after the answer; null: wait for the call"
    )
    comfort_noise: bool = True
    seed: int = Field(0, ge=0, le=2**32 - 1)


class BotSettings(Strict):
    wss_url: str | None = Field(None, max_length=2048, pattern=r"^wss?://")
    wss_header: str | dict[str, str] | None = Field(
        None, description="'Name: value' lines or an object; never shown back"
    )
    bot_dialect: Dialect | None = None
    bot_audio: str | None = Field(None, max_length=32, examples=["pcmu/8000", "l16/16000"])


class CallCreate(BotSettings):
    model_config = ConfigDict(
        extra="forbid",
        populate_by_name=True,
        json_schema_extra={"anyOf": [{"required": ["to"]}, {"required": ["customer_no"]}]},
    )

    to: str | None = _party()
    customer_no: str | None = _party(description="alias of to")
    from_: str | None = _party(alias="from")
    caller_id: str | None = _party(description="alias of from")
    connect_ws_after_answer: Literal[0, 1] | bool | None = None
    system_msg: str | None = Field(None, max_length=65536)
    text: str | None = Field(None, max_length=4096, description="the bot's opening line")
    custom_parameters: dict[str, str] | None = None
    webhook_url: str | None = Field(None, max_length=2048, pattern=r"^https?://")
    record: bool = False
    timeout: float = Field(30.0, gt=0, le=600, description="seconds to ring before giving up")
    simulated_callee: SimulatedCallee | None = None

    @model_validator(mode="after")
    def _one_callee(self) -> CallCreate:
        if self.to and self.customer_no and self.to != self.customer_no:
            raise ValueError("to: give to or customer_no, not both")
        if not (self.to or self.customer_no):
            raise ValueError("to: is required (or customer_no)")
        if self.from_ and self.caller_id and self.from_ != self.caller_id:
            raise ValueError("from: give from or caller_id, not both")
        if self.custom_parameters is not None and len(self.custom_parameters) > 64:
            raise ValueError("custom_parameters: at most 64 entries")
        return self

    @property
    def callee(self) -> str:
        return self.to or self.customer_no or ""

    @property
    def caller(self) -> str | None:
        return self.from_ or self.caller_id


class Call(BaseModel):
    id: str
    object: Literal["call"] = "call"
    status: StatusName
    direction: Literal["inbound", "outbound"]
    mode: Literal["test", "live"]
    from_: str = Field(alias="from")
    to: str
    created_at: str
    ringing_at: str | None = None
    answered_at: str | None = None
    ended_at: str | None = None
    duration: float | None = Field(None, description="seconds from answer to end")
    disposition: str | None = None
    hangup_cause: str | None = None
    hangup_side: str | None = None
    sip_call_id: str | None = None
    sip_final_code: int | None = None
    dtmf: str = ""
    quality: dict[str, Any] = Field(default_factory=dict)
    bot_url: str | None = Field(None, description="without secrets")
    bot_dialect: str | None = None
    carrier: str | None = None
    transfer_target: str | None = None
    record: bool = False
    custom_parameters: dict[str, str] = Field(default_factory=dict)

    model_config = ConfigDict(populate_by_name=True)


class CallPage(BaseModel):
    object: Literal["list"] = "list"
    data: list[Call]
    next_cursor: str | None
    has_more: bool


# --- live-call actions -----------------------------------------------------------------


class TransferBody(Strict):
    target: str = Field(min_length=1, max_length=256, description="a number or a SIP URI")


class DtmfBody(Strict):
    digits: str = Field(min_length=1, max_length=64, pattern=r"^[0-9A-Da-d*#]+$")


class PlayBody(Strict):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"oneOf": [{"required": ["url"]}, {"required": ["audio_base64"]}]},
    )

    url: str | None = Field(None, max_length=2048, pattern=r"^https?://")
    audio_base64: str | None = Field(None, max_length=14_000_000)
    format: Literal["wav", "mulaw", "alaw", "pcm16"] = Field(
        "wav", description="of audio_base64 (or of url when it is not a WAV)"
    )
    sample_rate: Literal[8000, 16000, 24000] = Field(8000, description="for mulaw/alaw/pcm16")
    barge_in: bool = Field(False, description="clear what is playing first")

    @model_validator(mode="after")
    def _one_source(self) -> PlayBody:
        if (self.url is None) == (self.audio_base64 is None):
            raise ValueError("url: give exactly one of url or audio_base64")
        return self


class BotSwap(BotSettings):
    wss_url: str = Field(max_length=2048, pattern=r"^wss?://")


class ActionResult(BaseModel):
    id: str
    action: str
    status: Literal["accepted"] = "accepted"


# --- numbers --------------------------------------------------------------------------------


class NumberCreate(BotSettings):
    number: str = Field(min_length=1, max_length=64, pattern=PARTY)
    incoming_call_action: Action = "auto_accept"
    connect_ws_after_answer: Literal[0, 1] | bool | None = None
    webhook_url: str | None = Field(None, max_length=2048, pattern=r"^https?://")
    record: bool = False
    system_msg: str | None = Field(None, max_length=65536)
    text: str | None = Field(None, max_length=4096)


class NumberUpdate(BotSettings):
    incoming_call_action: Action | None = None
    connect_ws_after_answer: Literal[0, 1] | bool | None = None
    webhook_url: str | None = Field(None, max_length=2048, pattern=r"^https?://")
    record: bool | None = None
    system_msg: str | None = Field(None, max_length=65536)
    text: str | None = Field(None, max_length=4096)


class Number(BaseModel):
    id: str
    object: Literal["number"] = "number"
    number: str
    incoming_call_action: Action
    wss_url: str | None = None
    wss_header_set: bool = False
    bot_dialect: str | None = None
    bot_audio: str | None = None
    connect_ws_after_answer: int | None = None
    webhook_url: str | None = None
    record: bool = False
    system_msg: str | None = None
    text: str | None = None
    created_at: str
    updated_at: str


class NumberPage(BaseModel):
    object: Literal["list"] = "list"
    data: list[Number]
    next_cursor: str | None
    has_more: bool


# --- webhooks ---------------------------------------------------------------------------------


class WebhookCreate(Strict):
    url: str = Field(max_length=2048, pattern=r"^https?://")
    events: list[str] = Field(default_factory=lambda: ["*"], min_length=1, max_length=32)


class Webhook(BaseModel):
    id: str
    object: Literal["webhook"] = "webhook"
    url: str
    events: list[str]
    created_at: str
    secret: str | None = Field(None, description="shown once, when the webhook is created")


class WebhookPage(BaseModel):
    object: Literal["list"] = "list"
    data: list[Webhook]
    next_cursor: str | None
    has_more: bool


class Delivery(BaseModel):
    id: str
    object: Literal["delivery"] = "delivery"
    event_id: str
    event_type: str
    url: str
    status: Literal["pending", "delivered", "dead"]
    attempts: int
    next_attempt_at: str | None
    created_at: str
    delivered_at: str | None = None
    last_error: str = ""
    last_status: int | None = None
    subscription_id: str | None = None
    call_id: str | None = None


class DeliveryPage(BaseModel):
    object: Literal["list"] = "list"
    data: list[Delivery]
    next_cursor: str | None
    has_more: bool


class Health(BaseModel):
    status: str
    version: str
    calls: int
