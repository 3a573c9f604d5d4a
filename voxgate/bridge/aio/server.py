"""Running the bridge: uvicorn (with uvloop where available) serving the Starlette app.

Before a request is handled, a connection is held to ``server.handshake_timeout``:
:func:`guarded_http` gives uvicorn's HTTP protocol a deadline for the whole
request head (the WebSocket upgrade included), so slowloris clients and
silent TCP connections are closed instead of held forever.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.util
import logging
import socket
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from types import FrameType

import h11
import uvicorn
from uvicorn.protocols.http.h11_impl import H11Protocol

from voxgate.bridge.aio.app import Bridge, create_app
from voxgate.bridge.aio.botsocket import WS_MAX_SIZE
from voxgate.config import Config
from voxgate.errors import ConfigError
from voxgate.obs import METRICS

log = logging.getLogger("voxgate.server")


def guarded_http(handshake_timeout: float) -> type[asyncio.Protocol]:
    """uvicorn's HTTP/1.1 protocol with a deadline for each request head."""

    class GuardedH11Protocol(H11Protocol):
        _deadline: asyncio.TimerHandle | None = None

        def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
            super().connection_made(transport)
            self._arm()

        def connection_lost(self, exc: Exception | None) -> None:
            self._disarm()
            super().connection_lost(exc)

        def handle_events(self) -> None:
            super().handle_events()
            if self.conn.their_state is not h11.IDLE:  # the request head has arrived
                self._disarm()

        def on_response_complete(self) -> None:
            super().on_response_complete()
            self._arm()  # the next request on this connection gets its own deadline

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
        http=guarded_http(config.server.handshake_timeout),
        ws="websockets-sansio",
        ws_max_size=WS_MAX_SIZE,
        ws_per_message_deflate=False,
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
    """``voxgate serve``: run until interrupted (ConfigError: the port cannot be had)."""
    config.check_listen_safe()
    listener = bind(config.server.host, config.server.port)
    bridge = Bridge(config)
    server = DrainingServer(uvicorn_config(config, bridge), bridge, config.server.drain_seconds)
    host, port = listener.getsockname()[:2]
    log.info("voxgate listening on %s:%d", host, port)
    try:
        server.run(sockets=[listener])
    finally:
        listener.close()


def bind(host: str, port: int) -> socket.socket:
    """The listening socket, bound before anything is announced; a clear error if taken."""
    try:
        info = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
        family, kind, proto, _, address = info[0]
        listener = socket.socket(family, kind, proto)
    except OSError as error:
        raise ConfigError(f"server.host: cannot listen on {host}: {error.strerror}") from None
    try:
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(address)
        listener.listen(2048)
    except OSError as error:
        listener.close()
        raise ConfigError(
            f"server.port: cannot listen on {host}:{port}: {error.strerror}"
        ) from None
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
