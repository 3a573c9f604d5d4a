"""Running the bridge: one port, two servers behind it.

uvicorn (with uvloop where available) accepts every connection with
:func:`guarded_http`'s protocol. A connection whose first bytes are
``GET /v1/streams/`` is a carrier's media stream: it is handed over, bytes
read so far included, to picows (:mod:`voxgate.bridge.aio.ingress`), which
parses its frames in C and calls the bridge directly; ASGI never sees it.
Everything else (health, metrics, the HTTP API) is served by the Starlette
app. The choice costs one prefix comparison per connection, nothing per frame.

Before a request is handled, a connection is held to ``server.handshake_timeout``:
a deadline for the whole request head (the WebSocket upgrade included, which
picows then enforces), so slowloris clients and silent TCP connections are
closed instead of held forever.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.util
import logging
import os
import socket
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from types import FrameType

import h11
import uvicorn
from picows import WSAutoPingStrategy
from picows.picows import WSProtocol  # type: ignore[attr-defined]  # not in its stub
from uvicorn.protocols.http.h11_impl import H11Protocol

from voxgate.bridge.aio.app import Bridge, create_app
from voxgate.bridge.aio.fastws import WS_MAX_SIZE
from voxgate.bridge.aio.ingress import STREAMS_PREFIX, stream_door
from voxgate.bridge.aio.node import NodeLink, Supervisor, tcp_socket
from voxgate.codecs.resample import prepare_filters
from voxgate.config import Config
from voxgate.obs import METRICS

log = logging.getLogger("voxgate.server")
_PICOWS_LOG = logging.getLogger("picows.server")


def guarded_http(handshake_timeout: float, bridge: Bridge) -> type[asyncio.Protocol]:
    """uvicorn's HTTP/1.1 protocol with a deadline for each request head, which hands a
    connection that opens with a carrier stream's upgrade to picows."""

    def media_protocol() -> WSProtocol:
        return WSProtocol(
            None,  # host and port: server side
            None,  # path: server side
            False,  # is_client_side
            lambda request: stream_door(bridge, request),
            _PICOWS_LOG,
            True,  # disconnect_on_exception
            handshake_timeout,
            False,  # enable_auto_ping (carriers keep their own streams alive)
            20.0,
            20.0,
            WSAutoPingStrategy.PING_WHEN_IDLE,
            True,  # enable_auto_pong
            WS_MAX_SIZE,
            None,  # extra_headers: client side only
            16 * 1024,
        )

    class GuardedH11Protocol(H11Protocol):
        _deadline: asyncio.TimerHandle | None = None
        _first: bytes | None = b""  # the connection's first bytes, until it is known whose

        def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
            super().connection_made(transport)
            self._arm()

        def connection_lost(self, exc: Exception | None) -> None:
            self._disarm()
            super().connection_lost(exc)

        def data_received(self, data: bytes) -> None:
            if self._first is None:
                super().data_received(data)
                return
            first = self._first + data
            if len(first) < len(STREAMS_PREFIX) and STREAMS_PREFIX.startswith(first):
                self._first = first  # too short to tell yet
                return
            self._first = None
            if first.startswith(STREAMS_PREFIX):
                self._hand_over(first)
            else:
                super().data_received(first)

        def _hand_over(self, first: bytes) -> None:
            """A carrier stream: picows takes the connection, uvicorn forgets it."""
            self._disarm()
            self._unset_keepalive_if_required()
            self.connections.discard(self)
            media = media_protocol()
            self.transport.set_protocol(media)
            media.connection_made(self.transport)
            view = memoryview(first)
            while view:
                buffer = media.get_buffer(len(view))
                size = min(len(buffer), len(view))
                buffer[:size] = view[:size]
                media.buffer_updated(size)
                view = view[size:]

        def handle_events(self) -> None:
            super().handle_events()
            if self.conn.their_state is not h11.IDLE:  # the request head has arrived
                self._disarm()

        def on_response_complete(self) -> None:
            super().on_response_complete()
            self._arm()  # the next request on this connection gets its own deadline
            if not self.transport.is_closing() and not self.conn.trailing_data[0]:
                self._first = b""  # the next request may be a stream's upgrade too

        def _unsupported_upgrade_warning(self) -> None:
            # An upgrade to a path that holds no stream: plain HTTP answers it (404).
            log.debug("an upgrade request outside /v1/streams/ is served as plain HTTP")

        def _arm(self) -> None:
            self._disarm()
            self._deadline = self.loop.call_later(handshake_timeout, self._too_slow)

        def _disarm(self) -> None:
            if self._deadline is not None:
                self._deadline.cancel()
                self._deadline = None

        def _too_slow(self) -> None:
            self._deadline = None
            if not self.transport.is_closing():
                METRICS.count("connections_timed_out")
                log.debug("closing a connection that sent no request in time")
                self.transport.close()

    return GuardedH11Protocol


