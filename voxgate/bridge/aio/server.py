"""Running the bridge: uvicorn (with uvloop where available) serving the Starlette app."""

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

import uvicorn

from voxgate.bridge.aio.app import Bridge, create_app
from voxgate.bridge.aio.session import WS_MAX_SIZE
from voxgate.config import Config

log = logging.getLogger("voxgate.server")


def uvicorn_config(config: Config, bridge: Bridge, *, port: int | None = None) -> uvicorn.Config:
    return uvicorn.Config(
        create_app(config, bridge),
        host=config.server.host,
        port=config.server.port if port is None else port,
        loop="uvloop" if importlib.util.find_spec("uvloop") else "asyncio",
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
    """``voxgate serve``: run until interrupted."""
    config.check_listen_safe()
    bridge = Bridge(config)
    server = DrainingServer(uvicorn_config(config, bridge), bridge, config.server.drain_seconds)
    log.info("voxgate listening on %s:%d", config.server.host, config.server.port)
    server.run()


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
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
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
