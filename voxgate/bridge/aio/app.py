"""The bridge's shared state, and its HTTP side (health and metrics).

Routes (Starlette, served by uvicorn):

- ``GET /healthz``: 200 ``{"status": "ok", ...}`` (503 while draining).
- ``GET /metrics``: counters in Prometheus' text format; it asks for
  ``server.metrics_token`` (else ``server.token``) when one is set.

Carrier media streams (``WS /v1/streams/{carrier}``) share the port but not
the ASGI path: :mod:`voxgate.bridge.aio.server` hands those connections to
picows, and :mod:`voxgate.bridge.aio.ingress` authenticates them, waits for
``start`` and calls :meth:`Bridge.open_session`.

The :class:`Bridge` holds what all calls share: the configuration, the one
scheduler, the HTTP client for carrier REST calls, the built-in echo bot (the
default bot, reached over a real loopback WebSocket like any other), the
carrier streams still connected and the sessions of the calls under way. A
bot URL given with the call (``wss_url``) is vetted first
(:mod:`voxgate.bridge.aio.botaddr`) and reached at the address that was
checked. Each call's inbound audio is held to ``server.max_inbound_rate``
(:mod:`voxgate.bridge.ratelimit`).
"""

from __future__ import annotations

import asyncio
import gc
import logging
import os
import socket
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import replace
from typing import Any, Final

import httpx
from fastapi import FastAPI
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from websockets.asyncio.server import Server

from voxgate import __version__
from voxgate.bots.echo import serve_echo
from voxgate.bridge.aio.botaddr import BotAddressRefused, vet_bot_url
from voxgate.bridge.aio.fastws import FastSocket
from voxgate.bridge.aio.ingress import CarrierStream, same_secret
from voxgate.bridge.aio.node import NodeLink, merged_metrics
from voxgate.bridge.aio.rest import CarrierRest
from voxgate.bridge.aio.scheduler import Scheduler
from voxgate.bridge.aio.session import (
    BotTarget,
    CallSession,
    CarrierAction,
    CarrierLeg,
    StreamLeg,
)
from voxgate.bridge.aio.sipserver import SipServer
from voxgate.bridge.botlink.dialects import canonical_bot_dialect
from voxgate.bridge.call_api import CallPolicy
from voxgate.bridge.carriers.registry import CarrierSpec
from voxgate.bridge.carriers.telnyx import TelnyxDialect
from voxgate.bridge.control.app import build_api
from voxgate.bridge.control.plane import ControlPlane
from voxgate.bridge.dialect import Dialect
from voxgate.bridge.events import StreamStarted
from voxgate.bridge.ratelimit import InboundRate
from voxgate.codecs.formats import PCMU_8K, AudioFormat
from voxgate.codecs.resample import prepare_filters
from voxgate.config import BotConfig, Config, parse_header_lines
from voxgate.errors import ConfigError, UnsupportedFormatError
from voxgate.obs import METRICS, process_figures, render_exposition
from voxgate.redact import redact_url, scrub

log = logging.getLogger("voxgate.bridge")

INGRESSES: Final = ("twilio", "telnyx", "plivo", "sip", "test")  # calls_active_<ingress>
TRY_AGAIN_LATER: Final = 1013  # RFC 6455 section 7.4.1 (IANA registry)
POLICY_VIOLATION: Final = 1008


