"""The webhook outbox worker: claims due deliveries from the store and POSTs them.

Theory of operation
-------------------
Deliveries are written to the store's outbox in the same batch as the call changes they
announce (:mod:`voxgate.bridge.control.ledger`); this worker sends them, at least once::

    loop: room = concurrency - in flight
          room > 0: claim_due(now, limit=min(batch, room), lease) -> one task per delivery
          a full claim: claim again at once; else wait for poke(), a freed slot or POLL s
    task: vet the URL (SSRF guard, the address pinned) -> sign at send time -> POST
          -> 2xx: delivered
          -> 410, or a URL that can never be sent to: dead
          -> anything else: failed, retried per voxgate.bridge.control.retry, or dead
             when its 24 h budget is spent
    stop(): no new claims; in-flight POSTs get ``timeout`` + a margin, then are cut

Claims are leased (``lease`` seconds, longer than one attempt can take), so several
workers, processes or nodes share one outbox and never send a delivery at the same time;
a worker that dies leaves its leases to run out, and the deliveries go out again later
(at least once: receivers drop duplicates by ``X-Voxgate-Event-Id``). A delivery is
claimed only when a slot is free to send it at once, so no lease ticks in a local queue.

Where a POST goes. The URL is resolved and every address checked (:mod:`.ssrf`) just
before each attempt; the connection is then made to the checked address and no other
(DNS rebinding): :class:`PinnedTransport` is httpx's own transport with a network backend
that connects a request's host to the address given with the request, and refuses any
connection not vetted so. The URL keeps its host name, so the ``Host`` header, TLS SNI
and the certificate check are those of the URL, and kept-alive connections are pooled
per host name (a connection made for one name is never reused for another that shares
its address). The client has no proxy from the environment (``trust_env=False``) and
never follows redirects. A response is read to at most :data:`MAX_RESPONSE` bytes.

Each attempt (resolution, connection, request, response) is cut at ``timeout`` seconds
in all. ``clock`` gives Unix time (signatures, due times, the retry budget), so tests
step it instead of sleeping.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import re
import ssl
import time
import weakref
from collections.abc import Callable, Iterable
from contextvars import ContextVar
from typing import Final
from urllib.parse import urlsplit

import httpcore
import httpx

from voxgate import __version__
from voxgate.bridge.aio.botaddr import Resolver, VettedTarget, system_resolver
from voxgate.bridge.control.retry import next_attempt, outcome_of, parse_retry_after
from voxgate.bridge.control.signing import HEADER, sign
from voxgate.bridge.control.ssrf import WEB_PORTS, WebhookAddressRefused, vet_webhook_url
from voxgate.bridge.store.api import Store
from voxgate.bridge.store.records import Delivery
from voxgate.obs import METRICS

log = logging.getLogger("voxgate.webhooks")

MAX_RESPONSE: Final = 64 * 1024  # bytes of a receiver's answer read (the rest is dropped)
POLL: Final = 1.0  # seconds between looks at the outbox when nothing pokes the worker
STOP_MARGIN: Final = 5.0  # seconds beyond ``timeout`` that stop() waits for in-flight POSTs
ERROR_TEXT: Final = 300  # characters of an error kept with the delivery
PIN: Final = "voxgate.pinned_address"  # the request extension naming the address to use
USER_AGENT: Final = f"voxgate/{__version__}"

_PINNED: ContextVar[tuple[str, int, str] | None] = ContextVar("webhook_pin", default=None)
_PINNING_CLIENTS: weakref.WeakSet[httpx.AsyncClient] = weakref.WeakSet()
_CONTROL: Final = re.compile(r"[\x00-\x1f\x7f]+")


# --- the pinned connection ------------------------------------------------------------


class _PinnedBackend(httpcore.AsyncNetworkBackend):
    """Connects a request's (host, port) to the address vetted for that request, only."""

    def __init__(self) -> None:
        self._inner = httpcore.AnyIOBackend()

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        pinned = _PINNED.get()
        if pinned is None or pinned[:2] != (host, port):
            raise httpcore.ConnectError("refused: a connection to an address not vetted")
        stream: httpcore.AsyncNetworkStream = await self._inner.connect_tcp(
            pinned[2], port, timeout, local_address=local_address, socket_options=socket_options
        )
        return stream

    async def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        raise httpcore.ConnectError("refused: webhooks do not go to Unix sockets")

    async def sleep(self, seconds: float) -> None:
        await self._inner.sleep(seconds)


