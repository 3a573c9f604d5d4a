"""Restarts: the call records and the webhook outbox survive ``kill -9`` of the server
mid-traffic; every event is delivered after the restart (at least once, by event id)."""

from __future__ import annotations

import asyncio
import signal
from pathlib import Path

import httpx
from control_api import create_key_with_cli, until
from scenario import run
from served import voxgate_serve
from webhook_receiver import WebhookReceiver

CALLS = 6


def test_kill_9_mid_traffic_loses_no_call_and_no_event(tmp_path: Path) -> None:
    async def scenario() -> None:
        env = {
            "VOXGATE_STORE_URL": f"sqlite:///{tmp_path}/voxgate.db",
            "VOXGATE_SIP_ENABLED": "false",
            "VOXGATE_LOG_FORMAT": "text",
            "VOXGATE_NODE_NAME": "node-a",  # the same node restarted (on another port)
        }
        key = create_key_with_cli(env)
        headers = {"Authorization": f"Bearer {key}"}
        async with WebhookReceiver(failures=10**9) as receiver:  # down: everything waits
            async with (
                voxgate_serve(env, tmp_path / "first.log") as (port, process),
                httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as client,
            ):
                hook = await client.post(
                    "/v1/webhooks", json={"url": receiver.url}, headers=headers
                )
                receiver.secrets.append(hook.json()["secret"])
                ids = []
                for n in range(CALLS):
                    script = {"ring": 0.1, "hangup_after": 0.5 if n % 2 else None}
                    body = {"to": f"+1555000{n:04d}", "simulated_callee": script}
                    answer = await client.post("/v1/calls", json=body, headers=headers)
                    assert answer.status_code == 201, answer.text
                    ids.append(answer.json()["id"])

                async def half_done() -> bool:
                    page = (await client.get("/v1/calls", headers=headers)).json()
                    done = [c for c in page["data"] if c["status"] == "completed"]
                    return len(done) == CALLS // 2

                await until(half_done)  # the other half are still talking
                process.send_signal(signal.SIGKILL)
                await asyncio.to_thread(process.wait, 10)
            receiver.failures = 0  # the receiver comes back
            async with (
                voxgate_serve(env, tmp_path / "second.log") as (port, _),
                httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as client,
            ):
                for call_id in ids:  # each at its own retry time (leases of the dead one freed)
                    for kind in ("call.initiated", "call.ringing", "call.answered"):
                        await receiver.wait_for(kind, call_id, timeout=90)
                    await receiver.wait_for("call.completed", call_id, timeout=90)
                for call_id in ids:
                    read = await client.get(f"/v1/calls/{call_id}", headers=headers)
                    assert read.json()["status"] == "completed"
                causes = [
                    (await client.get(f"/v1/calls/{i}", headers=headers)).json()["hangup_cause"]
                    for i in ids
                ]
                assert causes.count("caller_hangup") == CALLS // 2
                assert causes.count("voxgate_restart") == CALLS // 2
                assert all(r.signed for r in receiver.received)
                dead = await client.get("/v1/webhooks/deliveries?status=dead", headers=headers)
                assert dead.json()["data"] == []

    run(scenario(), timeout=240)