class Bridge:
    """Shared state of the running bridge; see the module docstring."""

    def __init__(self, config: Config, node: NodeLink | None = None) -> None:
        self.config = config
        self.node = node  # the node this worker belongs to; None: a node of one
        self.scheduler = Scheduler()
        self.sessions: dict[str, CallSession] = {}
        self.streams: set[CarrierStream] = set()  # every carrier stream still connected
        self.draining = False
        self.echo_url = ""
        self._echo: Server | None = None
        self._client: httpx.AsyncClient | None = None
        self._tasks: set[asyncio.Future[None]] = set()
        self._held = 0  # places reserved for calls without a session yet (no node)
        self.sip: SipServer | None = None
        self.control: ControlPlane | None = None  # the REST control plane, when it runs

    async def start(self) -> None:
        self._client = httpx.AsyncClient()
        self._echo = await serve_echo("127.0.0.1", 0)
        port = next(iter(self._echo.sockets)).getsockname()[1]
        self.echo_url = f"ws://127.0.0.1:{port}/"
        if self.node is not None:
            self.node.snapshot = self.snapshot
            await self.node.start()
        prepare_filters()  # not in the middle of the first call at a new pair of rates
        if self.config.sip.enabled:  # after that: a SIP call may come at once
            self.sip = SipServer(self)
            await self.sip.start()
        # What start-up made lives as long as the process: keep the collector off it.
        gc.collect()
        gc.freeze()

    async def stop(self) -> None:
        self.draining = True
        await asyncio.gather(*(s.close() for s in list(self.sessions.values())))
        if self.sip is not None:
            await self.sip.stop()
        waiting = list(self.streams)
        for stream in waiting:
            stream.shut_down()
        await asyncio.gather(*(stream.socket.wait_closed(1.0) for stream in waiting))
        for task in list(self._tasks):
            task.cancel()
        self.scheduler.close()
        if self.node is not None:
            await self.node.stop()
        if self._echo is not None:
            self._echo.close()
            await self._echo.wait_closed()
        if self._client is not None:
            await self._client.aclose()

    # --- the calls -----------------------------------------------------------------------

    @property
    def pending(self) -> int:
        """Carrier streams accepted that have not started a call yet."""
        return sum(1 for stream in self.streams if stream.waiting)

    def track(self, task: asyncio.Future[None]) -> None:
        """Keep a task of the bridge's alive until it is done (and cancel it at stop)."""
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def forget(self, session: CallSession) -> None:
        if self.sessions.pop(session.call_id, None) is not None and self.node is not None:
            self.node.release()
        self.scheduler.forget(session)

    def _admit(self) -> bool:
        """Room for one more call: on this node as a whole (a place is taken), or here."""
        if self.node is not None:
            return self.node.reserve()
        return len(self.sessions) + self._held < self.config.server.max_calls

    def reserve(self) -> bool:
        """Hold a place for a call that has no session yet (a SIP call ringing)."""
        if self.draining or not self._admit():
            return False
        if self.node is None:
            self._held += 1
        return True

    def release(self) -> None:
        """Give back a place :meth:`reserve` held for a call that never got a session."""
        if self.node is not None:
            self.node.release()
        else:
            self._held = max(0, self._held - 1)

    def full(self) -> bool:
        """No room for one more call (on the node, when there is one)."""
        if self.node is not None:
            return self.node.full()
        return len(self.sessions) + self._held >= self.config.server.max_calls

    def snapshot(self, metrics: bool) -> dict[str, Any]:
        """This worker's calls (and with ``metrics`` its figures), for its node's /healthz,
        call lookups and /metrics."""
        calls = {
            "slot": self.node.slot if self.node is not None else 0,
            "pid": os.getpid(),
            "draining": self.draining,
            "calls": list(self.sessions),
        }
        if not metrics:
            return calls
        self.update_gauges()
        return calls | METRICS.snapshot()

    def update_gauges(self) -> None:
        METRICS.gauges["calls_active"] = len(self.sessions)
        by_ingress = dict.fromkeys(INGRESSES, 0)
        for session in self.sessions.values():
            if session.carrier in by_ingress:
                by_ingress[session.carrier] += 1
        for ingress, calls in by_ingress.items():
            METRICS.gauges[f"calls_active_{ingress}"] = calls
        METRICS.gauges["streams_pending"] = self.pending
        METRICS.gauges.update(process_figures())  # summed over a node's workers

    async def open_session(
        self,
        carrier: CarrierSpec,
        dialect: Dialect,
        carrier_socket: FastSocket,
        started: StreamStarted,
    ) -> CallSession | None:
        busy = "draining" if self.draining else "full"
        name = carrier.name
        if self.draining or not self._admit():
            METRICS.count("streams_refused", carrier=name, why=busy)
            log.warning("%s: refused a call", busy, extra={"carrier_call_id": started.call_id})
            carrier_socket.close(TRY_AGAIN_LATER, f"voxgate is {busy}; try again later")
            return None
        if self.control is not None:
            decision = await self.control.decide(
                to_number=started.to_number,
                from_number=started.from_number,
                carrier=name,
                carrier_call_id=started.call_id,
            )
            if not decision.accept:
                METRICS.count("streams_refused", carrier=name, why="rejected")
                log.info(
                    "call rejected: %s", decision.reason, extra={"carrier_call_id": started.call_id}
                )
                carrier_socket.close(POLICY_VIOLATION, "rejected")
                if self.node is not None:
                    self.node.release()
                return None
            params = {**started.custom_parameters, **decision.parameters}
            started = replace(started, custom_parameters=params)
        try:
            bot = await self._vetted(self.bot_target(started), started)
        except (ConfigError, UnsupportedFormatError, BotAddressRefused) as error:
            why = "bot_not_allowed" if isinstance(error, BotAddressRefused) else "bad_parameters"
            reason = scrub(str(error))
            METRICS.count("streams_refused", carrier=name, why=why)
            log.warning(
                "stream start refused: %s", reason, extra={"carrier_call_id": started.call_id}
            )
            carrier_socket.close(POLICY_VIOLATION, reason)
            if self.node is not None:
                self.node.release()
            return None
        call_id = f"vx-{uuid.uuid4().hex[:20]}"
        started = _with_prompts(started, bot)
        carrier_socket.call_id = call_id
        session = CallSession(
            call_id=call_id,
            carrier=name,
            carrier_leg=StreamLeg(dialect, carrier_socket),
            carrier_dialect=dialect,
            started=started,
            bot=bot,
            policy=self.policy(carrier, bot),
            schedule=self.scheduler.schedule,
            carrier_action=self._carrier_rest(carrier, started.call_id),
            inbound_rate=InboundRate(self.config.server.max_inbound_rate),
        )
        self._started(session, name, started)
        return session

    def open_leg_session(
        self,
        carrier: str,
        leg: CarrierLeg,
        started: StreamStarted,
        *,
        carrier_action: CarrierAction | None,
        call_id: str,
        dtmf_events: bool = False,
    ) -> CallSession:
        """The session of a call that holds a place (:meth:`reserve`; a SIP call): its bot is the
        route's for the called number; the leg echoes no marks, can hang up and transfer, and
        sends DTMF as events when ``dtmf_events``.
        Raises :class:`ConfigError` or :class:`UnsupportedFormatError` for a bad bot setting."""
        bot = self.bot_target(started)
        started = _with_prompts(started, bot)
        policy = replace(
            self.policy_for(bot),
            carrier_rest=carrier_action is not None,
            carrier_marks=False,
            carrier_dtmf_events=dtmf_events,
        )
        session = CallSession(
            call_id=call_id,
            carrier=carrier,
            carrier_leg=leg,
            started=started,
            bot=bot,
            policy=policy,
            schedule=self.scheduler.schedule,
            carrier_action=carrier_action,
        )
        if self.node is None:
            self._held = max(0, self._held - 1)
        self._started(session, carrier, started)
        return session

    def _started(self, session: CallSession, carrier: str, started: StreamStarted) -> None:
        self.sessions[session.call_id] = session
        METRICS.count("calls_started", carrier=carrier)
        if self.control is not None:
            self.control.call_started(session, carrier, started)
        bot = session.bot
        log.info(
            "call started: %s, bot %s (%s, %s)",
            carrier,
            redact_url(bot.url),
            bot.dialect,
            bot.audio,
            extra={"call_id": session.call_id, "carrier_call_id": started.call_id},
        )

    # --- decisions ------------------------------------------------------------------------

    def bot_target(self, started: StreamStarted) -> BotTarget:
        """The bot: custom parameters, else the route for the called number, else the default."""
        params = started.custom_parameters
        configured = self.bot_config_for(started.to_number)
        url = params.get("wss_url") or configured.url or self.echo_url
        if not url.startswith(("ws://", "wss://")):
            raise ConfigError(f"wss_url must start with ws:// or wss://, not {url[:40]!r}")
        dialect = canonical_bot_dialect(params.get("bot_dialect") or configured.dialect)
        if url == self.echo_url:
            dialect = "voxgate.v1"  # the built-in echo speaks voxgate.v1 only, whatever was asked
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
        configured = self.bot_config_for(started.to_number)
        private_allowed = self.config.private_allowed(configured.private_targets)
        target = await vet_bot_url(bot.url, allow=configured.allow, private_allowed=private_allowed)
        return replace(bot, address=target.address)

    def bot_config_for(self, called_number: str | None) -> BotConfig:
        """The bot of a called number: its number route (the control plane's store), else
        the configuration's route, else ``[bot]``."""
        if self.control is not None:
            routed = self.control.bot_config_for(called_number)
            if routed is not None:
                return routed
        return self.config.bot_for(called_number)

    def policy(self, carrier: CarrierSpec, bot: BotTarget) -> CallPolicy:
        return replace(
            self.policy_for(bot),
            carrier_rest=carrier.rest_enabled(self.config),
            carrier_marks=carrier.echoes_marks,
        )

    def policy_for(self, bot: BotTarget) -> CallPolicy:
        """The call policy from the configuration, for any kind of carrier leg."""
        configured = self.config.bot
        call = self.config.call
        return CallPolicy(
            hangup_after_playout=call.hangup_after_playout,
            max_hangup_wait=call.max_hangup_wait,
            reconnect_for=configured.reconnect_for,
            connect_timeout=bot.connect_timeout,
            fallback=configured.fallback,
            max_queued_audio=call.max_queued_audio,
            max_marks=call.max_marks,
            max_mark_name=call.max_mark_name,
            max_transcript_bytes=call.max_transcript_bytes,
        )

    def _carrier_rest(self, carrier: CarrierSpec, call_id: str) -> CarrierRest | None:
        if not carrier.rest_enabled(self.config) or self._client is None:
            return None
        return CarrierRest(carrier, self.config, call_id, self._client)


