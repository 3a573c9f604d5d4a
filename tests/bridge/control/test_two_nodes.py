"""Two voxgate nodes sharing one PostgreSQL store: one set of numbers, calls, keys and
webhook outbox, and a live-call action that reaches the node not holding the call is
carried out by the one that does."""

from __future__ import annotations

from pathlib import Path

from control_api import serve_api
from scenario import run
from webhook_receiver import WebhookReceiver


def test_actions_reach_the_node_that_holds_the_call(tmp_path: Path, postgres_url: str) -> None:
    async def scenario() -> None:
        async with (
            serve_api(tmp_path, VOXGATE_NODE_NAME="node-a", VOXGATE_STORE_URL=postgres_url) as a,
            serve_api(tmp_path, VOXGATE_NODE_NAME="node-b", VOXGATE_STORE_URL=postgres_url) as b,
            WebhookReceiver() as receiver,
        ):
            hook = await b.client.post("/v1/webhooks", json={"url": receiver.url}, headers=b.auth())
            receiver.secrets.append(hook.json()["secret"])
            callee = {"ring": 0.1, "hangup_after": None}
            placed = await a.client.post(
                "/v1/calls",
                json={"to": "+15550001111", "simulated_callee": callee},
                headers=a.auth(),
            )
            call_id = placed.json()["id"]
            await receiver.wait_for("call.answered", call_id)
            seen_by_b = await b.client.get(f"/v1/calls/{call_id}", headers=b.auth())
            assert seen_by_b.status_code == 200  # b's key is another key of the same store
            assert call_id in a.running.bridge.sessions and not b.running.bridge.sessions
            dtmf = await b.client.post(
                f"/v1/calls/{call_id}/dtmf", json={"digits": "9"}, headers=b.auth()
            )
            assert dtmf.status_code == 202, dtmf.text
            wrong = await b.client.post(
                f"/v1/calls/{call_id}/transfer", json={"target": ""}, headers=b.auth()
            )
            assert wrong.status_code == 422
            hung = await b.client.post(f"/v1/calls/{call_id}/hangup", headers=b.auth())
            assert hung.status_code == 202, hung.text
            await receiver.wait_for("call.completed", call_id)
            done = (await b.client.get(f"/v1/calls/{call_id}", headers=b.auth())).json()
            assert done["hangup_cause"] == "api_hangup"
            again = await b.client.post(f"/v1/calls/{call_id}/hangup", headers=b.auth())
            assert again.status_code == 409
            deliveries = (await a.client.get("/v1/webhooks/deliveries", headers=a.auth())).json()
            ids = [d["event_id"] for d in deliveries["data"]]
            assert len(ids) == len(set(ids))  # each event delivered by one node only
            assert len(receiver.received) == len({r.event["id"] for r in receiver.received})

    run(scenario())


def test_a_number_routed_through_one_node_is_seen_by_the_other(
    tmp_path: Path, postgres_url: str
) -> None:
    async def scenario() -> None:
        async with (
            serve_api(tmp_path, VOXGATE_NODE_NAME="node-a", VOXGATE_STORE_URL=postgres_url) as a,
            serve_api(tmp_path, VOXGATE_NODE_NAME="node-b", VOXGATE_STORE_URL=postgres_url) as b,
        ):
            made = await a.client.post(
                "/v1/numbers",
                json={"number": "+15550002222", "wss_url": "ws://127.0.0.1:9/x"},
                headers=a.auth(),
            )
            assert made.status_code == 201
            await b.control.refresh_routes()  # what its periodic refresh does within 5 s
            config = b.running.bridge.bot_config_for("+15550002222")
            assert config.url == "ws://127.0.0.1:9/x"

    run(scenario())
