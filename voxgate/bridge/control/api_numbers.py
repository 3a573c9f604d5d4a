"""``/v1/numbers``: routing per called number (which bot, accept/reject/ask a webhook)."""

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
from voxgate.bridge.control.dialer import bot_parameters, vet_outgoing
from voxgate.bridge.control.ledger import iso
from voxgate.bridge.control.models import Number, NumberCreate, NumberPage, NumberUpdate
from voxgate.bridge.store.records import NumberRoute
from voxgate.errors import ApiError

router = APIRouter(prefix="/v1", tags=["numbers"], responses=ERROR_RESPONSES)

SETTINGS = (
    "wss_url",
    "wss_header",
    "bot_dialect",
    "bot_audio",
    "connect_ws_after_answer",
    "webhook_url",
    "record",
    "system_msg",
    "text",
)


def number_json(route: NumberRoute) -> dict[str, Any]:
    settings = route.settings
    cwaa = settings.get("connect_ws_after_answer")
    return {
        "id": route.id,
        "object": "number",
        "number": route.number,
        "incoming_call_action": route.incoming_call_action,
        "wss_url": settings.get("wss_url"),
        "wss_header_set": bool(settings.get("wss_header")),
        "bot_dialect": settings.get("bot_dialect"),
        "bot_audio": settings.get("bot_audio"),
        "connect_ws_after_answer": None if cwaa is None else int(cwaa),
        "webhook_url": settings.get("webhook_url"),
        "record": bool(settings.get("record", False)),
        "system_msg": settings.get("system_msg"),
        "text": settings.get("text"),
        "created_at": iso(route.created_at),
        "updated_at": iso(route.updated_at),
    }


async def _settings(request: Request, given: dict[str, Any]) -> dict[str, Any]:
    """The request's settings, the bot's checked (a URL vetted, a header parsed)."""
    control = control_of(request)
    settings = {name: given[name] for name in SETTINGS if name in given}
    settings.update(await bot_parameters(control, settings))
    if settings.get("webhook_url"):
        await vet_outgoing(control, settings["webhook_url"], "webhook_url")
    if settings.get("connect_ws_after_answer") is not None:
        settings["connect_ws_after_answer"] = int(settings["connect_ws_after_answer"])
    return settings


@router.post("/numbers", status_code=201, response_model=Number, summary="Route a number")
async def create_number(body: NumberCreate, key: Key, request: Request) -> Response:
    control = control_of(request)
    now = time.time()
    route = NumberRoute(
        id=f"num_{secrets.token_hex(8)}",
        number=body.number,
        incoming_call_action=body.incoming_call_action,
        settings=await _settings(request, body.model_dump(exclude_none=True)),
        created_at=now,
        updated_at=now,
    )
    try:
        route = await control.store.add_number(route)
    except KeyError:
        raise ApiError(
            409, "number_exists", f"{body.number} is routed already", field="number"
        ) from None
    await control.refresh_routes()
    return JSONResponse(number_json(route), status_code=201)


@router.get("/numbers", response_model=NumberPage, summary="List number routes")
async def list_numbers(
    key: Key,
    request: Request,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    cursor: Cursor = None,
) -> Response:
    page = await control_of(request).store.list_numbers(limit=limit, before=parse_cursor(cursor))
    return JSONResponse(
        {
            "object": "list",
            "data": [number_json(route) for route in page.data],
            "next_cursor": cursor_text(page.next_cursor),
            "has_more": page.has_more,
        }
    )


async def _route(request: Request, number_id: str) -> NumberRoute:
    route = await control_of(request).store.get_number(number_id) if len(number_id) <= 64 else None
    if route is None:
        raise ApiError(404, "not_found", f"no number {number_id[:64]!r}")
    return route


@router.get("/numbers/{number_id}", response_model=Number, summary="One number route")
async def get_number(number_id: str, key: Key, request: Request) -> Response:
    return JSONResponse(number_json(await _route(request, number_id)))


@router.patch("/numbers/{number_id}", response_model=Number, summary="Change a number route")
async def update_number(number_id: str, body: NumberUpdate, key: Key, request: Request) -> Response:
    """Fields given are set (``null`` removes a setting); fields left out are kept."""
    control = control_of(request)
    await _route(request, number_id)
    given = body.model_dump(exclude_unset=True)
    settings = await _settings(request, {k: v for k, v in given.items() if v is not None})
    settings.update({name: None for name in SETTINGS if name in given and given[name] is None})
    route = await control.store.update_number(
        number_id,
        incoming_call_action=given.get("incoming_call_action"),
        settings=settings,
        updated_at=time.time(),
    )
    if route is None:
        raise ApiError(404, "not_found", f"no number {number_id[:64]!r}")
    await control.refresh_routes()
    return JSONResponse(number_json(route))


@router.delete("/numbers/{number_id}", status_code=204, summary="Remove a number route")
async def delete_number(number_id: str, key: Key, request: Request) -> Response:
    control = control_of(request)
    if len(number_id) > 64 or not await control.store.delete_number(number_id):
        raise ApiError(404, "not_found", f"no number {number_id[:64]!r}")
    await control.refresh_routes()
    return Response(status_code=204)
