"""The webhook outbox worker against a real receiver and a real SQLite store.

The receiver is a Starlette app under uvicorn on 127.0.0.1 (port 0) that checks every
signature with its own HMAC code (not voxgate's). Time that decides (due times, the
retry budget, signatures) is a stepped clock; only the network runs in real time.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import logging
import random
import re
import shutil
import ssl
import subprocess
import time
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

from voxgate import __version__
from voxgate.bridge.aio.outbox import OutboxWorker, webhook_client
from voxgate.bridge.control.retry import BUDGET
from voxgate.bridge.control.webhook_events import deliveries_for, new_event
from voxgate.bridge.store import open_store
from voxgate.bridge.store.api import Store
from voxgate.bridge.store.records import Delivery
from voxgate.obs import METRICS

SECRET = "whsec_test_0123456789"
START = 1_760_000_000.0
LIMIT = 30.0  # seconds any one wait in these tests may take on a busy machine


def run(scenario: Coroutine[Any, Any, None]) -> None:
    asyncio.run(asyncio.wait_for(scenario, 120))


async def until(check: Callable[[], Awaitable[bool]], what: str, limit: float = LIMIT) -> None:
    deadline = time.monotonic() + limit
    while not await check():
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {limit:g} s: {what}")
        await asyncio.sleep(0.01)


class Clock:
    """Unix time that moves only when a test moves it."""

    def __init__(self, now: float = START) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


async def resolve(host: str, port: int) -> list[str]:
    """Test names: ``*.test`` is loopback (the system resolver knows none of them)."""
    if host.endswith(".test"):
        return ["127.0.0.1"]
    raise OSError(-2, "Name or service not known")


# --- the receiver ----------------------------------------------------------------------


def signed_at(header: str | None, body: bytes, secret: str) -> int | None:
    """The timestamp of a valid ``t=...,v1=...`` header, checked independently of voxgate."""
    match = re.fullmatch(r"t=(\d+),v1=([0-9a-f]{64})", header or "")
    if match is None:
        return None
    key = secret.encode("utf-8")
    expected = hmac.new(key, match[1].encode() + b"." + body, hashlib.sha256).hexdigest()
    return int(match[1]) if hmac.compare_digest(expected, match[2]) else None


@dataclass(frozen=True)
class Answer:
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b"ok"
    hang: bool = False  # until the test ends
    delay: float = 0.0
    endless: bool = False  # a body that never ends


@dataclass(frozen=True)
class Received:
    path: str
    headers: dict[str, str]  # lower-case names
    body: bytes
    signed_at: int | None  # None: the signature did not verify


class Receiver:
    """Records every POST; answers per path from a script (the last answer repeats)."""

    def __init__(self, certificate: tuple[Path, Path] | None = None) -> None:
        self.received: list[Received] = []
        self.script: dict[str, list[Answer]] = {}
        self.release = asyncio.Event()
        self._certificate = certificate
        self._server: uvicorn.Server | None = None
        self._task: asyncio.Task[None] | None = None
        self.port = 0

    def on(self, path: str, *answers: Answer) -> None:
        self.script[path] = list(answers)

    def at(self, path: str) -> list[Received]:
        return [r for r in self.received if r.path == path]

    async def _handle(self, request: Request) -> Response:
        body = await request.body()
        header = request.headers.get("x-voxgate-signature")
        self.received.append(
            Received(
                request.url.path,
                {name.lower(): value for name, value in request.headers.items()},
                body,
                signed_at(header, body, SECRET),
            )
        )
        answers = self.script.get(request.url.path, [Answer()])
        answer = answers.pop(0) if len(answers) > 1 else answers[0]
        if answer.hang:
            await self.release.wait()
        if answer.delay:
            await asyncio.sleep(answer.delay)
        if answer.endless:
            return StreamingResponse(self._endless(), status_code=answer.status)
        return Response(answer.body, status_code=answer.status, headers=answer.headers)

    async def _endless(self) -> AsyncIterator[bytes]:
        chunk = b"x" * 65536
        for _ in range(100_000):
            if self.release.is_set():
                return
            yield chunk

    async def start(self) -> None:
        app = Starlette(routes=[Route("/{path:path}", self._handle, methods=["POST"])])
        certfile, keyfile = self._certificate or (None, None)
        config = uvicorn.Config(
            app,
            host="127.0.0.1",
            port=0,
            lifespan="off",
            ws="none",
            log_config=None,
            log_level=None,
            access_log=False,
            ssl_certfile=certfile,
            ssl_keyfile=keyfile,
        )
        self._server = server = uvicorn.Server(config)
        self._task = asyncio.create_task(server.serve())
        await until(lambda: _true(server.started or self._task_done()), "the receiver started")
        if not server.started:
            raise RuntimeError("the receiver did not start")
        self.port = server.servers[0].sockets[0].getsockname()[1]

    def _task_done(self) -> bool:
        return self._task is not None and self._task.done()

    async def stop(self) -> None:
        self.release.set()
        if self._server is None or self._task is None:
            return
        self._server.should_exit = True
        try:
            await asyncio.wait_for(asyncio.shield(self._task), 10)
        except TimeoutError:
            self._server.force_exit = True
            self._task.cancel()
            await asyncio.wait([self._task], timeout=10)

    def url(self, path: str, host: str = "127.0.0.1", scheme: str = "http") -> str:
        return f"{scheme}://{host}:{self.port}{path}"


async def _true(value: bool) -> bool:
    return value


# --- the set-up ------------------------------------------------------------------------


@dataclass
class Rig:
    store: Store
    receiver: Receiver
    clock: Clock
    worker: OutboxWorker
    client: httpx.AsyncClient

    async def send(self, url: str, *, event_type: str = "call.answered", **kw: Any) -> Delivery:
        """One delivery of a new event to ``url``, enqueued; the worker poked."""
        [delivery] = await self.enqueue([url], event_type=event_type, **kw)
        return delivery

    async def enqueue(
        self, urls: list[str], *, event_type: str = "call.answered", call_id: str = "vx-1"
    ) -> list[Delivery]:
        deliveries = []
        for url in urls:
            event_id, body = new_event(event_type, {"call": {"id": call_id}}, now=self.clock())
            deliveries += deliveries_for(
                event_id,
                event_type,
                body,
                now=self.clock(),
                subscriptions=[],
                extra_urls=[(url, SECRET)],
                call_id=call_id,
            )
        await self.store.enqueue(deliveries)
        self.worker.poke()
        return deliveries

    async def get(self, delivery_id: str) -> Delivery:
        delivery = await self.store.get_delivery(delivery_id)
        assert delivery is not None
        return delivery

    async def settle(self, delivery_id: str, attempts: int) -> Delivery:
        """The delivery once it has been tried ``attempts`` times."""

        async def tried() -> bool:
            return (await self.get(delivery_id)).attempts >= attempts

        await until(tried, f"{delivery_id} tried {attempts} times")
        return await self.get(delivery_id)


async def opened_store(path: Path) -> Store:
    store = open_store(f"sqlite:///{path}")
    await store.open()
    return store


@asynccontextmanager
async def rig(
    tmp_path: Path,
    *,
    certificate: tuple[Path, Path] | None = None,
    verify: ssl.SSLContext | bool = True,
    **options: Any,
) -> AsyncIterator[Rig]:
    receiver = Receiver(certificate)
    await receiver.start()
    store = await opened_store(tmp_path / "voxgate.db")
    client = webhook_client(verify=verify)
    clock = Clock()
    settings: dict[str, Any] = {
        "worker_id": "worker-1",
        "clock": clock,
        "rng": random.Random(7),
        "private_allowed": True,
        "poll": 0.05,
        "timeout": 5.0,
        "resolve": resolve,
        **options,
    }
    worker = OutboxWorker(store, client, **settings)
    worker.start()
    try:
        yield Rig(store, receiver, clock, worker, client)
    finally:
        await worker.stop()
        await client.aclose()
        await store.close()
        await receiver.stop()


def counted(result: str) -> int:
    return METRICS.value("webhook_deliveries", result=result)


# --- the tests -------------------------------------------------------------------------


def test_deliveries_arrive_once_signed_with_the_right_headers(tmp_path: Path) -> None:
    async def scenario() -> None:
        before = counted("delivered")
        async with rig(tmp_path) as r:
            paths = ["/a", "/b", "/c?x=1"]
            sent = await r.enqueue([r.receiver.url(p) for p in paths], event_type="dtmf.received")
            for delivery in sent:
                done = await r.settle(delivery.id, 1)
                assert done.status == "delivered"
                assert done.last_status == 200
                assert done.delivered_at == START
            assert sorted(x.path for x in r.receiver.received) == ["/a", "/b", "/c"]
            for delivery in sent:
                [got] = [x for x in r.receiver.received if x.body == delivery.body.encode()]
                assert got.signed_at == int(START)
                assert got.headers["content-type"] == "application/json"
                assert got.headers["user-agent"] == f"voxgate/{__version__}"
                assert got.headers["x-voxgate-event-id"] == delivery.event_id
                assert got.headers["x-voxgate-event-type"] == "dtmf.received"
                assert got.headers["x-voxgate-delivery-id"] == delivery.id
                assert got.headers["host"] == f"127.0.0.1:{r.receiver.port}"
            assert counted("delivered") - before == 3

            async def drained() -> bool:
                return METRICS.gauges.get("webhook_queue_depth") == 0.0

            await until(drained, "the queue depth gauge shows 0")
            await asyncio.sleep(0.2)  # several polls: nothing goes out twice
            assert len(r.receiver.received) == 3

    run(scenario())


def test_a_failing_receiver_is_retried_when_due(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="voxgate")

    async def scenario() -> None:
        retries, delivered = counted("retry"), counted("delivered")
        async with rig(tmp_path) as r:
            r.receiver.on("/flaky/s3cr3t-path", Answer(500, body=b"try later"), Answer(200))
            url = r.receiver.url("/flaky/s3cr3t-path?token=s3cr3t-query")
            delivery = await r.send(url, call_id="vx-42")
            first = await r.settle(delivery.id, 1)
            assert first.status == "pending"
            assert first.last_status == 500
            assert first.last_error == "HTTP 500: try later"
            assert START + 5 <= first.next_attempt_at <= START + 10
            assert counted("retry") - retries == 1

            r.worker.poke()
            await asyncio.sleep(0.3)  # not due yet: nothing is sent
            assert len(r.receiver.received) == 1

            r.clock.now = first.next_attempt_at
            r.worker.poke()
            second = await r.settle(delivery.id, 2)
            assert second.status == "delivered"
            assert second.delivered_at == r.clock.now
            assert counted("delivered") - delivered == 1
            retried = r.receiver.received[1]
            assert retried.body == r.receiver.received[0].body
            assert retried.signed_at == int(first.next_attempt_at)  # signed at send time

        [failure] = [x for x in caplog.records if x.name == "voxgate.webhooks"]
        assert failure.levelno == logging.WARNING
        assert vars(failure)["delivery_id"] == delivery.id
        assert vars(failure)["call_id"] == "vx-42"
        logged = repr(vars(failure)) + failure.getMessage()
        assert "s3cr3t" not in logged and SECRET not in logged
        assert "token" not in logged and "/flaky" not in logged
        assert "try later" not in logged  # the receiver's answer is kept, not logged
        assert failure.getMessage() == "webhook delivery failed (retry in 7 s): HTTP 500"

    run(scenario())


def test_retry_after_is_honoured(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with rig(tmp_path) as r:
            r.receiver.on("/busy", Answer(429, headers={"Retry-After": "120"}))
            r.receiver.on("/down", Answer(503, headers={"Retry-After": "86400"}))
            busy = await r.send(r.receiver.url("/busy"))
            down = await r.send(r.receiver.url("/down"))
            assert (await r.settle(busy.id, 1)).next_attempt_at == START + 120
            assert (await r.settle(down.id, 1)).next_attempt_at == START + 3600  # the cap

    run(scenario())


def test_dead_after_the_budget_then_replayed(tmp_path: Path) -> None:
    async def scenario() -> None:
        dead_before = counted("dead")
        async with rig(tmp_path) as r:
            r.receiver.on("/broken", Answer(500))
            delivery = await r.send(r.receiver.url("/broken"))
            current = await r.settle(delivery.id, 1)
            while current.status == "pending":
                assert current.next_attempt_at <= START + BUDGET
                r.clock.now = current.next_attempt_at
                r.worker.poke()
                current = await r.settle(delivery.id, current.attempts + 1)
            assert current.status == "dead"
            assert r.clock.now == START + BUDGET  # the last try at the end of the budget
            assert 30 <= current.attempts <= 50
            assert len(r.receiver.at("/broken")) == current.attempts
            assert counted("dead") - dead_before == 1
            page = await r.store.list_deliveries(status="dead", limit=10)
            assert [d.id for d in page.data] == [delivery.id]

            r.clock.now += 3600
            r.worker.poke()
            await asyncio.sleep(0.3)  # dead: never tried again by itself
            assert len(r.receiver.at("/broken")) == current.attempts

            r.receiver.on("/broken", Answer(204))
            await r.store.replay(delivery.id, now=r.clock())
            r.worker.poke()
            replayed = await r.settle(delivery.id, current.attempts + 1)
            assert replayed.status == "delivered" and replayed.last_status == 204
            assert r.receiver.at("/broken")[-1].signed_at == int(r.clock.now)

    run(scenario())


def test_a_replayed_delivery_failing_again_is_dead_again(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with rig(tmp_path) as r:
            r.receiver.on("/broken", Answer(502))
            delivery = await r.send(r.receiver.url("/broken"))
            await r.settle(delivery.id, 1)
            r.clock.now = START + BUDGET + 1
            await r.store.replay(delivery.id, now=r.clock())
            r.worker.poke()
            again = await r.settle(delivery.id, 2)
            assert again.status == "dead" and again.last_status == 502

    run(scenario())


def test_gone_is_dead_at_once_and_redirects_are_not_followed(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with rig(tmp_path) as r:
            r.receiver.on("/gone", Answer(410))
            r.receiver.on("/moved", Answer(302, headers={"Location": "/elsewhere"}))
            gone = await r.send(r.receiver.url("/gone"))
            moved = await r.send(r.receiver.url("/moved"))
            assert (await r.settle(gone.id, 1)).status == "dead"
            after = await r.settle(moved.id, 1)
            assert (after.status, after.last_status) == ("pending", 302)
            assert r.receiver.at("/elsewhere") == []

    run(scenario())


def test_a_hanging_receiver_is_cut_at_the_timeout(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with rig(tmp_path, timeout=1.0, lease=30.0) as r:
            r.receiver.on("/hang", Answer(hang=True))
            started = time.monotonic()
            delivery = await r.send(r.receiver.url("/hang"))
            cut = await r.settle(delivery.id, 1)
            elapsed = time.monotonic() - started
            assert 0.9 <= elapsed < 15
            assert cut.status == "pending" and cut.last_status is None
            assert cut.last_error == "timed out after 1 s"

    run(scenario())


def test_an_answer_is_read_to_64_kb_at_most(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with rig(tmp_path, timeout=10.0) as r:
            r.receiver.on("/endless", Answer(200, endless=True))
            r.receiver.on("/huge-error", Answer(500, body=b"e" * 1_000_000))
            endless = await r.send(r.receiver.url("/endless"))
            huge = await r.send(r.receiver.url("/huge-error"))
            # An endless body read whole would end in the timeout, not in delivered.
            assert (await r.settle(endless.id, 1)).status == "delivered"
            failed = await r.settle(huge.id, 1)
            assert failed.last_error.startswith("HTTP 500: eeee")
            assert len(failed.last_error) <= 310

    run(scenario())


def test_private_receivers_are_refused_unless_allowed(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with rig(tmp_path, private_allowed=False) as r:
            literal = await r.send(r.receiver.url("/ok"))
            named = await r.send(r.receiver.url("/ok", host="inside.test"))
            refused = await r.settle(literal.id, 1)
            assert refused.status == "dead"  # a literal loopback address never changes
            assert "loopback" in refused.last_error
            later = await r.settle(named.id, 1)
            assert later.status == "pending"  # a name may resolve elsewhere later
            assert "inside.test resolves to 127.0.0.1: loopback" in later.last_error
            assert r.receiver.received == []

    run(scenario())


def test_the_connection_goes_to_the_vetted_address(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with rig(tmp_path) as r:
            # "receiver.test" resolves only through the worker's resolver: it arrives only
            # if the connection went to the address that was vetted.
            delivery = await r.send(r.receiver.url("/pinned", host="receiver.test"))
            assert (await r.settle(delivery.id, 1)).status == "delivered"
            [got] = r.receiver.at("/pinned")
            assert got.headers["host"] == f"receiver.test:{r.receiver.port}"
            # The client connects nowhere without a vetted address, even to loopback.
            with pytest.raises(httpx.ConnectError, match="vetted"):
                await r.client.post(r.receiver.url("/direct"))
            assert r.receiver.at("/direct") == []

    run(scenario())


def test_the_worker_takes_only_a_pinning_client(tmp_path: Path) -> None:
    async def scenario() -> None:
        store = await opened_store(tmp_path / "voxgate.db")
        async with httpx.AsyncClient() as plain:
            with pytest.raises(ValueError, match="webhook_client"):
                OutboxWorker(store, plain, worker_id="w", private_allowed=False)
        await store.close()

    run(scenario())


def _certificate(folder: Path) -> tuple[Path, Path]:
    openssl = shutil.which("openssl")
    if openssl is None:
        pytest.skip("no openssl command to make a test certificate")
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(
        [
            *(openssl, "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1"),
            *("-nodes", "-keyout", str(key), "-out", str(cert), "-days", "2"),
            *("-subj", "/CN=receiver.test", "-addext", "subjectAltName=DNS:receiver.test"),
        ],
        check=True,
        capture_output=True,
    )
    return cert, key


def test_tls_checks_the_url_host_over_the_pinned_address(tmp_path: Path) -> None:
    cert, key = _certificate(tmp_path)

    async def scenario() -> None:
        trust = ssl.create_default_context(cafile=str(cert))
        async with rig(tmp_path, certificate=(cert, key), verify=trust) as r:
            good = await r.send(r.receiver.url("/tls", host="receiver.test", scheme="https"))
            assert (await r.settle(good.id, 1)).status == "delivered"
            # Same address and port, kept-alive connection and all: another name must
            # not ride on the connection made (and certified) for receiver.test.
            impostor = r.receiver.url("/tls", host="impostor.test", scheme="https")
            other = await r.send(impostor)
            refused = await r.settle(other.id, 1)
            assert refused.status == "pending"
            assert "certificate" in refused.last_error.lower()
            assert len(r.receiver.at("/tls")) == 1

    run(scenario())


def test_stop_waits_for_the_post_in_flight(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with rig(tmp_path) as r:
            r.receiver.on("/slow", Answer(200, delay=0.5))
            delivery = await r.send(r.receiver.url("/slow"))
            await until(lambda: _true(bool(r.receiver.at("/slow"))), "the POST arrived")
            await r.worker.stop()
            assert (await r.get(delivery.id)).status == "delivered"
            assert r.worker.in_flight == 0

    run(scenario())


def test_two_workers_on_one_sqlite_file_never_send_a_delivery_twice(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with rig(tmp_path, batch=4, concurrency=6) as r:
            other_store = await opened_store(tmp_path / "voxgate.db")
            other_client = webhook_client()
            other = OutboxWorker(
                other_store,
                other_client,
                worker_id="worker-2",
                clock=r.clock,
                rng=random.Random(8),
                private_allowed=True,
                batch=4,
                concurrency=6,
                poll=0.01,
                resolve=resolve,
            )
            other.start()
            try:
                r.receiver.on("/shared", Answer(200, delay=0.01))
                sent = await r.enqueue([r.receiver.url("/shared")] * 120)
                other.poke()

                async def all_delivered() -> bool:
                    page = await r.store.list_deliveries(status="delivered", limit=200)
                    return len(page.data) == len(sent)

                await until(all_delivered, "120 deliveries delivered")
            finally:
                await other.stop()
                await other_client.aclose()
                await other_store.close()
            ids = Counter(x.headers["x-voxgate-delivery-id"] for x in r.receiver.at("/shared"))
            assert set(ids) == {d.id for d in sent}
            assert set(ids.values()) == {1}
            for delivery in sent:
                assert (await r.get(delivery.id)).attempts == 1

    run(scenario())
