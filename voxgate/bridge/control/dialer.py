"""Placing the calls of ``POST /v1/calls``: a test key's to the simulated callee, a live
key's through the SIP trunk; and following them until they end.

A call is recorded ``queued`` before the API answers; its progress (``ringing``,
``in-progress``, or ``busy``/``no-answer``/``failed``/``canceled`` when it is never
answered) is written by the ledger as it happens, with the matching webhook events
(``call.ringing``, ``call.answered``, ``call.failed``). Once answered, the call is
followed by the plane like any other (``call.completed`` at its end).
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Mapping
from dataclasses import replace
from typing import TYPE_CHECKING, Any, Final

from voxgate.bridge.aio.botaddr import BotAddressRefused, VettedTarget, vet_bot_url
from voxgate.bridge.aio.simleg import simulated_started, start_simulated_call
from voxgate.bridge.botlink.dialects import canonical_bot_dialect
from voxgate.bridge.control.models import CallCreate
from voxgate.bridge.control.ssrf import WebhookAddressRefused, vet_webhook_url
from voxgate.bridge.simcallee import CalleeScript
from voxgate.bridge.store.records import ApiKey, CallRecord
from voxgate.codecs.formats import AudioFormat
from voxgate.config import parse_header_lines
from voxgate.errors import ApiError, ConfigError, UnsupportedFormatError
from voxgate.redact import redact_url

if TYPE_CHECKING:
    from voxgate.bridge.control.plane import ControlPlane

log = logging.getLogger("voxgate.control")

UNANSWERED: Final = {"busy": "busy", "no-answer": "no-answer", "failed": "failed"}


def new_call_id() -> str:
    return f"vx-{uuid.uuid4().hex[:20]}"


async def bot_parameters(
    control: ControlPlane, settings: Mapping[str, Any], *, field_prefix: str = ""
) -> dict[str, str]:
    """A request's bot settings as a call's custom parameters, each checked (422 names the
    field): the URL's address against ``bot.allow`` and ``bot.private_targets``."""
    params: dict[str, str] = {}
    url = settings.get("wss_url")
    if url:
        bot = control.config.bot
        try:
            await vet_bot_url(
                url, allow=bot.allow, private_allowed=control.private_allowed(bot.private_targets)
            )
        except BotAddressRefused as error:
            raise ApiError(
                422, "bot_not_allowed", str(error), field=f"{field_prefix}wss_url"
            ) from None
        params["wss_url"] = url
    header = settings.get("wss_header")
    if header:
        text = (
            header if isinstance(header, str) else "\n".join(f"{k}: {v}" for k, v in header.items())
        )
        try:
            parse_header_lines(text)
        except ConfigError:
            raise ApiError(
                422,
                "invalid_request",
                "wss_header: not valid 'Name: value' lines",
                field=f"{field_prefix}wss_header",
            ) from None
        params["wss_header"] = text
    for name, check in (("bot_dialect", canonical_bot_dialect), ("bot_audio", AudioFormat.parse)):
        value = settings.get(name)
        if value:
            try:
                check(value)
            except (ConfigError, UnsupportedFormatError, ValueError) as error:
                raise ApiError(
                    422, "invalid_request", f"{name}: {error}", field=f"{field_prefix}{name}"
                ) from None
            params[name] = str(value)
    return params


async def vet_outgoing(control: ControlPlane, url: str, field: str) -> VettedTarget:
    """The address to reach ``url`` at; 422 naming ``field`` when it may not be reached
    (``webhooks.private_targets``)."""
    allowed = control.private_allowed(control.config.webhooks.private_targets)
    try:
        return await vet_webhook_url(url, private_allowed=allowed)
    except WebhookAddressRefused as error:
        raise ApiError(422, "url_not_allowed", f"{field}: {error}", field=field) from None


