"""Shared pieces of the end-to-end tests: a bridge on a loopback port, run helpers."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
from carrier import CarrierDialect, CarrierEmulator
from scripted_bot import BotConnection, ScriptedBot
from served import voxgate_serve

from voxgate.bridge.aio.server import RunningBridge, running_bridge
from voxgate.config import load_config
from voxgate.obs import METRICS


@asynccontextmanager
async def bridge(**env: str) -> AsyncIterator[RunningBridge]:
    """voxgate serving on a free loopback port, configured by VOXGATE_* variables."""
    config = load_config(None, {"VOXGATE_LOG_FORMAT": "text", **env})
    METRICS.reset()  # counters are process-wide: each test's bridge starts from zero
    async with running_bridge(config) as running:
        yield running


async def metric(running: RunningBridge, line_start: str) -> int:
    """Sum of the /metrics lines starting with ``line_start``."""
    server = running.bridge.config.server
    token = server.metrics_token or server.token
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    async with httpx.AsyncClient() as client:
        text = (await client.get(f"{running.base_url}/metrics", headers=headers)).text
    return sum(
        int(float(line.rsplit(" ", 1)[1]))
        for line in text.splitlines()
        if line.startswith(line_start)
    )


def unhandled(records: list[logging.LogRecord]) -> list[str]:
    """Log records that carry a traceback: there must be none."""
    return [record.getMessage() for record in records if record.exc_info]


@asynccontextmanager
async def scripted_call(
    carrier: CarrierDialect = "twilio", **env: str
) -> AsyncIterator[tuple[RunningBridge, CarrierEmulator, BotConnection]]:
    """A bridge, a scripted bot, and a carrier stream whose call reached the bot's ``start``."""
    async with bridge(**env) as running, ScriptedBot() as bot:
        url = f"{running.ws_url}/v1/streams/{carrier}"
        async with CarrierEmulator(url, carrier, custom_parameters={"wss_url": bot.url}) as stream:
            connection = await bot.connection()
            await connection.wait_for_type("start")
            yield running, stream, connection


@asynccontextmanager
async def bridge_process(**env: str) -> AsyncIterator[str]:
    """``voxgate serve`` as its own process on a free port; yields its ws:// base URL.

    For measurements that must not share an event loop (or a core) with the peers.
    """
    async with voxgate_serve(env) as (port, _):
        yield f"ws://127.0.0.1:{port}"
