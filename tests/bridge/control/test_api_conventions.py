"""The API's conventions: Bearer keys, JSON errors naming the field, rate-limit headers
and 429, cursor pagination that holds under concurrent inserts, filters, health."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

from control_api import serve_api
from scenario import run

from voxgate.bridge.control.keys import new_key
from voxgate.bridge.store.records import CallRecord


def test_requests_without_a_valid_key_are_401_json(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with serve_api(tmp_path) as api:
            for headers in (
                {},
                {"Authorization": "Basic dXNlcjpwdw=="},
                {"Authorization": "Bearer vg_test_not-a-key-of-ours"},
                {"Authorization": "Bearer nonsense"},
            ):
                answer = await api.client.get("/v1/calls", headers=headers)
                assert answer.status_code == 401, headers
                assert answer.json()["error"]["code"] == "unauthorized"
                assert answer.headers["www-authenticate"].startswith("Bearer")
            secret, record = new_key("test")
            await api.control.store.add_key(record)
            assert (await api.client.get("/v1/calls", headers=api.auth(secret))).status_code == 200
            await api.control.store.revoke_key(record.id)
            api.control._keys.clear()
            assert (await api.client.get("/v1/calls", headers=api.auth(secret))).status_code == 401

    run(scenario())


def test_bad_input_is_a_json_error_naming_the_field_never_a_500(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with serve_api(tmp_path) as api:
            post = api.client.post
            cases = [
                (await post("/v1/calls", content=b"{nope", headers=api.auth()), 400, None),
                (await post("/v1/calls", json={}, headers=api.auth()), 422, None),
                (
                    await post("/v1/calls", json={"to": "+1", "tpyo": 1}, headers=api.auth()),
                    422,
                    "tpyo",
                ),
                (
                    await post(
                        "/v1/calls", json={"to": "+1", "wss_url": "http://x"}, headers=api.auth()
                    ),
                    422,
                    "wss_url",
                ),
                (
                    await post("/v1/calls", json={"to": "+1", "timeout": -1}, headers=api.auth()),
                    422,
                    "timeout",
                ),
                (
                    await post(
                        "/v1/calls",
                        json={"to": "+1", "bot_audio": "opus/48000"},
                        headers=api.auth(),
                    ),
                    422,
                    "bot_audio",
                ),
                (
                    await post(
                        "/v1/calls", json={"to": "+1", "wss_header": "no colon"}, headers=api.auth()
                    ),
                    422,
                    "wss_header",
                ),
                (await api.client.get("/v1/calls?limit=500", headers=api.auth()), 422, "limit"),
                (await api.client.get("/v1/calls?cursor=abc", headers=api.auth()), 422, "cursor"),
                (
                    await api.client.get(
                        "/v1/calls?cursor=9999999999999999999", headers=api.auth()
                    ),
                    400,
                    "cursor",
                ),
                (await api.client.get("/v1/calls/vx-nope", headers=api.auth()), 404, None),
                (await api.client.get("/v1/nothing", headers=api.auth()), 404, None),
                (await api.client.delete("/v1/calls", headers=api.auth()), 405, None),
                (
                    await post("/v1/calls/vx-nope/dtmf", json={"digits": "x"}, headers=api.auth()),
                    422,
                    "digits",
                ),
            ]
            for answer, status, field in cases:
                assert answer.status_code == status, (answer.request.url, answer.text)
                error = answer.json()["error"]
                assert error["code"] and error["message"]
                if field is not None:
                    assert error["field"] == field, error
            huge = await post("/v1/calls", content=b"x" * 2_000_000, headers=api.auth())
            assert huge.status_code == 413

    run(scenario())


def test_rate_limit_headers_on_every_answer_and_429_with_retry_after(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with serve_api(tmp_path, VOXGATE_API_RATE_LIMIT="5") as api:
            answers = [await api.client.get("/v1/calls", headers=api.auth()) for _ in range(7)]
            assert [a.status_code for a in answers[:5]] == [200] * 5
            assert answers[-1].status_code == 429
            assert answers[-1].json()["error"]["code"] == "rate_limited"
            assert int(answers[-1].headers["retry-after"]) >= 1
            for answer in answers:
                assert answer.headers["x-ratelimit-limit"] == "5"
                assert "x-ratelimit-remaining" in answer.headers
                assert "x-ratelimit-reset" in answer.headers
            other = await api.client.get("/v1/calls", headers=api.auth(api.live_key))
            assert other.status_code == 200  # another key, its own bucket
            await asyncio.sleep(1.1)
            assert (await api.client.get("/v1/calls", headers=api.auth())).status_code == 200

    run(scenario())


def _call(n: int, when: float, status: str = "completed") -> CallRecord:
    return CallRecord(
        id=f"vx-page-{n:05d}",
        mode="test",
        direction="inbound" if n % 2 else "outbound",
        status=status,  # type: ignore[arg-type]
        from_number=f"+1555000{n % 10}",
        to_number="+15559999999",
        created_at=when,
    )


def test_pagination_walks_every_call_once_while_new_ones_arrive(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with serve_api(tmp_path) as api:
            store = api.control.store
            start = time.time() - 1000
            for n in range(120):
                await store.add_call(_call(n, start + n))
            seen: list[str] = []
            cursor: str | None = None
            added = 0
            while True:
                url = "/v1/calls?limit=7" + (f"&cursor={cursor}" if cursor else "")
                page = (await api.client.get(url, headers=api.auth())).json()
                seen += [call["id"] for call in page["data"]]
                for _ in range(3):  # new calls land between the pages
                    await store.add_call(_call(1000 + added, time.time()))
                    added += 1
                if not page["has_more"]:
                    assert page["next_cursor"] is None
                    break
                cursor = page["next_cursor"]
            assert seen == [f"vx-page-{n:05d}" for n in reversed(range(120))]
            default = (await api.client.get("/v1/calls", headers=api.auth())).json()
            assert len(default["data"]) == 50 and default["has_more"]

    run(scenario())


def test_filters_by_status_direction_number_and_dates(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with serve_api(tmp_path) as api:
            store = api.control.store
            for n in range(10):
                await store.add_call(
                    _call(n, 1_700_000_000 + n * 86400, "busy" if n < 3 else "completed")
                )

            async def ids(query: str) -> list[str]:
                page = (await api.client.get(f"/v1/calls?{query}", headers=api.auth())).json()
                return [call["id"] for call in page["data"]]

            assert len(await ids("status=busy")) == 3
            assert len(await ids("direction=inbound")) == 5
            assert await ids("number=%2B15550007") == ["vx-page-00007"]
            window = await ids(
                "created_after=2023-11-16T00:00:00Z&created_before=2023-11-18T00:00:00Z"
            )
            assert len(window) == 2
            bad = await api.client.get("/v1/calls?status=nope", headers=api.auth())
            assert bad.status_code == 422

    run(scenario())


def test_health_readiness_and_metrics(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with serve_api(tmp_path, VOXGATE_MAX_CALLS="1") as api:
            assert (await api.client.get("/healthz")).json()["status"] == "ok"
            assert (await api.client.get("/readyz")).status_code == 200
            assert api.running.bridge.reserve()  # the one place taken
            full = await api.client.get("/readyz")
            assert full.status_code == 503 and full.json()["status"] == "full"
            api.running.bridge.release()
            metrics = (await api.client.get("/metrics")).text
            assert "webhook_queue_depth" in metrics
            api.running.bridge.draining = True
            assert (await api.client.get("/readyz")).json()["status"] == "draining"

    run(scenario())


def test_outgoing_urls_to_private_addresses_are_refused_unless_allowed(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with serve_api(
            tmp_path, VOXGATE_WEBHOOKS_PRIVATE_TARGETS="deny", VOXGATE_BOT_PRIVATE_TARGETS="deny"
        ) as api:
            post = api.client.post
            for path, body, field, code in (
                ("/v1/webhooks", {"url": "http://127.0.0.1:9/hook"}, "url", "url_not_allowed"),
                ("/v1/webhooks", {"url": "http://169.254.169.254/"}, "url", "url_not_allowed"),
                (
                    "/v1/calls",
                    {"to": "+1555", "webhook_url": "http://10.0.0.1/"},
                    "webhook_url",
                    "url_not_allowed",
                ),
                (
                    "/v1/calls",
                    {"to": "+1555", "wss_url": "ws://127.0.0.1:9/"},
                    "wss_url",
                    "bot_not_allowed",
                ),
                (
                    "/v1/numbers",
                    {"number": "+1555", "wss_url": "ws://[::1]:9/"},
                    "wss_url",
                    "bot_not_allowed",
                ),
            ):
                answer = await post(path, json=body, headers=api.auth())
                assert answer.status_code == 422, (path, body, answer.text)
                error = answer.json()["error"]
                assert (error["code"], error["field"]) == (code, field), error
            listed = (await api.client.get("/v1/calls", headers=api.auth())).json()
            assert listed["data"] == []  # a refused call is never recorded

    run(scenario())
