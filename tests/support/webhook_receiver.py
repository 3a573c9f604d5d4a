"""A webhook receiver for tests: a real HTTP server on 127.0.0.1 that checks every
signature with its own code (written from the documented scheme, not voxgate's) and keeps
what arrived.

The scheme, as docs/API.md gives it: ``X-Voxgate-Signature: t=<unix>,v1=<hex>`` where the
hex is HMAC-SHA256 over ``"<t>." + body`` keyed with the subscription's secret.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import socket
from dataclasses import dataclass, field
from typing import Any, Self

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route


def signature_ok(header: str, body: bytes, secret: str) -> bool:
    """The receiver's own check: the documented ten lines."""
    parts = dict(item.split("=", 1) for item in header.split(",") if "=" in item)
    if "t" not in parts or "v1" not in parts:
        return False
    expected = hmac.new(secret.encode(), parts["t"].encode() + b"." + body, hashlib.sha256)
    return hmac.compare_digest(expected.hexdigest(), parts["v1"])


@dataclass
class Received:
    event: dict[str, Any]
    headers: dict[str, str]
    signed: bool  # the signature checked out with one of the receiver's secrets


@dataclass
class WebhookReceiver:
    secrets: list[str] = field(default_factory=list)
    failures: int = 0  # answer 500 to this many requests first
    decision: dict[str, Any] | None = None  # the answer to a call.incoming question
    received: list[Received] = field(default_factory=list)
    port: int = 0
    _server: uvicorn.Server | None = None
    _task: asyncio.Task[None] | None = None
    _arrived: asyncio.Event = field(default_factory=asyncio.Event)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hook"

    async def __aenter__(self) -> Self:
        app = Starlette(routes=[Route("/hook", self._hook, methods=["POST"])])
        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        self.port = sock.getsockname()[1]
        config = uvicorn.Config(app, log_level="warning", lifespan="off")
        self._server = server = uvicorn.Server(config)
        self._task = asyncio.create_task(server.serve(sockets=[sock]))
        while not server.started:
            await asyncio.sleep(0.01)
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._server is not None and self._task is not None
        self._server.should_exit = True
        await asyncio.wait_for(self._task, 10)

    async def _hook(self, request: Request) -> Response:
        body = await request.body()
        if self.failures > 0:
            self.failures -= 1
            return PlainTextResponse("not now", status_code=500)
        header = request.headers.get("x-voxgate-signature", "")
        signed = any(signature_ok(header, body, secret) for secret in self.secrets)
        event = json.loads(body)
        self.received.append(Received(event, dict(request.headers), signed))
        self._arrived.set()
        if event.get("type") == "call.incoming" and self.decision is not None:
            return JSONResponse(self.decision)
        return PlainTextResponse("ok")

    def events(self, call_id: str | None = None) -> list[str]:
        return [
            r.event["type"]
            for r in self.received
            if call_id is None or r.event.get("data", {}).get("call", {}).get("id") == call_id
        ]

    async def wait_for(
        self, event_type: str, call_id: str | None = None, timeout: float = 30.0
    ) -> None:
        """Until an event of ``event_type`` (about ``call_id``) has arrived."""
        async with asyncio.timeout(timeout):
            while event_type not in self.events(call_id):
                self._arrived.clear()
                await self._arrived.wait()
