"""``voxgate serve --workers 2`` (a real node of two worker processes on one port and one
SQLite store): a live-call action that reaches the worker not holding the call is handed
over the node's worker socket to the one that does, and answers as if it had not moved."""

from __future__ import annotations

import asyncio
import tempfile
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, Final

import httpx
from control_api import create_key_with_cli, until
from scenario import run
from served import voxgate_serve

from voxgate.bridge.aio.node import NodeLink, NodeShared

CALLS: Final = 6  # placed at first; more while they all sit on one worker
MORE_CALLS: Final = 10  # at most this many more to get calls onto both workers
ROUNDS: Final = 10  # of dtmf and play per call, all sent at once
BURST: Final = 400  # actions handed to one worker at once (its socket's backlog was 100)
PLAY: Final = {"audio_base64": "//////////8=", "format": "mulaw", "barge_in": False}
STAY_UP: Final = {"ring": 0.1, "hangup_after": None}


def _fresh(port: int) -> httpx.AsyncClient:
    """A client that opens a new connection for every request (no keep-alive): the kernel
    hands each one to either worker."""
    return httpx.AsyncClient(
        base_url=f"http://127.0.0.1:{port}",
        timeout=30,
        limits=httpx.Limits(max_keepalive_connections=0),
    )


@asynccontextmanager
async def node(tmp_path: Path) -> AsyncIterator[tuple[httpx.AsyncClient, dict[str, str]]]:
    """Two workers on a fresh SQLite store, and a test key the command line made for it."""
    env = {
        "VOXGATE_WORKERS": "2",
        "VOXGATE_STORE_URL": f"sqlite:///{tmp_path}/voxgate.db",
        "VOXGATE_SIP_ENABLED": "false",
        "VOXGATE_API_RATE_LIMIT": "10000",
        "VOXGATE_LOG_FORMAT": "text",
    }
    async with voxgate_serve(env, tmp_path / "serve.log") as (port, _):
        key = await asyncio.to_thread(create_key_with_cli, env)
        async with _fresh(port) as client:
            yield client, {"Authorization": f"Bearer {key}"}


async def workers(client: httpx.AsyncClient) -> list[dict[str, Any]]:
    health = (await client.get("/healthz")).json()
    found: list[dict[str, Any]] = health["workers"]
    return found


async def place(client: httpx.AsyncClient, auth: dict[str, str]) -> str:
    body = {"to": "+15550001111", "simulated_callee": STAY_UP}
    answer = await client.post("/v1/calls", json=body, headers=auth)
    assert answer.status_code == 201, answer.text
    call_id: str = answer.json()["id"]
    return call_id


async def status_of(client: httpx.AsyncClient, auth: dict[str, str], call_id: str) -> Any:
    answer = await client.get(f"/v1/calls/{call_id}", headers=auth)
    assert answer.status_code == 200, answer.text
    return answer.json()


async def act(
    client: httpx.AsyncClient, auth: dict[str, str], call_id: str, action: str, body: Any
) -> tuple[str, int, str]:
    answer = await client.post(f"/v1/calls/{call_id}/{action}", json=body, headers=auth)
    return action, answer.status_code, answer.text


def forwarded(metrics: str) -> int:
    """``actions_forwarded`` over the node's worker socket, summed across the node."""
    return sum(
        int(float(line.rsplit(" ", 1)[1]))
        for line in metrics.splitlines()
        if line.startswith("voxgate_actions_forwarded") and 'path="node"' in line
    )


def test_actions_reach_the_worker_that_holds_the_call(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with node(tmp_path) as (client, auth):
            assert len(await workers(client)) == 2
            calls = [await place(client, auth) for _ in range(CALLS)]
            for _ in range(MORE_CALLS):  # the kernel may send a run of connections to one
                await until(lambda: _all_answered(client, auth, calls), timeout=30)
                if all(w["calls"] for w in await workers(client)):
                    break
                calls.append(await place(client, auth))
            await until(lambda: _all_answered(client, auth, calls), timeout=30)
            held = {w["slot"]: w["calls"] for w in await workers(client)}
            assert all(held.values()) and sum(held.values()) == len(calls), held

            actions = [
                act(client, auth, call_id, action, body)
                for _ in range(ROUNDS)
                for call_id in calls
                for action, body in (("dtmf", {"digits": "1#"}), ("play", PLAY))
            ]
            answers = await asyncio.gather(*actions)
            refused = [answer for answer in answers if answer[1] != 202]
            assert not refused, refused
            hung = await asyncio.gather(*(act(client, auth, c, "hangup", None) for c in calls))
            assert [code for _, code, _ in hung] == [202] * len(calls), hung

            await until(lambda: _all_ended(client, auth, calls), timeout=30)
            for call_id in calls:
                done = await status_of(client, auth, call_id)
                assert done["status"] == "completed", done
                assert (done["hangup_cause"], done["hangup_side"]) == ("api_hangup", "api")
                assert done["quality"]["dtmf_out"] >= 1, done["quality"]
            # About half the actions went to the worker without the call: handed over.
            total = len(answers) + len(hung)
            handed = forwarded((await client.get("/metrics")).text)
            assert 0 < handed < total, (handed, total)
            assert sum(w["calls"] for w in await workers(client)) == 0

    run(scenario(), timeout=180)


async def _all_answered(client: httpx.AsyncClient, auth: dict[str, str], calls: list[str]) -> bool:
    found = await asyncio.gather(*(status_of(client, auth, c) for c in calls))
    assert all(call["status"] in ("queued", "ringing", "in-progress") for call in found), found
    return all(call["status"] == "in-progress" for call in found)


async def _all_ended(client: httpx.AsyncClient, auth: dict[str, str], calls: list[str]) -> bool:
    found = await asyncio.gather(*(status_of(client, auth, c) for c in calls))
    return all(call["status"] == "completed" for call in found)


def test_a_burst_of_handed_over_actions_waits_its_turn_rather_than_failing() -> None:
    """Hundreds of actions handed to one worker at once (a campaign's hangups): each gets
    the owner's answer, none a refused connection (503)."""

    async def scenario() -> None:
        with tempfile.TemporaryDirectory(prefix="voxgate-node-") as run_dir:
            shared = NodeShared(2, run_dir)
            asker, owner = NodeLink(shared, 0, 100), NodeLink(shared, 1, 100)

            async def perform(request: dict[str, Any]) -> dict[str, Any]:
                await asyncio.sleep(0.05)  # the owner is busy: connections pile up
                return {"status": 202, "body": {"id": request["call_id"]}}

            owner.on_action = perform
            await owner.start()
            try:
                asked = [asker.ask_action(1, {"call_id": f"vx-{n}"}) for n in range(BURST)]
                answers = await asyncio.gather(*asked)
            finally:
                await owner.stop()
            assert [a and a["body"]["id"] for a in answers] == [f"vx-{n}" for n in range(BURST)]

    run(scenario(), timeout=60)
