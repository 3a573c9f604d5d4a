"""``/v1/calls``: place a call, list and read calls, act on a live call."""

from __future__ import annotations

import hashlib
import json
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Header, Path, Query, Request
from starlette.responses import JSONResponse, Response

from voxgate.bridge.control.actions import act
from voxgate.bridge.control.api import (
    ERROR_RESPONSES,
    Cursor,
    Key,
    control_of,
    cursor_text,
    parse_cursor,
)
from voxgate.bridge.control.dialer import place_call
from voxgate.bridge.control.ledger import call_json
from voxgate.bridge.control.models import (
    ActionResult,
    BotSwap,
    Call,
    CallCreate,
    CallPage,
    DtmfBody,
    PlayBody,
    StatusName,
    TransferBody,
)
from voxgate.bridge.control.plane import ControlPlane
from voxgate.bridge.store.records import ApiKey, CallFilter, IdempotentResponse
from voxgate.errors import ApiError

router = APIRouter(prefix="/v1", tags=["calls"], responses=ERROR_RESPONSES)

CallId = Annotated[str, Path(min_length=1, max_length=64, description="the call's id")]


@router.post("/calls", status_code=201, response_model=Call, summary="Place an outbound call")
async def create_call(
    body: CallCreate,
    key: Key,
    request: Request,
    idempotency_key: Annotated[str | None, Header(max_length=255)] = None,
) -> Response:
    """Call ``to`` and bridge the answered call to the bot (``wss_url``, else the route of
    ``to``, else the default bot). A test key's call goes to the simulated callee."""
    control = control_of(request)
    fingerprint = hashlib.sha256(body.model_dump_json().encode()).hexdigest()
    if idempotency_key:
        earlier = await control.store.idempotent_get(key.id, idempotency_key)
        if earlier is not None:
            return _replayed(earlier, fingerprint)
    record = await place_call(control, key, body)
    text = json.dumps(call_json(record))
    if idempotency_key:
        stored = await control.store.idempotent_put(
            key.id,
            idempotency_key,
            IdempotentResponse(201, text, fingerprint, record.created_at),
        )
        return _replayed(stored, fingerprint)
    return Response(text, status_code=201, media_type="application/json")


def _replayed(earlier: IdempotentResponse, fingerprint: str) -> Response:
    if earlier.request_hash != fingerprint:
        raise ApiError(
            422,
            "idempotency_key_reused",
            "this Idempotency-Key was used with another request body",
            field="Idempotency-Key",
        )
    return Response(earlier.body, status_code=earlier.status, media_type="application/json")


@router.get("/calls", response_model=CallPage, summary="List calls, newest first")
async def list_calls(
    *,
    key: Key,
    request: Request,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    cursor: Cursor = None,
    status: StatusName | None = None,
    direction: Annotated[str | None, Query(pattern="^(inbound|outbound)$")] = None,
    number: Annotated[str | None, Query(min_length=1, max_length=64)] = None,
    created_after: datetime | None = None,
    created_before: datetime | None = None,
) -> Response:
    control = control_of(request)
    filters = CallFilter(
        status=status,
        direction=direction,
        number=number,
        created_after=created_after.timestamp() if created_after else None,
        created_before=created_before.timestamp() if created_before else None,
        mode=key.mode,
    )
    page = await control.store.list_calls(filters, limit=limit, before=parse_cursor(cursor))
    body = {
        "object": "list",
        "data": [call_json(record) for record in page.data],
        "next_cursor": cursor_text(page.next_cursor),
        "has_more": page.has_more,
    }
    return JSONResponse(body)


@router.get("/calls/{call_id}", response_model=Call, summary="One call")
async def get_call(call_id: CallId, key: Key, request: Request) -> Response:
    record = await _record(control_of(request), key, call_id)
    return JSONResponse(call_json(record))


async def _record(control: ControlPlane, key: ApiKey, call_id: str) -> Any:
    record = await control.store.get_call(call_id) if len(call_id) <= 64 else None
    if record is None or record.mode != key.mode:
        raise ApiError(404, "not_found", f"no call {call_id[:64]!r}")
    return record


async def _act(request: Request, key: ApiKey, call_id: str, action: str, body: Any) -> Response:
    args = body.model_dump(exclude_none=True) if body is not None else {}
    outcome = await act(control_of(request), key.mode, call_id, action, args)
    return JSONResponse(outcome.body, status_code=outcome.status)


@router.post(
    "/calls/{call_id}/hangup",
    status_code=202,
    response_model=ActionResult,
    summary="Hang up a live call (or cancel one ringing)",
)
async def hangup(call_id: CallId, key: Key, request: Request) -> Response:
    """End a live call now (the bot gets ``stop`` with ``api_hangup``); a call still
    ringing is cancelled (``canceled``)."""
    return await _act(request, key, call_id, "hangup", None)


@router.post(
    "/calls/{call_id}/transfer",
    status_code=202,
    response_model=ActionResult,
    summary="Transfer a live call",
)
async def transfer(call_id: CallId, body: TransferBody, key: Key, request: Request) -> Response:
    """Transfer a live call to ``target`` once what is queued for the caller has played."""
    return await _act(request, key, call_id, "transfer", body)


@router.post(
    "/calls/{call_id}/dtmf",
    status_code=202,
    response_model=ActionResult,
    summary="Send DTMF to a live call",
)
async def dtmf(call_id: CallId, body: DtmfBody, key: Key, request: Request) -> Response:
    """Send keypresses to the caller's side (RFC 4733 events on SIP, tones otherwise)."""
    return await _act(request, key, call_id, "dtmf", body)


@router.post(
    "/calls/{call_id}/play",
    status_code=202,
    response_model=ActionResult,
    summary="Play audio to a live call",
)
async def play(call_id: CallId, body: PlayBody, key: Key, request: Request) -> Response:
    """Play audio to the caller (a URL, or base64 ``audio_base64``: WAV PCM16 at 8/16/24 kHz
    or raw mu-law/A-law/PCM16), after clearing what plays when ``barge_in``."""
    return await _act(request, key, call_id, "play", body)


@router.post(
    "/calls/{call_id}/bot",
    status_code=202,
    response_model=ActionResult,
    summary="Move a live call to another bot",
)
async def swap_bot(call_id: CallId, body: BotSwap, key: Key, request: Request) -> Response:
    """Move a live call to another bot (the current bot's socket is closed with 1000
    ``bot_replaced``; the new bot gets ``start``)."""
    return await _act(request, key, call_id, "bot", body)
