"""The bridge's HTTP side: carrier WebSocket ingress, health, metrics.

Routes:

- ``WS /v1/streams/twilio`` and ``WS /v1/streams/telnyx``: a carrier's media
  stream. Authenticated before the upgrade is accepted (refused: HTTP 403):
  Telnyx's ``x-telnyx-streaming-auth-token`` header or a ``token`` query
  parameter equal to ``server.token``; for Twilio, also a valid
  ``X-Twilio-Signature`` when ``twilio.auth_token`` is set. With neither
  configured (allowed on loopback only) the streams are open.
- ``GET /healthz``: 200 ``{"status": "ok", ...}`` (503 while draining).
- ``GET /metrics``: counters in Prometheus' text format.

The :class:`Bridge` holds what all calls share: the configuration, the one
scheduler, the HTTP client for carrier REST calls, the built-in echo bot (the
default bot, reached over a real loopback WebSocket like any other) and the
sessions of the calls under way.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import replace
from typing import Any

import httpx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket
from websockets.asyncio.server import Server

from voxgate import __version__
from voxgate.bots.echo import serve_echo
from voxgate.bridge.aio.outbox import Outbox
from voxgate.bridge.aio.rest import CarrierRest
from voxgate.bridge.aio.scheduler import Scheduler
from voxgate.bridge.aio.session import BotTarget, CallSession
from voxgate.bridge.botlink.dialects import canonical_bot_dialect
from voxgate.bridge.call_api import CallPolicy
from voxgate.bridge.carriers import rest
from voxgate.bridge.carriers.telnyx import TelnyxDialect
from voxgate.bridge.carriers.twilio import TwilioDialect
from voxgate.bridge.dialect import Dialect
from voxgate.bridge.events import StreamConnected, StreamStarted
from voxgate.codecs.formats import PCMU_8K, AudioFormat
from voxgate.config import Config, is_loopback, parse_header_lines
from voxgate.errors import ConfigError, ProtocolError, UnsupportedFormatError
from voxgate.obs import METRICS

log = logging.getLogger("voxgate.bridge")

SERVER_SHUTTING_DOWN = 1012  # what uvicorn closes WebSockets with when it stops (RFC 6455 7.4)


class Bridge:
    """Shared state of the running bridge; see the module docstring."""

    def __init__(self, config: Config) -> None:
        self.config = config
        self.scheduler = Scheduler()
        self.sessions: dict[str, CallSession] = {}
        self.draining = False
        self.echo_url = ""
        self._echo: Server | None = None
        self._client: httpx.AsyncClient | None = None

    async def start(self) -> None:
        self._client = httpx.AsyncClient()
        self._echo = await serve_echo("127.0.0.1", 0)
        port = next(iter(self._echo.sockets)).getsockname()[1]
        self.echo_url = f"ws://127.0.0.1:{port}/"

    async def stop(self) -> None:
        self.draining = True
        await asyncio.gather(*(s.close() for s in list(self.sessions.values())))
        self.scheduler.close()
        if self._echo is not None:
            self._echo.close()
            await self._echo.wait_closed()
        if self._client is not None:
            await self._client.aclose()

    # --- one carrier stream ---------------------------------------------------------------

    async def carrier_stream(self, websocket: WebSocket, carrier: str) -> None:
        refusal = self._refusal(websocket, carrier)
        if refusal:
            METRICS.count("streams_refused", carrier=carrier, why=refusal)
            log.warning("refused a %s stream: %s", carrier, refusal)
            await websocket.close(code=1008, reason=refusal)
            return
        await websocket.accept()
        METRICS.count("streams_accepted", carrier=carrier)
        dialect: Dialect = TwilioDialect() if carrier == "twilio" else TelnyxDialect()
        outbox = Outbox(
            "carrier",
            _sender(websocket),
            websocket.close,
            latency_metric="outbound_latency_seconds",
        )
        session: CallSession | None = None
        closed_code: int | None = None
        try:
            while True:
                message = await websocket.receive()
                if message["type"] == "websocket.disconnect":
                    closed_code = message.get("code")
                    break
                data: str | bytes = message.get("text") or message.get("bytes") or ""
                if session is not None:
                    session.on_carrier_message(data)
                elif (started := self._before_start(dialect, data, outbox)) is not None:
                    session = self._open_session(carrier, dialect, outbox, started)
                if outbox.closing:
                    break
        finally:
            if session is not None:
                if closed_code == SERVER_SHUTTING_DOWN:
                    await session.close()  # the bot hears "shutdown", not "caller_hangup"
                else:
                    session.on_carrier_closed()
                self.sessions.pop(session.call_id, None)
                self.scheduler.forget(session)
            outbox.close(1000, "stream over")
            await outbox.wait_closed()

    def _before_start(
        self, dialect: Dialect, data: str | bytes, outbox: Outbox
    ) -> StreamStarted | None:
        try:
            event = dialect.parse_upstream(data)
        except ProtocolError as error:
            METRICS.count("protocol_errors", side="carrier", code=error.code)
            log.warning("carrier message before start refused: %s", error.message)
            if error.fatal:
                outbox.close(error.close_code, error.code)
            return None
        if isinstance(event, StreamStarted):
            return event
        if not isinstance(event, StreamConnected):
            METRICS.count("protocol_errors", side="carrier", code="not_started")
        return None

    def _open_session(
        self, carrier: str, dialect: Dialect, outbox: Outbox, started: StreamStarted
    ) -> CallSession | None:
        busy = "draining" if self.draining else "full"
        if self.draining or len(self.sessions) >= self.config.server.max_calls:
            METRICS.count("streams_refused", carrier=carrier, why=busy)
            log.warning("%s: refused a call", busy, extra={"carrier_call_id": started.call_id})
            outbox.close(1013, f"voxgate is {busy}; try again later")  # RFC 6455 section 7.4.1
            return None
        try:
            bot = self.bot_target(started)
        except (ConfigError, UnsupportedFormatError) as error:
            METRICS.count("streams_refused", carrier=carrier, why="bad_bot_parameters")
            log.warning(
                "stream start refused: %s", error, extra={"carrier_call_id": started.call_id}
            )
            outbox.close(1008, str(error))
            return None
        call_id = f"vx-{uuid.uuid4().hex[:20]}"
        started = replace(
            started,
            opening_text=bot.opening_text or started.opening_text,
            system_prompt=bot.system_prompt or started.system_prompt,
        )
        session = CallSession(
            call_id=call_id,
            carrier=carrier,
            carrier_dialect=dialect,
            carrier_out=outbox,
            started=started,
            bot=bot,
            policy=self.policy(carrier),
            schedule=self.scheduler.schedule,
            carrier_action=self._carrier_rest(carrier, started.call_id),
        )
        self.sessions[call_id] = session
        METRICS.count("calls_started", carrier=carrier)
        log.info(
            "call started: %s %s -> %s, bot %s (%s, %s)",
            carrier,
            started.from_number,
            started.to_number,
            bot.url,
            bot.dialect,
            bot.audio,
            extra={"call_id": call_id, "carrier_call_id": started.call_id},
        )
        return session

    # --- decisions ------------------------------------------------------------------------

    def bot_target(self, started: StreamStarted) -> BotTarget:
        """The bot: custom parameters, else the route for the called number, else the default."""
        params = started.custom_parameters
        configured = self.config.bot_for(started.to_number)
        url = params.get("wss_url") or configured.url or self.echo_url
        if not url.startswith(("ws://", "wss://")):
            raise ConfigError(f"wss_url must start with ws:// or wss://, not {url[:40]!r}")
        dialect = canonical_bot_dialect(params.get("bot_dialect") or configured.dialect)
        audio = (
            AudioFormat.parse(params["bot_audio"]) if "bot_audio" in params else configured.audio
        )
        if dialect == "twilio":
            audio = PCMU_8K  # Twilio streams are mu-law at 8 kHz, and so are bots written for them
        elif dialect == "telnyx" and audio.encoding not in TelnyxDialect.encodings:
            carried = ", ".join(sorted(e.value for e in TelnyxDialect.encodings))
            raise ConfigError(f"a telnyx-dialect bot takes {carried} audio, not {audio}")
        headers = (
            parse_header_lines(params["wss_header"])
            if "wss_header" in params
            else configured.header
        )
        return BotTarget(
            url=url,
            headers=headers,
            dialect=dialect,
            audio=audio,
            connect_timeout=configured.connect_timeout,
            opening_text=configured.opening_text or None,
            system_prompt=configured.system_prompt or None,
        )

    def policy(self, carrier: str) -> CallPolicy:
        configured = self.config.bot
        return CallPolicy(
            hangup_after_playout=self.config.call.hangup_after_playout,
            max_hangup_wait=self.config.call.max_hangup_wait,
            reconnect_for=configured.reconnect_for,
            fallback=configured.fallback,
            carrier_rest=self._rest_enabled(carrier),
            carrier_marks=True,
        )

    def _rest_enabled(self, carrier: str) -> bool:
        return self.config.twilio.enabled if carrier == "twilio" else self.config.telnyx.enabled

    def _carrier_rest(self, carrier: str, call_id: str) -> CarrierRest | None:
        if not self._rest_enabled(carrier) or self._client is None:
            return None
        if carrier == "twilio":
            return CarrierRest(carrier, call_id, self._client, twilio=self.config.twilio)
        return CarrierRest(carrier, call_id, self._client, telnyx=self.config.telnyx)

    def _refusal(self, websocket: WebSocket, carrier: str) -> str:
        """Why this upgrade is refused, or "" to accept it."""
        if self.draining:
            return "draining"
        server = self.config.server
        presented = websocket.query_params.get("token") or websocket.headers.get(
            "x-telnyx-streaming-auth-token", ""
        )
        if server.token and presented and hmac.compare_digest(presented, server.token):
            return ""
        twilio_token = self.config.twilio.auth_token
        if carrier == "twilio" and twilio_token:
            signature = websocket.headers.get("x-twilio-signature", "")
            url = self._signed_url(websocket)
            if signature and rest.twilio_signature_valid(twilio_token, url, signature):
                return ""
        required = bool(server.token) or (carrier == "twilio" and bool(twilio_token))
        if not required and is_loopback(server.host):
            return ""
        return "missing or wrong token or signature" if required else "no token configured"

    def _signed_url(self, websocket: WebSocket) -> str:
        """The URL the carrier signed: ``server.public_url`` + path and query when set."""
        base = self.config.server.public_url.rstrip("/")
        url = websocket.url
        if not base:
            return str(url)
        query = f"?{url.query}" if url.query else ""
        return f"{base}{url.path}{query}"


def _sender(websocket: WebSocket) -> Any:
    async def send(message: str | bytes) -> None:
        if isinstance(message, bytes):
            await websocket.send_bytes(message)
        else:
            await websocket.send_text(message)

    return send


def create_app(config: Config, bridge: Bridge | None = None) -> Starlette:
    """The ASGI app serving ``config`` (pass ``bridge`` to reach its state from tests)."""
    the_bridge = bridge or Bridge(config)

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        await the_bridge.start()
        try:
            yield
        finally:
            await the_bridge.stop()

    async def healthz(request: Request) -> Response:
        body = {
            "status": "draining" if the_bridge.draining else "ok",
            "version": __version__,
            "calls": len(the_bridge.sessions),
        }
        return JSONResponse(body, status_code=503 if the_bridge.draining else 200)

    async def metrics(request: Request) -> Response:
        METRICS.gauges["calls_active"] = len(the_bridge.sessions)
        return PlainTextResponse(METRICS.render(), media_type="text/plain; version=0.0.4")

    async def twilio(websocket: WebSocket) -> None:
        await the_bridge.carrier_stream(websocket, "twilio")

    async def telnyx(websocket: WebSocket) -> None:
        await the_bridge.carrier_stream(websocket, "telnyx")

    routes = [
        Route("/healthz", healthz),
        Route("/metrics", metrics),
        WebSocketRoute("/v1/streams/twilio", twilio),
        WebSocketRoute("/v1/streams/telnyx", telnyx),
    ]
    app = Starlette(routes=routes, lifespan=lifespan)
    app.state.bridge = the_bridge
    return app
