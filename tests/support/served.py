"""``voxgate serve`` in its own process, for tests that need the real command.

Only the given ``VOXGATE_*`` variables reach it (none from the test's own
environment); it listens on a free loopback port and is stopped with SIGINT
(then killed if it does not stop) when the context ends.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import subprocess
import sys
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Final

import httpx

STARTUP_LIMIT: Final = 20.0  # seconds for ``voxgate serve`` to answer /healthz


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@asynccontextmanager
async def voxgate_serve(
    env: Mapping[str, str], log_path: Path | None = None
) -> AsyncIterator[tuple[int, subprocess.Popen[bytes]]]:
    """Run ``voxgate serve --port <free>``, stderr to ``log_path`` (else discarded).

    Yields its port and the process once ``/healthz`` answers.
    """
    port = free_port()
    clean = {k: v for k, v in os.environ.items() if not k.startswith("VOXGATE_")}
    command = [sys.executable, "-m", "voxgate", "serve", "--port", str(port)]
    with contextlib.ExitStack() as files:
        stderr = files.enter_context(log_path.open("wb")) if log_path else subprocess.DEVNULL
        process = subprocess.Popen(
            command,
            env={**clean, **env},
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=stderr,
        )
        try:
            await _until_healthy(process, port, log_path)
            yield port, process
        finally:
            await stop(process)


async def stop(process: subprocess.Popen[bytes]) -> None:
    """SIGINT (a graceful stop), then SIGKILL if it has not exited within 15 s."""
    if process.poll() is not None:
        return
    process.send_signal(signal.SIGINT)
    try:
        await asyncio.to_thread(process.wait, 15)
    except subprocess.TimeoutExpired:
        process.kill()
        await asyncio.to_thread(process.wait, 5)


async def _until_healthy(
    process: subprocess.Popen[bytes], port: int, log_path: Path | None
) -> None:
    deadline = asyncio.get_running_loop().time() + STARTUP_LIMIT
    async with httpx.AsyncClient(timeout=1.0) as client:
        while True:
            if process.poll() is not None or asyncio.get_running_loop().time() > deadline:
                output = log_path.read_text(errors="replace") if log_path else "(not kept)"
                raise RuntimeError(f"voxgate serve did not start:\n{output}")
            with contextlib.suppress(httpx.HTTPError):
                if (await client.get(f"http://127.0.0.1:{port}/healthz")).status_code == 200:
                    return
            await asyncio.sleep(0.05)
