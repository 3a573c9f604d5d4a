"""The REST API's frame: errors, keys, rate limits, pagination and the OpenAPI document.

Every answer that is not a success is ``{"error": {"code", "message", "field"?}}`` with its
HTTP status (:class:`voxgate.errors.ApiError`); a request the models refuse is 422 naming
the field, a body that is not JSON is 400, an unknown path 404. An unexpected exception is
a 500 ``internal_error``, logged with its traceback and counted, never a crash.

Each authenticated request takes one token from its key's bucket (:mod:`.ratelimit`);
requests without a valid key are held to the same rate per client address. The figures
go out as ``X-RateLimit-*`` headers on every answer under ``/v1``, and a refused request
is 429 with ``Retry-After``.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Annotated, Any, Final

from fastapi import Depends, FastAPI, Query, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException
from starlette.responses import JSONResponse, Response

from voxgate.bridge.control.models import ErrorBody
from voxgate.bridge.control.plane import ControlPlane
from voxgate.bridge.control.ratelimit import RateVerdict
from voxgate.bridge.store.records import ApiKey
from voxgate.errors import ApiError
from voxgate.obs import METRICS

log = logging.getLogger("voxgate.control")

ERROR_RESPONSES: Final[dict[int | str, dict[str, Any]]] = {
    status: {"model": ErrorBody, "description": text}
    for status, text in {
        400: "The request is malformed (not JSON, a bad cursor)",
        401: "No valid API key",
        404: "No such resource",
        409: "The call is not live",
        413: "The request body is too large",
        422: "A field is invalid (the error names it)",
        429: "Rate limit exceeded (see Retry-After)",
        503: "Not now: no trunk, too many event streams, or the call's worker does not answer",
    }.items()
}

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]


def control_of(request: Request) -> ControlPlane:
    control: ControlPlane | None = getattr(request.app.state, "control", None)
    if control is None:
        raise ApiError(503, "unavailable", "the control plane is not running")
    return control


async def authenticated(request: Request) -> ApiKey:
    """The request's API key, after its rate limit (a FastAPI dependency)."""
    control = control_of(request)
    try:
        key = await control.authenticate(request.headers.get("authorization"))
    except ApiError:
        client = request.client.host if request.client else "unknown"
        _take(request, control, f"addr:{client}")
        raise
    _take(request, control, key.id)
    return key


Key = Annotated[ApiKey, Depends(authenticated)]


def _take(request: Request, control: ControlPlane, bucket: str) -> None:
    verdict = control.rate.take(bucket, time.monotonic())
    request.state.rate = verdict
    if not verdict.allowed:
        METRICS.count("api_rate_limited")
        raise ApiError(429, "rate_limited", "too many requests; slow down (see Retry-After)")


Cursor = Annotated[
    str | None,
    Query(pattern=r"^[0-9]{1,19}$", description="the next_cursor of the previous page"),
]


def parse_cursor(cursor: str | None) -> int | None:
    if cursor is None or cursor == "":
        return None
    if not (cursor.isascii() and cursor.isdigit()) or len(cursor) > 19 or int(cursor) >= 2**63:
        raise ApiError(400, "invalid_cursor", "cursor is not one this API gave", field="cursor")
    return int(cursor)


def cursor_text(cursor: int | None) -> str | None:
    return None if cursor is None else str(cursor)


# --- errors ---------------------------------------------------------------------------------


def error_response(
    status: int, code: str, message: str, *, field: str | None = None, headers: Any = None
) -> JSONResponse:
    detail: dict[str, Any] = {"code": code, "message": message}
    if field is not None:
        detail["field"] = field
    return JSONResponse({"error": detail}, status_code=status, headers=headers)


async def _api_error(request: Request, error: Exception) -> Response:
    assert isinstance(error, ApiError)
    METRICS.count("api_errors", code=str(error.status))
    return error_response(
        error.status, error.code, error.message, field=error.field, headers=error.headers
    )


