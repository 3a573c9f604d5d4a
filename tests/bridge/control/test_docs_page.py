"""``GET /docs`` in a real headless Chromium against the real app: the page renders every
operation of /openapi.json (and the request fields), draws something, says so when the
document cannot be loaded; and /openapi.json itself is a valid OpenAPI 3.x document."""

from __future__ import annotations

import asyncio
import html
import struct
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, Final

import uvicorn
from browser import headless_argv
from control_api import serve_api
from openapi_spec_validator import validate
from scenario import run
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from voxgate.bridge.control.docs import docs_page

BROWSER_LIMIT: Final = 90.0  # seconds for one headless run on a busy machine
WINDOW: Final = (1280, 1600)
METHODS: Final = ("get", "post", "put", "patch", "delete")


async def chromium(profile: Path, *args: str) -> tuple[str, str]:
    """Headless Chromium with ``args``: its stdout (the DOM with --dump-dom) and stderr."""
    process = await asyncio.create_subprocess_exec(
        *headless_argv(profile, "--enable-logging=stderr", "--v=0", *args),
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        out, err = await asyncio.wait_for(process.communicate(), BROWSER_LIMIT)
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    assert process.returncode == 0, err.decode(errors="replace")[-2000:]
    return out.decode(errors="replace"), err.decode(errors="replace")


def script_errors(stderr: str) -> list[str]:
    """The page's uncaught JavaScript errors, from Chromium's console log."""
    return [line for line in stderr.splitlines() if "CONSOLE" in line and "Uncaught" in line]


def operations(spec: dict[str, Any]) -> list[tuple[str, str]]:
    return [
        (method.upper(), path)
        for path, item in spec["paths"].items()
        for method in METHODS
        if method in item
    ]


def png_size(data: bytes) -> tuple[int, int]:
    """A PNG's width and height (its IHDR chunk, PNG spec section 11.2.2)."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    assert data[12:16] == b"IHDR"
    width, height = struct.unpack(">II", data[16:24])
    return width, height


def test_openapi_json_is_a_valid_openapi_3_document(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with serve_api(tmp_path) as api:
            answer = await api.client.get("/openapi.json")
            assert answer.status_code == 200
            spec = answer.json()
            validate(spec)  # raises naming the first problem
            assert spec["openapi"].startswith("3.")
            assert spec["components"]["securitySchemes"]["bearer"]["scheme"] == "bearer"
            tags = {op["tags"][0] for item in spec["paths"].values() for op in item.values()}
            assert tags == {"calls", "numbers", "webhooks", "events"}

    run(scenario())


def test_the_docs_page_renders_every_operation_in_chromium(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with serve_api(tmp_path) as api:
            spec = (await api.client.get("/openapi.json")).json()
            page = await api.client.get("/docs")
            assert page.headers["content-type"].startswith("text/html")
            assert page.headers["content-security-policy"] == "default-src 'self' 'unsafe-inline'"
            assert "<script src" not in page.text and "<link" not in page.text  # self-contained
            url = f"{api.running.base_url}/docs"
            dom, log = await chromium(tmp_path / "profile", "--dump-dom", url)
            shot = tmp_path / "docs.png"
            _, shot_log = await chromium(
                tmp_path / "profile-shot",
                f"--window-size={WINDOW[0]},{WINDOW[1]}",
                f"--screenshot={shot}",
                url,
            )
        assert script_errors(log + shot_log) == []
        assert 'data-state="ready"' in dom
        assert 'id="load-error"' not in dom
        text = html.unescape(dom)
        for method, path in operations(spec):
            assert f'{method}</span><span class="path">{path}</span>' in text, (method, path)
        for must in ("POST /v1/calls", "GET /v1/numbers/{number_id}", "DELETE /v1/webhooks/"):
            method, path = must.split(" ")
            assert f'{method}</span><span class="path">{path}' in text, must
        for schema in ("CallCreate", "NumberCreate", "WebhookCreate", "SimulatedCallee"):
            for field in spec["components"]["schemas"][schema]["properties"]:
                assert f'<td class="name">{field}</td>' in text, (schema, field)
        assert "^wss?://" in text  # a pattern
        assert '"auto_accept"' in text  # an enum value
        assert 'href="#op-create_call_v1_calls_post"' in text  # the table of contents
        assert "Authorization: Bearer" in text
        data = shot.read_bytes()
        assert png_size(data) == WINDOW
        # A blank page of this size compresses to under 10 kB; the rendered one is far larger.
        assert len(data) > 50_000, len(data)

    run(scenario())


@asynccontextmanager
async def broken_docs_server() -> AsyncIterator[str]:
    """The real /docs page beside an /openapi.json that fails (500); yields its base URL."""

    async def no_document(request: Request) -> Response:
        return PlainTextResponse("down", status_code=500)

    app = Starlette(routes=[Route("/docs", docs_page), Route("/openapi.json", no_document)])
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=0, log_config=None))
    task = asyncio.create_task(server.serve())
    try:
        while not server.started:
            if task.done():
                task.result()
            await asyncio.sleep(0.01)
        port = server.servers[0].sockets[0].getsockname()[1]
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, 10)


def test_the_docs_page_says_so_when_openapi_json_fails(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with broken_docs_server() as base:
            dom, log = await chromium(tmp_path / "profile", "--dump-dom", f"{base}/docs")
        assert script_errors(log) == []
        assert 'data-state="failed"' in dom
        assert 'id="load-error"' in dom
        assert "answered HTTP 500" in dom
        assert 'href="/openapi.json"' in dom

    run(scenario())