class PinnedTransport(httpx.AsyncHTTPTransport):
    """httpx's transport, connecting only to the address in each request's :data:`PIN`
    extension (a request without one is refused before any connection)."""

    def __init__(self, *, verify: ssl.SSLContext | bool = True, limits: httpx.Limits) -> None:
        super().__init__(verify=verify, trust_env=False, limits=limits)
        # httpx offers no option for a network backend; its pool is rebuilt with one
        # (tests/bridge/aio/test_outbox.py fails if a new httpx stops using it).
        self._pool = httpcore.AsyncConnectionPool(
            ssl_context=httpx.create_ssl_context(verify=verify),
            max_connections=limits.max_connections,
            max_keepalive_connections=limits.max_keepalive_connections,
            keepalive_expiry=limits.keepalive_expiry,
            network_backend=_PinnedBackend(),
        )

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        address = request.extensions.get(PIN)
        if not isinstance(address, str):
            raise httpx.ConnectError("refused: a webhook request without a vetted address")
        port = request.url.port or WEB_PORTS.get(request.url.scheme, 0)
        token = _PINNED.set((request.url.raw_host.decode("ascii"), port, address))
        try:
            return await super().handle_async_request(request)
        finally:
            _PINNED.reset(token)


def webhook_client(
    *, verify: ssl.SSLContext | bool = True, max_connections: int = 64
) -> httpx.AsyncClient:
    """The HTTP client for :class:`OutboxWorker` (the only kind it accepts): pinned
    connections, no proxy from the environment, no redirects followed."""
    limits = httpx.Limits(max_connections=max_connections, max_keepalive_connections=16)
    client = httpx.AsyncClient(
        transport=PinnedTransport(verify=verify, limits=limits),
        trust_env=False,
        follow_redirects=False,
    )
    _PINNING_CLIENTS.add(client)
    return client


# --- the worker -----------------------------------------------------------------------


class _Attempt:
    """What one attempt came to: an HTTP status, or an error before any answer."""

    __slots__ = ("error", "permanent", "retry_after", "status")

    def __init__(
        self,
        status: int | None,
        error: str,
        *,
        retry_after: float | None = None,
        permanent: bool = False,
    ) -> None:
        self.status = status
        self.error = error
        self.retry_after = retry_after
        self.permanent = permanent