def uvicorn_config(config: Config, bridge: Bridge, *, port: int | None = None) -> uvicorn.Config:
    return uvicorn.Config(
        create_app(config, bridge),
        host=config.server.host,
        port=config.server.port if port is None else port,
        loop="uvloop" if importlib.util.find_spec("uvloop") else "asyncio",
        http=guarded_http(config.server.handshake_timeout, bridge),
        ws="none",
        log_config=None,
        access_log=False,
        lifespan="on",
        timeout_graceful_shutdown=5,
    )


class DrainingServer(uvicorn.Server):
    """uvicorn, except that the first stop signal lets the calls under way finish.

    For ``server.drain_seconds`` after SIGTERM or SIGINT the bridge is draining
    (``/healthz`` answers 503, new streams are refused) while calls go on; uvicorn
    stops when the last call ends or the time is up, whichever comes first, and
    at once on a second signal.
    """

    def __init__(self, config: uvicorn.Config, bridge: Bridge, drain_seconds: float) -> None:
        super().__init__(config)
        self.bridge = bridge
        self.drain_seconds = drain_seconds
        self._loop: asyncio.AbstractEventLoop | None = None
        self._draining = False

    async def serve(self, sockets: list[socket.socket] | None = None) -> None:
        self._loop = asyncio.get_running_loop()
        await super().serve(sockets)

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        if self._draining or self.drain_seconds <= 0 or self._loop is None:
            super().handle_exit(sig, frame)
            return
        self._draining = True
        self.bridge.draining = True
        log.info(
            "draining: %d calls may go on for %.0f s", len(self.bridge.sessions), self.drain_seconds
        )
        deadline = time.monotonic() + self.drain_seconds
        # A signal handler runs between two bytecodes: hand the wait to the event loop.
        self._loop.call_soon_threadsafe(self._watch_drain, sig, frame, deadline)

    def _watch_drain(self, sig: int, frame: FrameType | None, deadline: float) -> None:
        if self.bridge.sessions and time.monotonic() < deadline and not self.should_exit:
            assert self._loop is not None
            self._loop.call_later(0.1, self._watch_drain, sig, frame, deadline)
            return
        super().handle_exit(sig, frame)


def serve(config: Config) -> None:
    """``voxgate serve``: run until interrupted (ConfigError: the port cannot be had).

    One worker: the bridge runs in this process. More: a node of that many worker
    processes sharing the port (:mod:`voxgate.bridge.aio.node`).
    """
    config.check_listen_safe()
    workers = config.server.worker_count()
    if workers > 1:
        prepare_filters()  # once, before the fork: every worker has them
        Supervisor(config, workers, run_worker).run()
        return
    listener = bind(config.server.host, config.server.port)
    host, port = listener.getsockname()[:2]
    log.info("voxgate listening on %s:%d", host, port)
    _run(config, Bridge(config), listener)


def run_worker(config: Config, node: NodeLink) -> None:
    """One worker of a node: its own listening socket on the node's port."""
    listener = tcp_socket(config.server.host, config.server.port, reuse_port=True)
    listener.set_inheritable(True)
    log.info("worker %d listening (pid %d)", node.slot, os.getpid())
    _run(config, Bridge(config, node), listener)


def _run(config: Config, bridge: Bridge, listener: socket.socket) -> None:
    server = DrainingServer(uvicorn_config(config, bridge), bridge, config.server.drain_seconds)
    try:
        server.run(sockets=[listener])
    finally:
        listener.close()


def bind(host: str, port: int) -> socket.socket:
    """The listening socket, bound before anything is announced; a clear error if taken."""
    listener = tcp_socket(host, port, reuse_port=False)
    listener.set_inheritable(True)
    return listener


@dataclass
class RunningBridge:
    """A bridge serving on a loopback port inside the current event loop (tests, benchmarks)."""

    bridge: Bridge
    server: uvicorn.Server
    port: int

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}"


@contextlib.asynccontextmanager
async def running_bridge(config: Config) -> AsyncIterator[RunningBridge]:
    """Serve ``config`` on a free loopback port until the block ends."""
    bridge = Bridge(config)
    sock = bind("127.0.0.1", 0)
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn_config(config, bridge, port=port))
    task = asyncio.create_task(server.serve(sockets=[sock]))
    try:
        while not server.started:
            if task.done():
                task.result()
            await asyncio.sleep(0.01)
        yield RunningBridge(bridge, server, port)
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, 10)
        sock.close()
