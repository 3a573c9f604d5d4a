"""Connections that never become a call, and what stands before a call: tokens, /metrics.

Each scenario runs beside a healthy call on a real ``voxgate serve`` (see faultbench.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from pathlib import Path

import httpx
from faultbench import Bench, Findings, drain_until_closed, run_fault
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import InvalidStatus

TOKEN = "s3cret"
UPGRADE = (
    "GET {target} HTTP/1.1\r\n"
    "Host: 127.0.0.1\r\n"
    "Upgrade: websocket\r\n"
    "Connection: Upgrade\r\n"
    "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
    "Sec-WebSocket-Version: 13\r\n"
)


async def _status_of(port: int, request: bytes) -> bytes:
    """The status line voxgate answers a raw HTTP request with."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(request)
        await writer.drain()
        async with asyncio.timeout(5):
            return (await reader.readline()).strip()
    finally:
        writer.transport.abort()


def test_a_non_ascii_token_is_refused_with_403(tmp_path: Path) -> None:
    """``?token=`` with non-ASCII text (percent-encoded, as a browser sends it) and the
    Telnyx token header with raw UTF-8 bytes: refused, never a 500 (nor a traceback)."""

    async def hostile(bench: Bench) -> None:
        port = bench.served.port
        findings = Findings()
        query = UPGRADE.format(target="/v1/streams/telnyx?token=%C3%A9t%C3%A9") + "\r\n"
        status = await _status_of(port, query.encode())
        findings.check(b" 403" in status, f"?token=été: {status!r}, not 403")
        header = UPGRADE.format(target="/v1/streams/telnyx").encode()
        header += b"x-telnyx-streaming-auth-token: \xc3\xa9t\xc3\xa9\r\n\r\n"
        status = await _status_of(port, header)
        findings.check(
            any(code in status for code in (b" 400", b" 401", b" 403")),
            f"a non-ASCII token header: {status!r}, not a refusal",
        )
        findings.verify()

    run_fault(
        tmp_path / "voxgate.log",
        hostile,
        env={"VOXGATE_TOKEN": TOKEN},
        healthy_query=f"?token={TOKEN}",
    )


def test_metrics_require_the_token_when_one_is_set(tmp_path: Path) -> None:
    async def hostile(bench: Bench) -> None:
        url = f"{bench.served.http_url}/metrics"
        async with httpx.AsyncClient(timeout=5) as client:
            anonymous = await client.get(url)
            wrong = await client.get(url, headers={"Authorization": "Bearer nope"})
            right = await client.get(url, headers={"Authorization": f"Bearer {TOKEN}"})
        findings = Findings()
        findings.check(anonymous.status_code in (401, 403), f"no token: {anonymous.status_code}")
        findings.check(wrong.status_code in (401, 403), f"a wrong token: {wrong.status_code}")
        findings.check(right.status_code == 200, f"the token: {right.status_code}")
        findings.check("voxgate_" in right.text, "no counters with the token")
        findings.verify()

    run_fault(
        tmp_path / "voxgate.log",
        hostile,
        env={"VOXGATE_TOKEN": TOKEN},
        healthy_query=f"?token={TOKEN}",
    )


HANDSHAKE_TIMEOUT = 1.0
START_TIMEOUT = 1.5
MAX_PENDING = 5
MARGIN = 2.5  # on top of a timeout, for a busy machine


async def _slowloris(port: int) -> float | None:
    """An upgrade request sent one byte a second; how long until voxgate hung up."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    request = (UPGRADE.format(target="/v1/streams/twilio") + "\r\n").encode()
    closing = asyncio.create_task(drain_until_closed(reader, HANDSHAKE_TIMEOUT + MARGIN))
    try:
        for byte in request:
            if closing.done():
                break
            with contextlib.suppress(OSError):
                writer.write(bytes([byte]))
            await asyncio.wait([closing], timeout=1.0)
        return await closing
    finally:
        writer.transport.abort()


async def _silent(port: int) -> float | None:
    """A TCP connection that says nothing; how long until voxgate hung up."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        return await drain_until_closed(reader, HANDSHAKE_TIMEOUT + MARGIN)
    finally:
        writer.transport.abort()


async def _unstarted(url: str) -> ClientConnection:
    return await connect(url, open_timeout=5, close_timeout=1, ping_interval=None)


async def _closed_within(socket: ClientConnection, limit: float) -> bool:
    try:
        async with asyncio.timeout(limit):
            await socket.wait_closed()
    except TimeoutError:
        return False
    return True


def test_connections_that_never_start_a_call_are_bounded(tmp_path: Path) -> None:
    """Slowloris upgrades, silent TCP connections and WebSockets without ``start`` are
    closed after the handshake and start timeouts, and the 6th WebSocket waiting for its
    ``start`` (max_pending 5) is turned away, while a call goes on beside them."""

    async def pending_limit(bench: Bench, findings: Findings) -> None:
        url = bench.served.stream_url("twilio")
        opened_at = time.monotonic()
        sockets = await asyncio.gather(*(_unstarted(url) for _ in range(MAX_PENDING)))
        try:
            try:
                extra = await _unstarted(url)
            except InvalidStatus as refused:
                findings.check(
                    refused.response.status_code == 503,
                    f"the 6th pending: HTTP {refused.response.status_code}, not 503",
                )
            else:
                turned_away = await _closed_within(extra, 1.0)
                findings.check(
                    turned_away and extra.close_code == 1013,
                    f"the 6th pending WebSocket: open={not turned_away}, "
                    f"close code {extra.close_code}, not 1013",
                )
                await extra.close()
            limit = START_TIMEOUT + MARGIN - (time.monotonic() - opened_at)
            closed = await asyncio.gather(*(_closed_within(s, limit) for s in sockets))
            findings.check(
                all(closed),
                f"{closed.count(False)} of {MAX_PENDING} WebSockets without start still open "
                f"{START_TIMEOUT + MARGIN} s later",
            )
        finally:
            await asyncio.gather(*(s.close() for s in sockets), return_exceptions=True)

    async def hostile(bench: Bench) -> None:
        findings = Findings()
        await bench.healthy_started.wait()
        await pending_limit(bench, findings)
        slow, silent = await asyncio.gather(
            _slowloris(bench.served.port), _silent(bench.served.port)
        )
        limit = HANDSHAKE_TIMEOUT + MARGIN
        findings.check(slow is not None, f"an upgrade at 1 byte/s still open after {limit} s")
        findings.check(silent is not None, f"a silent connection still open after {limit} s")
        findings.verify()

    env = {
        "VOXGATE_HANDSHAKE_TIMEOUT": str(HANDSHAKE_TIMEOUT),
        "VOXGATE_START_TIMEOUT": str(START_TIMEOUT),
        "VOXGATE_MAX_PENDING": str(MAX_PENDING),
    }
    run_fault(tmp_path / "voxgate.log", hostile, env=env)
