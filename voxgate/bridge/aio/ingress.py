"""Carrier media streams: the upgrade, the wait for ``start``, and the call's life.

A connection whose request line is ``GET /v1/streams/...`` is handed over by
the HTTP server (:mod:`voxgate.bridge.aio.server`) to picows before any ASGI
work. :func:`stream_door` is picows' listener factory: it routes the path to a
carrier of the registry and authenticates the upgrade (refused: HTTP 403,
unknown path: 404) -- ``server.token`` as a ``token`` query parameter or in the
carrier's token header, or the carrier's own request signature (Twilio's
``X-Twilio-Signature``) when its credentials are set; with nothing configured
(allowed on loopback only) the streams are open. Secrets are compared as
bytes, in constant time.

A :class:`CarrierStream` is one accepted stream. Theory of operation:

- accepted: counted as pending (at most ``server.max_pending``; more get
  1013) and given ``server.start_timeout`` to send ``start`` (else 1008);
- ``start``: what follows waits in the socket (reading paused) while the
  bridge vets the bot and opens the call, then every message goes straight
  from picows' callback into the call's session: no task, no queue;
- closed by the carrier: the call hears "caller hung up". voxgate's own
  shutdown ends the calls first (the bot hears "shutdown"), then closes the
  streams still waiting for ``start`` with 1012.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
from typing import TYPE_CHECKING, Final
from urllib.parse import parse_qsl, unquote

from picows import WSUpgradeRequest, WSUpgradeResponse, WSUpgradeResponseWithListener

from voxgate.bridge.aio.fastws import FastSocket
from voxgate.bridge.carriers.registry import CARRIERS, CarrierSpec, Upgrade
from voxgate.bridge.dialect import Dialect, Message
from voxgate.bridge.events import StreamConnected, StreamStarted
from voxgate.config import is_loopback
from voxgate.errors import ProtocolError
from voxgate.obs import METRICS

if TYPE_CHECKING:
    from voxgate.bridge.aio.app import Bridge
    from voxgate.bridge.aio.session import CallSession

log = logging.getLogger("voxgate.bridge")

STREAMS_PREFIX: Final = b"GET /v1/streams/"
TRY_AGAIN_LATER: Final = 1013  # RFC 6455 section 7.4.1 (IANA registry)
MESSAGE_TOO_BIG: Final = 1009
POLICY_VIOLATION: Final = 1008
SERVER_SHUTTING_DOWN: Final = 1012


def stream_door(
    bridge: Bridge, request: WSUpgradeRequest
) -> FastSocket | WSUpgradeResponseWithListener | None:
    """picows' listener factory for ``/v1/streams/{carrier}``; see the module docstring."""
    raw_path, _, raw_query = request.path.decode("latin-1").partition("?")
    path = unquote(raw_path)
    carrier = CARRIERS.get(path.removeprefix("/v1/streams/"))
    if carrier is None or not path.startswith("/v1/streams/"):
        return None  # 404
    upgrade = _upgrade(bridge, request, path, raw_path, raw_query)
    refusal = _refusal(bridge, upgrade, carrier)
    if refusal:
        METRICS.count("streams_refused", carrier=carrier.name, why=refusal.split(" ")[0])
        log.warning("refused a %s stream: %s", carrier.name, refusal)
        response = WSUpgradeResponse.create_error_response(403, refusal.encode())
        return WSUpgradeResponseWithListener(response, None)
    stream = CarrierStream(bridge, carrier)
    offered = [p.strip() for p in upgrade.headers.get("sec-websocket-protocol", "").split(",")]
    if carrier.subprotocol is not None and carrier.subprotocol in offered:
        chosen = WSUpgradeResponse.create_101_response(
            extra_headers={"Sec-WebSocket-Protocol": carrier.subprotocol}
        )
        return WSUpgradeResponseWithListener(chosen, stream.socket)
    return stream.socket