def _with_prompts(started: StreamStarted, bot: BotTarget) -> StreamStarted:
    """The route's opening text and prompt win over what came with the call."""
    return replace(
        started,
        opening_text=bot.opening_text or started.opening_text,
        system_prompt=bot.system_prompt or started.system_prompt,
    )


def _bot_headers(text: str) -> tuple[tuple[str, str], ...]:
    """A call's ``wss_header``; an error names the problem, never the text (it holds secrets)."""
    try:
        return parse_header_lines(text)
    except ConfigError:
        raise ConfigError("wss_header is not valid 'Name: value' lines") from None


def create_app(config: Config, bridge: Bridge | None = None) -> FastAPI:
    """The ASGI app serving ``config`` (pass ``bridge`` to reach its state from tests):
    health, metrics and the REST control plane (:mod:`voxgate.bridge.control`)."""
    the_bridge = bridge or Bridge(config)
    metrics_token = config.server.metrics_token or config.server.token

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        control = ControlPlane(config, the_bridge, owner=_owner(config, the_bridge))
        await control.start()
        the_bridge.control = control
        app.state.control = control
        try:
            await the_bridge.start()
            yield
        finally:
            await the_bridge.stop()
            the_bridge.control = None
            await control.stop()

    async def healthz(request: Request) -> Response:
        body: dict[str, object] = {
            "status": "draining" if the_bridge.draining else "ok",
            "version": __version__,
            "calls": len(the_bridge.sessions),
        }
        if the_bridge.node is not None:  # the node's figures, not this worker's
            workers = await the_bridge.node.gather()
            body["calls"] = sum(len(worker["calls"]) for worker in workers)
            body["workers"] = [
                {"slot": w["slot"], "pid": w["pid"], "calls": len(w["calls"])} for w in workers
            ]
        return JSONResponse(body, status_code=503 if the_bridge.draining else 200)

    async def readyz(request: Request) -> Response:
        """Ready for one more call: 503 while draining or at capacity."""
        busy = "draining" if the_bridge.draining else "full" if the_bridge.full() else None
        body = {"status": busy or "ready", "calls": len(the_bridge.sessions)}
        return JSONResponse(body, status_code=503 if busy else 200)

    async def metrics(request: Request) -> Response:
        if metrics_token and not _presents(request, metrics_token):
            METRICS.count("metrics_refused")
            return JSONResponse(
                {"error": {"code": "unauthorized", "message": "/metrics needs the metrics token"}},
                status_code=401,
                headers={"WWW-Authenticate": 'Bearer realm="voxgate"'},
            )
        control = the_bridge.control
        if control is not None:
            await control.update_gauges()
        if the_bridge.node is None:
            the_bridge.update_gauges()
            text = METRICS.render()
        else:  # every worker's figures, summed
            merged = merged_metrics(await the_bridge.node.gather(metrics=True))
            text = render_exposition(merged["counters"], merged["observed"], merged["gauges"])
        return PlainTextResponse(text, media_type="text/plain; version=0.0.4")

    app = build_api(lifespan=lifespan, max_body=config.api.max_body)
    app.add_route("/healthz", healthz, include_in_schema=False)
    app.add_route("/readyz", readyz, include_in_schema=False)
    app.add_route("/metrics", metrics, include_in_schema=False)
    app.state.bridge = the_bridge
    return app


def _owner(config: Config, bridge: Bridge) -> str:
    """This worker's name in the store (which calls it holds): stable across restarts."""
    slot = bridge.node.slot if bridge.node is not None else 0
    node = config.server.node_name or f"{socket.gethostname()}:{config.server.port}"
    return f"{node}/{slot}"


def _presents(request: Request, token: str) -> bool:
    """Whether the request carries ``token`` (``Authorization: Bearer`` or ``?token=``)."""
    scheme, _, credentials = request.headers.get("authorization", "").partition(" ")
    presented = credentials.strip() if scheme.lower() == "bearer" else ""
    presented = presented or request.query_params.get("token", "")
    return bool(presented) and same_secret(presented, token)
