"""The bridge's HTTP side: carrier WebSocket ingress, health, metrics.

Routes:

- ``WS /v1/streams/{carrier}``, one per entry of the carrier registry
  (:mod:`voxgate.bridge.carriers.registry`: Twilio, Telnyx, Plivo): a carrier's
  media stream. Authenticated before the upgrade is accepted (refused: HTTP
  403): ``server.token`` as a ``token`` query parameter or in the carrier's
  token header (Telnyx's ``x-telnyx-streaming-auth-token``), or the carrier's
  own request signature (Twilio's ``X-Twilio-Signature``) when its
  credentials are set. With nothing configured (allowed on loopback only) the
  streams are open. Secrets are compared as bytes, in constant time.
- ``GET /healthz``: 200 ``{"status": "ok", ...}`` (503 while draining).
- ``GET /metrics``: counters in Prometheus' text format; it asks for
  ``server.metrics_token`` (else ``server.token``) when one is set.

Before a call: an accepted stream must send ``start`` within
``server.start_timeout``; at most ``server.max_pending`` streams may wait for
theirs (more get 1013); a ``start`` over the size limit closes with 1009.
During a call the carrier's messages are read one per event-loop turn, so a
flooding stream cannot starve the other calls, and its audio is held to
``server.max_inbound_rate`` (:mod:`voxgate.bridge.ratelimit`).

The :class:`Bridge` holds what all calls share: the configuration, the one
scheduler, the HTTP client for carrier REST calls, the built-in echo bot (the
default bot, reached over a real loopback WebSocket like any other) and the
sessions of the calls under way. A bot URL given with the call (``wss_url``)
is vetted first (:mod:`voxgate.bridge.aio.botaddr`) and reached at the address
that was checked.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import replace
from typing import Any, Final

import httpx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket, WebSocketState
from websockets.asyncio.server import Server

from voxgate import __version__
from voxgate.bots.echo import serve_echo
from voxgate.bridge.aio.botaddr import BotAddressRefused, vet_bot_url
from voxgate.bridge.aio.outbox import Outbox
from voxgate.bridge.aio.rest import CarrierRest
from voxgate.bridge.aio.scheduler import Scheduler
from voxgate.bridge.aio.session import BotTarget, CallSession
from voxgate.bridge.botlink.dialects import canonical_bot_dialect
from voxgate.bridge.call_api import CallPolicy
from voxgate.bridge.carriers.registry import CARRIERS, CarrierSpec, Upgrade
from voxgate.bridge.carriers.telnyx import TelnyxDialect
from voxgate.bridge.dialect import Dialect
from voxgate.bridge.events import StreamConnected, StreamStarted
from voxgate.bridge.ratelimit import InboundRate
from voxgate.codecs.formats import PCMU_8K, AudioFormat
from voxgate.config import Config, is_loopback, parse_header_lines
from voxgate.errors import ConfigError, ProtocolError, UnsupportedFormatError
from voxgate.obs import METRICS
from voxgate.redact import redact_url, scrub

log = logging.getLogger("voxgate.bridge")

SERVER_SHUTTING_DOWN: Final = (
    1012  # what uvicorn closes WebSockets with when it stops (RFC 6455 7.4)
)
TRY_AGAIN_LATER: Final = 1013  # RFC 6455 section 7.4.1 (IANA registry)
MESSAGE_TOO_BIG: Final = 1009
POLICY_VIOLATION: Final = 1008


class Bridge:
    """Shared state of the running bridge; see the module docstring."""

    def __init__(self, config: Config) -> None:
        self.config = config
        self.scheduler = Scheduler()
        self.sessions: dict[str, CallSession] = {}
        self.pending = 0  # carrier WebSockets accepted that have not started a call yet
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

    async def carrier_stream(self, websocket: WebSocket, carrier: CarrierSpec) -> None:
        refusal = self._refusal(websocket, carrier)
        if refusal:
            METRICS.count("streams_refused", carrier=carrier.name, why=refusal.split(" ")[0])
            log.warning("refused a %s stream: %s", carrier.name, refusal)
            await websocket.close(code=POLICY_VIOLATION, reason=refusal)
            return
        offered = websocket.scope.get("subprotocols") or []
        await websocket.accept(carrier.subprotocol if carrier.subprotocol in offered else None)
        if self.pending >= self.config.server.max_pending:
            METRICS.count("streams_refused", carrier=carrier.name, why="too_many_pending")
            log.warning("refused a %s stream: too many streams without start", carrier.name)
            await websocket.close(code=TRY_AGAIN_LATER, reason="too many streams starting")
            return
        METRICS.count("streams_accepted", carrier=carrier.name)
        self.pending += 1
        outbox = Outbox(
            "carrier",
            _sender(websocket),
            _closer(websocket),
            latency_metric="outbound_latency_seconds",
        )
        session: CallSession | None = None
        closed_code: int | None = None
        try:
            session, closed_code = await self._until_started(websocket, carrier, outbox)
            if session is not None:
                closed_code = await self._carry(websocket, session, outbox)
        finally:
            if session is None:
                self.pending -= 1
            else:
                await self._wind_up(session, closed_code)
            outbox.close(1000, "stream over")
            await outbox.wait_closed()

    async def _until_started(
        self, websocket: WebSocket, carrier: CarrierSpec, outbox: Outbox
    ) -> tuple[CallSession | None, int | None]:
        """Read until ``start`` (within ``server.start_timeout``); the call's session, if any."""
        dialect = carrier.make_dialect()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.config.server.start_timeout
        while not outbox.closing:
            try:
                message = await asyncio.wait_for(websocket.receive(), deadline - loop.time())
            except TimeoutError:
                METRICS.count("streams_refused", carrier=carrier.name, why="no_start")
                log.warning("a %s stream sent no start in time; closing it", carrier.name)
                outbox.close(POLICY_VIOLATION, "no start in time")
                break
            if message["type"] == "websocket.disconnect":
                return None, message.get("code")
            started = self._before_start(dialect, _data(message), outbox)
            if started is not None:
                self.pending -= 1
                session = await self._open_session(carrier, dialect, outbox, started)
                if session is None:
                    self.pending += 1  # the finally clause counts it out again
                return session, None
        return None, None

    async def _carry(
        self, websocket: WebSocket, session: CallSession, outbox: Outbox
    ) -> int | None:
        """Feed the carrier's messages to the call until either side ends it."""
        while not outbox.closing:
            message = await websocket.receive()
            if message["type"] == "websocket.disconnect":
                code: int | None = message.get("code")
                return code
            session.on_carrier_message(_data(message))
            await asyncio.sleep(0)  # one message per turn: the other calls get theirs
        return None

    async def _wind_up(self, session: CallSession, closed_code: int | None) -> None:
        if closed_code == SERVER_SHUTTING_DOWN:
            await session.close()  # the bot hears "shutdown", not "caller_hangup"
        else:
            session.on_carrier_closed()
        self.sessions.pop(session.call_id, None)
        self.scheduler.forget(session)

    def _before_start(
        self, dialect: Dialect, data: str | bytes, outbox: Outbox
    ) -> StreamStarted | None:
        try:
            event = dialect.parse_upstream(data)
        except ProtocolError as error:
            METRICS.count("protocol_errors", side="carrier", code=error.code)
            log.warning("carrier message before start refused: %s", error.message)
            if error.code == "message_too_large":
                outbox.close(MESSAGE_TOO_BIG, "message too large before start")
            elif error.fatal:
                outbox.close(error.close_code, error.code)
            return None
        if isinstance(event, StreamStarted):
            return event
        if not isinstance(event, StreamConnected):
            METRICS.count("protocol_errors", side="carrier", code="not_started")
        return None

    async def _open_session(
        self, carrier: CarrierSpec, dialect: Dialect, outbox: Outbox, started: StreamStarted
    ) -> CallSession | None:
        busy = "draining" if self.draining else "full"
        name = carrier.name
        if self.draining or len(self.sessions) >= self.config.server.max_calls:
            METRICS.count("streams_refused", carrier=name, why=busy)
            log.warning("%s: refused a call", busy, extra={"carrier_call_id": started.call_id})
            outbox.close(TRY_AGAIN_LATER, f"voxgate is {busy}; try again later")
            return None
        try:
            bot = await self._vetted(self.bot_target(started), started)
        except (ConfigError, UnsupportedFormatError, BotAddressRefused) as error:
            why = "bot_not_allowed" if isinstance(error, BotAddressRefused) else "bad_parameters"
            reason = scrub(str(error))
            METRICS.count("streams_refused", carrier=name, why=why)
            log.warning(
                "stream start refused: %s", reason, extra={"carrier_call_id": started.call_id}
            )
            outbox.close(POLICY_VIOLATION, reason)
            return None
        call_id = f"vx-{uuid.uuid4().hex[:20]}"
        started = replace(
            started,
            opening_text=bot.opening_text or started.opening_text,
            system_prompt=bot.system_prompt or started.system_prompt,
        )
        outbox.call_id = call_id
        session = CallSession(
            call_id=call_id,
            carrier=name,
            carrier_dialect=dialect,
            carrier_out=outbox,
            started=started,
            bot=bot,
            policy=self.policy(carrier, bot),
            schedule=self.scheduler.schedule,
            carrier_action=self._carrier_rest(carrier, started.call_id),
            inbound_rate=InboundRate(self.config.server.max_inbound_rate),
        )
        self.sessions[call_id] = session
        METRICS.count("calls_started", carrier=name)
        log.info(
            "call started: %s, bot %s (%s, %s)",
            name,
            redact_url(bot.url),
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
        return BotTarget(
            url=url,
            headers=_bot_headers(params["wss_header"])
            if "wss_header" in params
            else configured.header,
            dialect=dialect,
            audio=audio,
            connect_timeout=configured.connect_timeout,
            opening_text=configured.opening_text or None,
            system_prompt=configured.system_prompt or None,
        )

    async def _vetted(self, bot: BotTarget, started: StreamStarted) -> BotTarget:
        """``bot`` with the address to reach it, when its URL came with the call."""
        if "wss_url" not in started.custom_parameters:
            return bot  # the operator's own configuration
        configured = self.config.bot_for(started.to_number)
        private = configured.private_targets
        private_allowed = private == "allow" or (
            private == "auto" and is_loopback(self.config.server.host)
        )
        target = await vet_bot_url(bot.url, allow=configured.allow, private_allowed=private_allowed)
        return replace(bot, address=target.address)

    def policy(self, carrier: CarrierSpec, bot: BotTarget) -> CallPolicy:
        configured = self.config.bot
        call = self.config.call
        return CallPolicy(
            hangup_after_playout=call.hangup_after_playout,
            max_hangup_wait=call.max_hangup_wait,
            reconnect_for=configured.reconnect_for,
            connect_timeout=bot.connect_timeout,
            fallback=configured.fallback,
            carrier_rest=carrier.rest_enabled(self.config),
            carrier_marks=carrier.echoes_marks,
            max_queued_audio=call.max_queued_audio,
            max_marks=call.max_marks,
            max_mark_name=call.max_mark_name,
            max_transcript_bytes=call.max_transcript_bytes,
        )

    def _carrier_rest(self, carrier: CarrierSpec, call_id: str) -> CarrierRest | None:
        if not carrier.rest_enabled(self.config) or self._client is None:
            return None
        return CarrierRest(carrier, self.config, call_id, self._client)

    def _refusal(self, websocket: WebSocket, carrier: CarrierSpec) -> str:
        """Why this upgrade is refused, or "" to accept it."""
        if self.draining:
            return "draining"
        server = self.config.server
        presented = websocket.query_params.get("token", "")
        if not presented and carrier.token_header:
            presented = websocket.headers.get(carrier.token_header, "")
        if server.token and presented and _same_secret(presented, server.token):
            return ""
        upgrade = self._upgrade(websocket)
        if carrier.signature_valid is not None and carrier.signature_valid(self.config, upgrade):
            return ""
        required = bool(server.token) or carrier.requires_signature(self.config)
        if not required and is_loopback(server.host):
            return ""
        return "missing or wrong token or signature" if required else "no token configured"

    def _upgrade(self, websocket: WebSocket) -> Upgrade:
        """The upgrade request as data, with the URL the carrier signed: ``server.public_url``
        + path and query when set, else the URL as voxgate saw it."""
        base = self.config.server.public_url.rstrip("/")
        url = websocket.url
        query = f"?{url.query}" if url.query else ""
        signed = f"{base}{url.path}{query}" if base else str(url)
        return Upgrade(
            url=signed,
            path=url.path,
            query=dict(websocket.query_params),
            headers={name.lower(): value for name, value in websocket.headers.items()},
        )


def _same_secret(presented: str, expected: str) -> bool:
    """Constant-time comparison of secrets as bytes (any text, ASCII or not)."""
    return hmac.compare_digest(
        presented.encode("utf-8", "surrogateescape"), expected.encode("utf-8", "surrogateescape")
    )


def _bot_headers(text: str) -> tuple[tuple[str, str], ...]:
    """A call's ``wss_header``; an error names the problem, never the text (it holds secrets)."""
    try:
        return parse_header_lines(text)
    except ConfigError:
        raise ConfigError("wss_header is not valid 'Name: value' lines") from None


def _closer(websocket: WebSocket) -> Any:
    async def close(code: int, reason: str) -> None:
        if websocket.client_state is not WebSocketState.DISCONNECTED:  # else: nothing to close
            await websocket.close(code, reason)

    return close


def _data(message: Any) -> str | bytes:
    data: str | bytes = message.get("text") or message.get("bytes") or ""
    return data


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
    metrics_token = config.server.metrics_token or config.server.token

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
        if metrics_token and not _presents(request, metrics_token):
            METRICS.count("metrics_refused")
            return JSONResponse(
                {"error": "unauthorized", "message": "/metrics needs the metrics token"},
                status_code=401,
                headers={"WWW-Authenticate": 'Bearer realm="voxgate"'},
            )
        METRICS.gauges["calls_active"] = len(the_bridge.sessions)
        METRICS.gauges["streams_pending"] = the_bridge.pending
        return PlainTextResponse(METRICS.render(), media_type="text/plain; version=0.0.4")

    def stream_route(carrier: CarrierSpec) -> WebSocketRoute:
        async def stream(websocket: WebSocket) -> None:
            await the_bridge.carrier_stream(websocket, carrier)

        return WebSocketRoute(f"/v1/streams/{carrier.name}", stream)

    routes = [
        Route("/healthz", healthz),
        Route("/metrics", metrics),
        *(stream_route(carrier) for carrier in CARRIERS.values()),
    ]
    app = Starlette(routes=routes, lifespan=lifespan)
    app.state.bridge = the_bridge
    return app


def _presents(request: Request, token: str) -> bool:
    """Whether the request carries ``token`` (``Authorization: Bearer`` or ``?token=``)."""
    scheme, _, credentials = request.headers.get("authorization", "").partition(" ")
    presented = credentials.strip() if scheme.lower() == "bearer" else ""
    presented = presented or request.query_params.get("token", "")
    return bool(presented) and _same_secret(presented, token)