async def _validation_error(request: Request, error: Exception) -> Response:
    assert isinstance(error, RequestValidationError)
    problems = error.errors()
    first = problems[0] if problems else {"loc": (), "msg": "invalid request", "type": ""}
    location = [str(part) for part in first.get("loc", ()) if part not in ("body", "query")]
    kind = first.get("type")
    if kind in ("json_invalid", "model_attributes_type", "dict_type") or (
        kind == "missing" and not location
    ):
        METRICS.count("api_errors", code="400")
        return error_response(400, "invalid_json", "the request body must be a JSON object")
    message = str(first.get("msg", "invalid")).removeprefix("Value error, ")
    if not location and ": " in message:  # a model's own check names its field first
        location = [message.split(": ", 1)[0]]
        message = message.split(": ", 1)[1]
    field = ".".join(location) or None
    if field:
        message = f"{field}: {message}"
    METRICS.count("api_errors", code="422")
    return error_response(422, "invalid_request", message, field=field)


async def _http_error(request: Request, error: Exception) -> Response:
    assert isinstance(error, HTTPException)
    code = {404: "not_found", 405: "method_not_allowed"}.get(error.status_code, "http_error")
    METRICS.count("api_errors", code=str(error.status_code))
    return error_response(error.status_code, code, str(error.detail), headers=error.headers)


async def _unexpected(request: Request, error: Exception) -> Response:
    METRICS.count("errors", kind="api_internal")
    log.error("REST request failed inside voxgate", exc_info=error)
    return error_response(500, "internal_error", "voxgate failed to serve this request")


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(ApiError, _api_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(HTTPException, _http_error)
    app.add_exception_handler(Exception, _unexpected)


# --- the ASGI middleware: body bound and rate-limit headers --------------------------------


class ApiFrame:
    """Refuses a body over ``max_body`` (413) and adds the rate-limit headers under /v1."""

    def __init__(self, app: Callable[[Scope, Receive, Send], Awaitable[None]], max_body: int):
        self.app = app
        self.max_body = max_body

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not scope["path"].startswith("/v1/"):
            await self.app(scope, receive, send)
            return
        length = _content_length(scope)
        if length is not None and length > self.max_body:
            response = error_response(413, "too_large", f"bodies are at most {self.max_body} bytes")
            await response(scope, receive, send)
            return
        state = scope.setdefault("state", {})

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                verdict = state.get("rate")
                if isinstance(verdict, RateVerdict):
                    headers = list(message.get("headers", []))
                    for name, value in verdict.headers().items():
                        if name == "Retry-After" and any(h[0] == b"retry-after" for h in headers):
                            continue
                        headers.append((name.lower().encode(), value.encode()))
                    message["headers"] = headers
            await send(message)

        await self.app(scope, _bounded(receive, self.max_body), send_with_headers)


def _content_length(scope: Scope) -> int | None:
    for name, value in scope.get("headers", []):
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None


def _bounded(receive: Receive, limit: int) -> Receive:
    """``receive`` that ends a chunked body over ``limit`` (as a disconnect)."""
    seen = 0

    async def bounded() -> Message:
        nonlocal seen
        message = await receive()
        if message["type"] == "http.request":
            seen += len(message.get("body", b""))
            if seen > limit:
                return {"type": "http.disconnect"}
        return message

    return bounded


def patch_openapi(schema: dict[str, Any]) -> dict[str, Any]:
    """Every error answer in the document is the error body (FastAPI's own 422 is not)."""
    components = schema.setdefault("components", {}).setdefault("schemas", {})
    components.pop("HTTPValidationError", None)
    components.pop("ValidationError", None)
    error_ref = {"$ref": "#/components/schemas/ErrorBody"}
    for path in schema.get("paths", {}).values():
        for operation in path.values():
            for status, response in operation.get("responses", {}).items():
                if status[0] in "45":
                    response["content"] = {"application/json": {"schema": error_ref}}
            operation.setdefault("security", [{"bearer": []}])
    schema["components"]["securitySchemes"] = {
        "bearer": {"type": "http", "scheme": "bearer", "description": "vg_live_... or vg_test_..."}
    }
    return schema
