"""``GET /docs``: a readable page of the API, made in the browser from /openapi.json.

Self-contained (no script or style from elsewhere: it works with no network)."""

from __future__ import annotations

from importlib.resources import files

from starlette.requests import Request
from starlette.responses import HTMLResponse, Response


async def docs_page(request: Request) -> Response:
    page = files("voxgate.bridge.control").joinpath("docs.html").read_text("utf-8")
    return HTMLResponse(
        page, headers={"Content-Security-Policy": "default-src 'self' 'unsafe-inline'"}
    )