async def place_call(control: ControlPlane, key: ApiKey, body: CallCreate) -> CallRecord:
    params = await bot_parameters(control, body.model_dump(exclude_none=True))
    if body.webhook_url:
        await vet_outgoing(control, body.webhook_url, "webhook_url")
    custom = {k: v for k, v in (body.custom_parameters or {}).items() if k not in params}
    caller = body.caller or control.config.sip.from_number or "voxgate"
    if key.mode == "live" and (control.bridge.sip is None or not control.config.sip.trunk):
        raise ApiError(
            503, "no_trunk", "live calls go out through sip.trunk: enable [sip] and set sip.trunk"
        )
    callee = callee_script(body) if key.mode == "test" else None
    now = time.time()
    record = CallRecord(
        id=new_call_id(),
        mode=key.mode,
        direction="outbound",
        status="queued",
        from_number=caller,
        to_number=body.callee,
        created_at=now,
        data={
            "bot_url": redact_url(params.get("wss_url") or control.config.bot.url or "echo"),
            "bot_dialect": params.get("bot_dialect") or control.config.bot.dialect,
            "carrier": "test" if key.mode == "test" else "sip",
            "record": body.record,
            "custom_parameters": custom,
            "webhook_url": body.webhook_url,
        },
    )
    record = await control.ledger.open_call(record, webhook_url=body.webhook_url)
    started = simulated_started(record.id, record.to_number, caller, {**custom, **params})
    if body.text or body.system_msg:
        started = replace(started, opening_text=body.text, system_prompt=body.system_msg)
    if callee is not None:
        control.track(follow_test_call(control, record.id, started, callee), call_id=record.id)
    else:
        control.track(
            follow_sip_call(control, record.id, body, {**custom, **params}), call_id=record.id
        )
    return record


def callee_script(body: CallCreate) -> CalleeScript:
    script = body.simulated_callee
    try:
        return CalleeScript.from_dict(script.model_dump(exclude_unset=True) if script else {})
    except ValueError as error:
        field = "simulated_callee." + str(error).split(":", 1)[0]
        raise ApiError(422, "invalid_request", f"simulated_callee.{error}", field=field) from None


async def follow_test_call(control: ControlPlane, call_id: str, started: Any, script: Any) -> None:
    def on_status(status: str, info: Mapping[str, object]) -> None:
        progress(control, call_id, status, info)

    try:
        await start_simulated_call(
            control.bridge,
            call_id=call_id,
            started=started,
            script=script,
            on_status=on_status,
            on_ended=None,
        )
    except asyncio.CancelledError:
        if not _answered(control, call_id):
            progress(control, call_id, "canceled", {"reason": "canceled"})
        raise


def _answered(control: ControlPlane, call_id: str) -> bool:
    live = control.ledger.live.get(call_id)
    return live is None or live.record.status == "in-progress"


def progress(control: ControlPlane, call_id: str, status: str, info: Mapping[str, object]) -> None:
    """A placed call's progress before and at its answer, told by its leg."""
    now = time.time()
    ledger = control.ledger
    if status == "ringing":
        ledger.change(call_id, status="ringing", ringing_at=now)
        ledger.event(call_id, "call.ringing")
    elif status == "in-progress":
        ledger.change(call_id, status="in-progress", answered_at=now)
        ledger.event(call_id, "call.answered")
    elif status in UNANSWERED or status == "canceled":
        reason = str(info.get("reason") or status)
        record = ledger.change(
            call_id,
            status=status,
            ended_at=now,
            hangup_cause=reason,
            disposition=status,
            hangup_side="callee" if status in ("busy", "no-answer") else "voxgate",
            sip_final_code=info.get("sip_code"),
        )
        if record is not None:
            ledger.event(call_id, "call.failed", {"reason": reason}, record=record)


async def follow_sip_call(
    control: ControlPlane, call_id: str, body: CallCreate, params: dict[str, str]
) -> None:
    """Dial through the trunk; the call's progress and, when it is never answered, its
    outcome (busy, no-answer, failed; canceled by the API while it rang)."""
    sip = control.bridge.sip
    assert sip is not None
    try:
        result = await sip.dial(
            body.callee,
            ring_timeout=body.timeout,
            call_id=call_id,
            custom_parameters=params,
            on_progress=lambda status: progress(control, call_id, status, {}),
        )
    except (OSError, ConfigError) as error:
        progress(control, call_id, "failed", {"reason": f"trunk unreachable: {error}"})
        return
    except asyncio.CancelledError:
        if not _answered(control, call_id):
            progress(control, call_id, "canceled", {"reason": "canceled"})
        raise
    if not result.answered:
        info = {"reason": result.reason, "sip_code": result.sip_status}
        progress(control, call_id, result.status, info)