class OutboxWorker:
    def __init__(
        self,
        store: Store,
        client: httpx.AsyncClient,
        *,
        worker_id: str,
        clock: Callable[[], float] = time.time,
        rng: random.Random | None = None,
        private_allowed: bool,
        batch: int = 32,
        concurrency: int = 8,
        lease: float = 60.0,
        timeout: float = 10.0,
        poll: float = POLL,
        resolve: Resolver = system_resolver,
    ) -> None:
        if client not in _PINNING_CLIENTS:
            raise ValueError("the outbox needs a client from webhook_client() (pinned)")
        if not (batch >= 1 and concurrency >= 1 and lease > timeout > 0):
            raise ValueError("batch and concurrency must be >= 1 and lease > timeout > 0")
        self.store = store
        self.client = client
        self.worker_id = worker_id
        self.clock = clock
        self.rng = rng if rng is not None else random.Random()
        self.private_allowed = private_allowed
        self.batch = batch
        self.concurrency = concurrency
        self.lease = lease
        self.timeout = timeout
        self.poll = poll
        self._resolve = resolve
        self._wake = asyncio.Event()
        self._stopping = False
        self._runner: asyncio.Task[None] | None = None
        self._in_flight: set[asyncio.Task[None]] = set()
        self._gauged_at = float("-inf")

    @property
    def in_flight(self) -> int:
        return len(self._in_flight)

    def start(self) -> None:
        if self._runner is None:
            self._stopping = False
            self._runner = asyncio.create_task(self._run(), name=f"outbox {self.worker_id}")

    def poke(self) -> None:
        """Look at the outbox now (deliveries were just enqueued)."""
        self._wake.set()

    async def stop(self) -> None:
        """Stop claiming; wait for in-flight POSTs (``timeout`` + :data:`STOP_MARGIN` s at
        most), then cut the rest (their leases run out and they go out again later)."""
        self._stopping = True
        self._wake.set()
        if self._runner is not None:
            runner, self._runner = self._runner, None
            await asyncio.wait({runner}, timeout=self.timeout)  # a claim may be under way
            runner.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await runner
        if self._in_flight:
            _, late = await asyncio.wait(self._in_flight, timeout=self.timeout + STOP_MARGIN)
            for task in late:
                task.cancel()
            if late:
                await asyncio.wait(late)

    async def _run(self) -> None:
        while not self._stopping:
            room = self.concurrency - len(self._in_flight)
            claimed = 0
            if room > 0:
                claimed = await self._claim(min(self.batch, room))
            await self._gauge()
            if claimed and claimed == min(self.batch, room):
                continue  # there may be more due
            await self._idle()

    async def _claim(self, limit: int) -> int:
        try:
            due = await self.store.claim_due(
                self.clock(), limit=limit, lease=self.lease, worker=self.worker_id
            )
        except Exception:
            METRICS.count("errors", kind="store")
            log.exception("claiming webhook deliveries failed; will try again")
            return 0
        for delivery in due:
            task = asyncio.create_task(self._deliver(delivery), name=f"webhook {delivery.id}")
            self._in_flight.add(task)
            task.add_done_callback(self._finished)
        return len(due)

    def _finished(self, task: asyncio.Task[None]) -> None:
        self._in_flight.discard(task)
        self._wake.set()  # a slot is free

    async def _idle(self) -> None:
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(self.poll):
                await self._wake.wait()
        self._wake.clear()

    async def _gauge(self) -> None:
        now = asyncio.get_running_loop().time()
        if now - self._gauged_at < self.poll:
            return
        self._gauged_at = now
        try:
            METRICS.gauges["webhook_queue_depth"] = float(await self.store.pending_count())
        except Exception:
            METRICS.count("errors", kind="store")
            log.exception("counting pending webhook deliveries failed")

    # --- one delivery -----------------------------------------------------------------

    async def _deliver(self, delivery: Delivery) -> None:
        attempt = await self._attempt(delivery)
        try:
            await self._record(delivery, attempt)
        except Exception:
            METRICS.count("errors", kind="store")
            log.exception(
                "recording a webhook attempt failed (the delivery goes out again when its"
                " lease ends)",
                extra={"call_id": delivery.call_id, "delivery_id": delivery.id},
            )

    async def _attempt(self, delivery: Delivery) -> _Attempt:
        try:
            async with asyncio.timeout(self.timeout):
                target = await vet_webhook_url(
                    delivery.url,
                    private_allowed=self.private_allowed,
                    resolve=self._resolve,
                    timeout=self.timeout,
                )
                return await self._post(delivery, target)
        except WebhookAddressRefused as refused:
            return _Attempt(None, f"refused: {refused}", permanent=refused.permanent)
        except TimeoutError:
            return _Attempt(None, f"timed out after {self.timeout:g} s")
        except httpx.HTTPError as error:
            return _Attempt(None, _describe(error, delivery.url))
        except Exception as error:  # counted as a failed attempt, so it cannot loop forever
            METRICS.count("errors", kind="webhook")
            log.exception(
                "a webhook attempt failed unexpectedly",
                extra={"call_id": delivery.call_id, "delivery_id": delivery.id},
            )
            return _Attempt(None, _describe(error, delivery.url))

    async def _post(self, delivery: Delivery, target: VettedTarget) -> _Attempt:
        body = delivery.body.encode()
        headers = {
            "Content-Type": "application/json",
            "User-Agent": USER_AGENT,
            "Accept-Encoding": "identity",
            HEADER: sign(delivery.secret, body, int(self.clock())),
            "X-Voxgate-Event-Id": delivery.event_id,
            "X-Voxgate-Event-Type": delivery.event_type,
            "X-Voxgate-Delivery-Id": delivery.id,
        }
        request = self.client.build_request(
            "POST",
            delivery.url,
            content=body,
            headers=headers,
            timeout=self.timeout,
            extensions={PIN: target.address},
        )
        response = await self.client.send(request, stream=True, follow_redirects=False)
        try:
            start = await _read_at_most(response, MAX_RESPONSE)
        finally:
            await response.aclose()
        status = response.status_code
        retry_after = parse_retry_after(response.headers.get("retry-after"), now=self.clock())
        return _Attempt(status, _answer_text(status, start), retry_after=retry_after)

    async def _record(self, delivery: Delivery, attempt: _Attempt) -> None:
        now = self.clock()
        outcome = "dead" if attempt.permanent else outcome_of(attempt.status)
        if outcome == "delivered" and attempt.status is not None:
            await self.store.delivered(delivery.id, at=now, status=attempt.status)
            METRICS.count("webhook_deliveries", result="delivered")
            return
        retry_at = None
        if outcome == "retry":
            retry_at = next_attempt(
                delivery.created_at,
                delivery.attempts + 1,
                now,
                self.rng,
                retry_after=attempt.retry_after,
            )
        await self.store.failed(
            delivery.id, next_attempt_at=retry_at, error=attempt.error, status=attempt.status
        )
        result = "dead" if retry_at is None else "retry"
        METRICS.count("webhook_deliveries", result=result)
        # The answer's text stays out of the log: a receiver may echo the URL back.
        why = attempt.error if attempt.status is None else f"HTTP {attempt.status}"
        log.log(
            logging.ERROR if retry_at is None else logging.WARNING,
            "webhook delivery failed (%s): %s",
            "dead" if retry_at is None else f"retry in {retry_at - now:.0f} s",
            why,
            extra={
                "call_id": delivery.call_id,
                "delivery_id": delivery.id,
                "event_id": delivery.event_id,
                "event_type": delivery.event_type,
                "attempt": delivery.attempts + 1,
                "http_status": attempt.status,
                "webhook_host": _origin(delivery.url),
            },
        )


