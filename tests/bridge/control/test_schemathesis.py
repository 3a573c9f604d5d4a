"""Every operation of the REST API, fuzzed against its own /openapi.json with schemathesis.

``voxgate serve`` runs in its own process (a SQLite store in the test's directory, a test
key made with ``voxgate keys create --test``, a rate limit too high to matter); a webhook
receiver and the echo bot run here. Schemathesis draws requests from the document and
sends them with the key, in these passes per operation:

- positive: requests the document calls valid;
- negative: requests it calls invalid (a missing key, a wrong type, a broken constraint);
- edges: valid requests with query values random strings seldom are (a cursor past 64
  bits or of non-ASCII digits, the first and last dates);
- reachable: valid requests aimed at things that exist (a live simulated call, a routed
  number, a webhook, a delivery, each made for the operation) with URLs voxgate can reach
  (the echo bot, the receiver), so the success answers are checked too, not only 404s.

Each answer is checked: never a 5xx, its status code documented, its content type
documented, its body valid against the documented schema. Every distinct failure is kept
(with a curl line to send it again) and all are reported together. Then voxgate must stop
cleanly on SIGINT with the simulated calls the run placed still up, and leave none of them
unfinished in the store.

The server is a separate process because Hypothesis checks that drawing an example leaves
the global ``random`` state alone, and voxgate's retry jitter uses that state: in-process,
its event loop thread would change it during a draw (and unseed the derandomized run).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import io
import re
import time
import wave
from collections.abc import Callable
from dataclasses import dataclass, field
from itertools import count
from pathlib import Path
from typing import Any, Final

import httpx
import schemathesis
from control_api import create_key_with_cli
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from hypothesis.errors import Unsatisfiable
from hypothesis.strategies import SearchStrategy
from scenario import run
from schemathesis import APIOperation, Case, GenerationMode
from schemathesis.checks import CheckFunction
from schemathesis.core.failures import Failure, FailureGroup
from schemathesis.core.result import Ok
from served import voxgate_serve
from webhook_receiver import WebhookReceiver

from voxgate.bots.echo import serve_echo
from voxgate.bridge.store import open_store
from voxgate.bridge.store.records import CallFilter

CHECKS: Final[list[CheckFunction]] = [
    schemathesis.checks.not_a_server_error,
    schemathesis.checks.status_code_conformance,
    schemathesis.checks.content_type_conformance,
    schemathesis.checks.response_schema_conformance,
]
EXAMPLES: Final = 25  # per operation and pass
REQUEST_TIMEOUT: Final = 20.0  # seconds for one answer
STREAM_TIMEOUT: Final = 0.5  # seconds of GET /v1/events read before the stream is cut
RUN_LIMIT: Final = 400.0  # seconds for the whole run on a busy machine
LIVE_CALLEE: Final = {"ring": 0, "hangup_after": 3600}  # answers at once, stays up
PATH_PARAMETER: Final = re.compile(r"{(\w+)}")
UNFINISHED: Final = ("queued", "ringing", "in-progress")
# Query values random strings seldom hit: the edges of a cursor (digits that are not ASCII,
# past a 64-bit integer) and of a date (the first and last year, the widest offsets).
EDGES: Final[dict[str, tuple[str, ...]]] = {
    "cursor": (
        "0",
        "9223372036854775807",
        "9223372036854775808",
        "9999999999999999999",
        "\u00b2",
        "\u0661\u0662",
        "-1",
        " 1",
    ),
    "created_after": (
        "0001-01-01T00:00:00+14:00",
        "9999-12-31T23:59:59-14:00",
        "1970-01-01",
        "2020-02-30T00:00:00Z",
    ),
    "created_before": ("0001-01-01T00:00:00-14:00", "9999-12-31T23:59:59+14:00"),
}


def _wav(samples: int) -> bytes:
    out = io.BytesIO()
    with wave.open(out, "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(8000)
        wav.writeframes(b"\x00\x01" * samples)
    return out.getvalue()


# /play bodies: silence in any raw format, a WAV, a cut-off WAV, an odd byte count, nothing.
SOME_AUDIO: Final = tuple(
    base64.b64encode(data).decode()
    for data in (b"\xff" * 800, _wav(160), _wav(160)[:30], b"\x01\x02\x03", b"")
)


@dataclass(frozen=True, slots=True)
class Found:
    """One distinct failure: where, which check, what, and how to send it again."""

    operation: str
    phase: str
    check: str
    title: str
    message: str
    status: int
    body: str
    curl: str

    def __str__(self) -> str:
        return (
            f"{self.operation} [{self.phase}] {self.check}: {self.title}\n"
            f"  {self.message}\n  -> {self.status} {self.body[:300]}\n  {self.curl}"
        )


@dataclass
class Target:
    """The running app as the fuzzer sees it, and what it made there to aim at."""

    base_url: str
    key: str
    bot_url: str
    hook_url: str
    numbers: count[int] = field(default_factory=lambda: count(5550100))
    picks: count[int] = field(default_factory=count)

    @property
    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.key}"}

    def made(self, client: httpx.Client, parameter: str) -> str:
        """The id of a new thing for ``parameter`` (``call_id``: a call in progress)."""
        if parameter == "call_id":
            body = {"to": "+15550199", "simulated_callee": LIVE_CALLEE}
            call_id = self._created(client, "/v1/calls", body)
            deadline = time.monotonic() + REQUEST_TIMEOUT
            while client.get(f"/v1/calls/{call_id}").json()["status"] != "in-progress":
                assert time.monotonic() < deadline, f"call {call_id} was never answered"
                time.sleep(0.05)
            return call_id
        if parameter == "number_id":
            return self._created(client, "/v1/numbers", {"number": f"+1{next(self.numbers)}"})
        if parameter == "webhook_id":
            return self._created(client, "/v1/webhooks", {"url": self.hook_url})
        assert parameter == "delivery_id", parameter
        deliveries = client.get("/v1/webhooks/deliveries", params={"limit": 1}).json()["data"]
        assert deliveries, "no webhook delivery to replay"
        return str(deliveries[0]["id"])

    def _created(self, client: httpx.Client, path: str, body: dict[str, Any]) -> str:
        answer = client.post(path, json=body)
        assert answer.status_code == 201, (path, answer.text)
        return str(answer.json()["id"])

    def reachable(self, case: Case[Any]) -> Case[Any]:
        """``case`` with URLs voxgate can reach and, for a call, a callee."""
        body = case.body
        if not isinstance(body, dict):
            return case
        for name, url in (("wss_url", self.bot_url), ("webhook_url", self.hook_url)):
            if body.get(name) is not None:
                body[name] = url
        if body.get("bot_dialect") is not None:
            # The bot there is the sample echo, on the SDK: it speaks voxgate.v1 and, as it
            # should, refuses a stream in a carrier's dialect (close 1008: the call ends).
            body["bot_dialect"] = "voxgate.v1"
        if body.get("url") is not None:
            body["url"] = self.hook_url  # /webhooks: ours; /play: an answer that is not audio
        if case.operation.path.endswith("/play"):
            pick = next(self.picks)
            if body.get("url") is None or pick % 3:  # mostly audio of its format (or not)
                body.pop("url", None)
                body["audio_base64"] = SOME_AUDIO[pick % len(SOME_AUDIO)]
            else:
                body.pop("audio_base64", None)
        if case.operation.label == "POST /v1/calls":
            if not (body.get("to") or body.get("customer_no")):
                body["to"] = "+15550198"
            if body.get("to") and body.get("customer_no"):
                body.pop("customer_no")
            if body.get("from") and body.get("caller_id"):
                body.pop("caller_id")
        return case


def fuzz(spec: dict[str, Any], target: Target) -> tuple[list[Found], dict[str, int]]:
    """Every operation of ``spec`` in each pass: the failures found (one per operation,
    check and title) and how many requests each operation took."""
    schema = schemathesis.openapi.from_dict(spec)
    found: dict[tuple[str, str, str], Found] = {}
    sent: dict[str, int] = {}
    with httpx.Client(base_url=target.base_url, headers=target.auth, timeout=30) as client:
        for result in schema.get_all_operations():
            assert isinstance(result, Ok), result
            operation = result.ok()
            streaming = "text/event-stream" in str(operation.definition.raw.get("responses"))
            timeout = STREAM_TIMEOUT if streaming else REQUEST_TIMEOUT
            for phase, strategy in _passes(operation, target, client):

                def send(case: Case[Any], phase: str = phase, timeout: float = timeout) -> None:
                    response = case.call(
                        base_url=target.base_url, headers=target.auth, timeout=timeout
                    )
                    label = case.operation.label
                    sent[label] = sent.get(label, 0) + 1
                    try:
                        case.validate_response(response, checks=CHECKS, headers=target.auth)
                    except FailureGroup as group:
                        for failure in group.exceptions:
                            _keep(found, phase, failure, response, case)

                with contextlib.suppress(Unsatisfiable):  # nothing to make invalid this way
                    _examples(strategy, send)
    return list(found.values()), sent


def _passes(
    operation: APIOperation[Any, Any, Any, Any], target: Target, client: httpx.Client
) -> list[tuple[str, SearchStrategy[Case[Any]]]]:
    passes = [
        ("positive", operation.as_strategy(generation_mode=GenerationMode.POSITIVE)),
        ("negative", operation.as_strategy(generation_mode=GenerationMode.NEGATIVE)),
    ]
    named = {parameter.name for parameter in operation.query}
    for name in sorted(EDGES.keys() & named):
        edges = st.sampled_from(EDGES[name]).flatmap(_with_query(operation, name))
        passes.append((f"edges of {name}", edges))
    parameters = PATH_PARAMETER.findall(operation.path)
    if parameters or operation.body:
        ids = {name: target.made(client, name) for name in parameters}
        strategy = operation.as_strategy(path_parameters=ids or None).map(target.reachable)
        passes.append(("reachable", strategy))
    return passes


def _with_query(
    operation: APIOperation[Any, Any, Any, Any], name: str
) -> Callable[[str], SearchStrategy[Case[Any]]]:
    """Cases of ``operation`` whose query parameter ``name`` is a given value."""

    def cases(value: str) -> SearchStrategy[Case[Any]]:
        return operation.as_strategy(query={name: value})

    return cases


def _examples(strategy: SearchStrategy[Case[Any]], send: Callable[[Case[Any]], None]) -> None:
    """``send`` EXAMPLES cases drawn from ``strategy`` (the same ones every run)."""

    @settings(
        max_examples=EXAMPLES,
        derandomize=True,
        deadline=None,
        database=None,
        phases=[Phase.explicit, Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    @given(case=strategy)
    def exercise(case: Case[Any]) -> None:
        send(case)

    exercise()


def _not_http(response: schemathesis.Response) -> bool:
    """The HTTP server's own answer to bytes that are not a valid request (a negative case
    with a header name such as ``transfer-encoding;``): h11 refuses them before the app
    exists for them, with a 400 in plain text, as it should."""
    return response.status_code == 400 and response.text == "Invalid HTTP request received."


def _keep(
    found: dict[tuple[str, str, str], Found],
    phase: str,
    failure: Failure,
    response: schemathesis.Response,
    case: Case[Any],
) -> None:
    label = case.operation.label
    check = ", ".join(failure.checks) or type(failure).__name__
    if (label, check, failure.title) in found or _not_http(response):
        return
    found[(label, check, failure.title)] = Found(
        operation=label,
        phase=phase,
        check=check,
        title=failure.title,
        message=failure.message,
        status=response.status_code,
        body=response.content.decode(errors="replace"),
        curl=case.as_curl_command(headers={"Authorization": "Bearer $KEY"}),
    )


async def _unfinished(store_url: str) -> list[str]:
    """The calls the store still holds as queued, ringing or in progress."""
    store = open_store(store_url)
    await store.open()
    try:
        page = await store.list_calls(CallFilter(mode="test"), limit=200, before=None)
    finally:
        await store.close()
    return [f"{c.id}: {c.status}" for c in page.data if c.status in UNFINISHED]


def test_every_operation_answers_as_its_openapi_document_says(tmp_path: Path) -> None:
    store_url = f"sqlite:///{tmp_path}/voxgate.db"
    env = {
        "VOXGATE_STORE_URL": store_url,
        "VOXGATE_API_RATE_LIMIT": "1000000",
        "VOXGATE_SIP_ENABLED": "false",
        "VOXGATE_LOG_FORMAT": "text",
    }
    key = create_key_with_cli(env)
    auth = {"Authorization": f"Bearer {key}"}

    async def scenario() -> None:
        echo = await serve_echo("127.0.0.1", 0)
        bot_port = next(iter(echo.sockets)).getsockname()[1]
        async with (
            WebhookReceiver() as receiver,
            voxgate_serve(env, tmp_path / "serve.log") as (port, process),
            httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", headers=auth) as client,
        ):
            spec = (await client.get("/openapi.json")).json()
            subscribed = await client.post("/v1/webhooks", json={"url": receiver.url})
            receiver.secrets.append(subscribed.json()["secret"])
            placed = await client.post("/v1/calls", json={"to": "+15550197"})
            await receiver.wait_for("call.initiated", placed.json()["id"])
            target = Target(
                base_url=f"http://127.0.0.1:{port}",
                key=key,
                bot_url=f"ws://127.0.0.1:{bot_port}/",
                hook_url=receiver.url,
            )
            started = time.monotonic()
            found, sent = await asyncio.to_thread(fuzz, spec, target)
            took = time.monotonic() - started
            up = await client.get("/v1/calls", params={"status": "in-progress"})
            assert up.json()["data"], "no call in progress to stop with"
        echo.close()
        await echo.wait_closed()
        operations = [f"{m.upper()} {path}" for path, item in spec["paths"].items() for m in item]
        assert sorted(sent) == sorted(operations), "an operation was not exercised"
        report = "\n".join(str(item) for item in found)
        total = sum(sent.values())
        assert not found, f"{len(found)} failures ({total} requests, {took:.0f} s):\n{report}"
        log = (tmp_path / "serve.log").read_text(errors="replace")
        assert process.returncode == 0, log  # a clean stop on SIGINT...
        assert await _unfinished(store_url) == []  # ...that ended every call
        errors = [line for line in log.splitlines() if line.split()[1:2] == ["error"]]
        assert errors == [], log

    run(scenario(), timeout=RUN_LIMIT)