class CarrierStream:
    """One carrier stream; see the module docstring."""

    def __init__(self, bridge: Bridge, carrier: CarrierSpec) -> None:
        self.bridge = bridge
        self.carrier = carrier
        self.socket = FastSocket("carrier", latency_metric="outbound_latency_seconds")
        self.socket.on_message = self._before_start
        self.socket.accepting = self._accepting
        self.socket.on_closed = self._closed
        self.session: CallSession | None = None
        self._dialect: Dialect = carrier.make_dialect()
        self.waiting = False  # accepted, waiting for start (counts against max_pending)
        self._opening = False
        loop = asyncio.get_running_loop()
        self._deadline: asyncio.TimerHandle | None = loop.call_later(
            bridge.config.server.start_timeout, self._no_start
        )
        bridge.streams.add(self)
        if bridge.pending >= bridge.config.server.max_pending:
            METRICS.count("streams_refused", carrier=carrier.name, why="too_many_pending")
            log.warning("refused a %s stream: too many streams without start", carrier.name)
            self._stop_waiting()
            loop.call_soon(self.socket.close, TRY_AGAIN_LATER, "too many streams starting")
            return
        METRICS.count("streams_accepted", carrier=carrier.name)
        self.waiting = True

    # --- before start -----------------------------------------------------------------

    def _before_start(self, message: Message) -> None:
        if self.socket.closing:
            return
        started = self._parse_before_start(message)
        if started is not None:
            self._opening = True  # what follows waits in the socket until the call is open
            task = asyncio.ensure_future(self._open(started))
            self.bridge.track(task)

    def _accepting(self) -> bool:
        return not self._opening

    def _parse_before_start(self, message: Message) -> StreamStarted | None:
        try:
            event = self._dialect.parse_upstream(message)
        except ProtocolError as error:
            METRICS.count("protocol_errors", side="carrier", code=error.code)
            log.warning("carrier message before start refused: %s", error.message)
            if error.code == "message_too_large":
                self._give_up(MESSAGE_TOO_BIG, "message too large before start")
            elif error.fatal:
                self._give_up(error.close_code, error.code)
            return None
        if isinstance(event, StreamStarted):
            return event
        if not isinstance(event, StreamConnected):
            METRICS.count("protocol_errors", side="carrier", code="not_started")
        return None

    async def _open(self, started: StreamStarted) -> None:
        self._stop_waiting()
        session = await self.bridge.open_session(self.carrier, self._dialect, self.socket, started)
        if session is None or self.socket.gone:
            if session is not None:
                self._wind_up(session)
            self._opening = False
            self.socket.resume()  # refused: read on, up to the carrier's answer to the close
            return
        self.session = session
        self.socket.on_message = session.on_carrier_message  # from now on: straight in
        self._opening = False
        self.socket.resume()

    def _no_start(self) -> None:
        self._deadline = None
        if self.session is None and not self._opening:
            METRICS.count("streams_refused", carrier=self.carrier.name, why="no_start")
            log.warning("a %s stream sent no start in time; closing it", self.carrier.name)
            self._give_up(POLICY_VIOLATION, "no start in time")

    def _give_up(self, code: int, reason: str) -> None:
        self._stop_waiting()
        self.socket.close(code, reason)

    def _stop_waiting(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None
        self.waiting = False

    # --- the end ----------------------------------------------------------------------

    def _closed(self, code: int | None) -> None:
        self._stop_waiting()
        self.bridge.streams.discard(self)
        if self.session is not None:
            self._wind_up(self.session)

    def _wind_up(self, session: CallSession) -> None:
        self.session = None
        session.on_carrier_closed()
        self.bridge.forget(session)

    def shut_down(self) -> None:
        """voxgate is stopping and this stream holds no call: close it with 1012."""
        self._stop_waiting()
        self.socket.close(SERVER_SHUTTING_DOWN, "server shutting down")


# --- the upgrade ----------------------------------------------------------------------


def _upgrade(
    bridge: Bridge, request: WSUpgradeRequest, path: str, raw_path: str, raw_query: str
) -> Upgrade:
    """The upgrade request as data, with the URL the carrier signed: ``server.public_url``
    + path and query when set, else the URL as voxgate saw it."""
    headers = {name.lower(): value for name, value in request.headers.items()}
    query = f"?{raw_query}" if raw_query else ""
    base = bridge.config.server.public_url.rstrip("/")
    host = headers.get("host", f"{bridge.config.server.host}:{bridge.config.server.port}")
    signed = f"{base}{raw_path}{query}" if base else f"ws://{host}{raw_path}{query}"
    return Upgrade(
        url=signed,
        path=path,
        query=dict(parse_qsl(raw_query, keep_blank_values=True)),
        headers=headers,
    )


def _refusal(bridge: Bridge, upgrade: Upgrade, carrier: CarrierSpec) -> str:
    """Why this upgrade is refused, or "" to accept it."""
    if bridge.draining:
        return "draining"
    config = bridge.config
    server = config.server
    presented = upgrade.query.get("token", "")
    if not presented and carrier.token_header:
        presented = upgrade.headers.get(carrier.token_header, "")
    if server.token and presented and same_secret(presented, server.token):
        return ""
    if carrier.signature_valid is not None and carrier.signature_valid(config, upgrade):
        return ""
    required = bool(server.token) or carrier.requires_signature(config)
    if not required and is_loopback(server.host):
        return ""
    return "missing or wrong token or signature" if required else "no token configured"


def same_secret(presented: str, expected: str) -> bool:
    """Constant-time comparison of secrets as bytes (any text, ASCII or not)."""
    return hmac.compare_digest(
        presented.encode("utf-8", "surrogateescape"), expected.encode("utf-8", "surrogateescape")
    )
