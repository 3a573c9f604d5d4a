"""Running the bridge: uvicorn (with uvloop where available) serving the Starlette app."""

from __future__ import annotations

import asyncio
import contextlib
import importlib.util
import logging
import socket
from collections.abc import AsyncIterator
from dataclasses import dataclass

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


def serve(config: Config) -> None:
    """``voxgate serve``: run until interrupted."""
    config.check_listen_safe()
    bridge = Bridge(config)
    server = uvicorn.Server(uvicorn_config(config, bridge))
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
