"""A running bridge with its control plane on a fresh store, and keys for it."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from voxgate.bridge.aio.server import RunningBridge, running_bridge
from voxgate.bridge.control.keys import new_key
from voxgate.bridge.control.plane import ControlPlane
from voxgate.config import load_config


@dataclass
class Api:
    running: RunningBridge
    client: httpx.AsyncClient
    test_key: str
    live_key: str

    @property
    def control(self) -> ControlPlane:
        control = self.running.bridge.control
        assert control is not None
        return control

    def auth(self, key: str | None = None) -> dict[str, str]:
        return {"Authorization": f"Bearer {key or self.test_key}"}


@asynccontextmanager
async def serve_api(
    tmp_path: Path, *, config_file: Path | None = None, **env: str
) -> AsyncIterator[Api]:
    """voxgate on a loopback port with a SQLite store in ``tmp_path`` (or ``env``'s)."""
    settings = {
        "VOXGATE_LOG_FORMAT": "text",
        "VOXGATE_STORE_URL": f"sqlite:///{tmp_path}/voxgate.db",
        "VOXGATE_API_RATE_LIMIT": "1000",
        **env,
    }
    config = load_config(config_file, settings)
    async with running_bridge(config) as running:
        control = running.bridge.control
        assert control is not None
        test_secret, test_record = new_key("test")
        live_secret, live_record = new_key("live")
        await control.store.add_key(test_record)
        await control.store.add_key(live_record)
        async with httpx.AsyncClient(base_url=running.base_url, timeout=30) as client:
            yield Api(running, client, test_secret, live_secret)


async def until(predicate: Any, timeout: float = 30.0, every: float = 0.05) -> None:
    """Until ``predicate()`` (sync or async) is true."""
    async with asyncio.timeout(timeout):
        while True:
            result = predicate()
            if asyncio.iscoroutine(result):
                result = await result
            if result:
                return
            await asyncio.sleep(every)


def create_key_with_cli(env: dict[str, str]) -> str:
    """``voxgate keys create --test`` with ``env``'s settings, as a user runs it."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith("VOXGATE_")}
    done = subprocess.run(
        [sys.executable, "-m", "voxgate", "keys", "create", "--test"],
        env={**clean, **env},
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    key = done.stdout.strip()
    assert key.startswith("vg_test_") and "\n" not in key, done.stderr
    return key