async def _read_at_most(response: httpx.Response, limit: int) -> bytes:
    """Up to ``limit`` bytes of the body, as sent (no decompression: no zip bombs)."""
    chunks: list[bytes] = []
    size = 0
    async for chunk in response.aiter_raw():
        chunks.append(chunk[: limit - size])
        size += len(chunks[-1])
        if size >= limit:
            break
    return b"".join(chunks)


def _answer_text(status: int, body: bytes) -> str:
    """``HTTP 500: <the start of the answer>`` for the delivery's ``last_error``."""
    if 200 <= status < 300:
        return ""
    text = _CONTROL.sub(" ", body[:ERROR_TEXT].decode("utf-8", "replace")).strip()
    return f"HTTP {status}: {text}" if text else f"HTTP {status}"


def _describe(error: Exception, url: str) -> str:
    """An error's class and message, without the URL (its path or query may hold a
    token)."""
    text = str(error).replace(url, _origin(url)) or "no detail"
    return f"{type(error).__name__}: {_CONTROL.sub(' ', text)}"[:ERROR_TEXT]


def _origin(url: str) -> str:
    """``https://host:port`` of a URL: what a log may show of it."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return "(malformed URL)"
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    return f"{parts.scheme}://{host}" + (f":{port}" if port is not None else "")
