"""The REST API as one FastAPI app: the routers, the error frame, /openapi.json, /docs."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager
from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

from voxgate import __version__
from voxgate.bridge.control import api_calls, api_events, api_numbers, api_webhooks
from voxgate.bridge.control.api import ApiFrame, install_error_handlers, patch_openapi
from voxgate.bridge.control.docs import docs_page

DESCRIPTION = """\
The voxgate control plane: place calls and act on live ones, route numbers to bots, read
call history, subscribe to signed webhooks and follow live events. Every request carries
`Authorization: Bearer <key>` (`vg_live_...` or `vg_test_...`; a test key's calls go to a
simulated callee and never reach a trunk). Errors are `{"error": {"code", "message"}}`.
"""


def build_api(
    *, lifespan: Callable[[FastAPI], AbstractAsyncContextManager[None]], max_body: int
) -> FastAPI:
    app = FastAPI(
        title="voxgate",
        version=__version__,
        description=DESCRIPTION,
        lifespan=lifespan,
        docs_url=None,
        redoc_url=None,
        openapi_url="/openapi.json",
    )
    for module in (api_calls, api_numbers, api_webhooks, api_events):
        app.include_router(module.router)
    install_error_handlers(app)
    app.add_middleware(ApiFrame, max_body=max_body)

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = get_openapi(
                title=app.title,
                version=app.version,
                description=app.description,
                routes=app.routes,
            )
            app.openapi_schema = patch_openapi(schema)
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
    app.add_route("/docs", docs_page, include_in_schema=False)
    return app


__all__ = ["AsyncIterator", "build_api"]
