"""``/v1/calls`` end to end: a test key's call to the simulated callee and the built-in
echo bot, its signed webhooks on a local receiver, its live events, the record read back;
live-call actions; idempotency."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

from control_api import Api, serve_api, until
from scenario import run
from webhook_receiver import WebhookReceiver

CALLEE = {"ring": 0.2, "digits": "12", "digits_at": 0.4, "hangup_after": 1.5}


async def _subscribe(api: Api, receiver: WebhookReceiver) -> None:
    answer = await api.client.post(
        "/v1/webhooks", json={"url": receiver.url, "events": ["*"]}, headers=api.auth()
    )
    assert answer.status_code == 201, answer.text
    receiver.secrets.append(answer.json()["secret"])


async def _place(api: Api, **body: Any) -> dict[str, Any]:
    answer = await api.client.post("/v1/calls", json=body, headers=api.auth())
    assert answer.status_code == 201, answer.text
    call: dict[str, Any] = answer.json()
    return call


async def _answered_call(api: Api, receiver: WebhookReceiver) -> dict[str, Any]:
    """A call that stays up until the API ends it, once it is answered."""
    await _subscribe(api, receiver)
    call = await _place(
        api, to="+15550001111", simulated_callee={"ring": 0.1, "hangup_after": None}
    )
    await receiver.wait_for("call.answered", call["id"])
    return call


def test_a_test_call_reaches_the_echo_bot_and_every_step_is_a_signed_webhook(
    tmp_path: Path,
) -> None:
    async def scenario() -> None:
        async with serve_api(tmp_path) as api, WebhookReceiver() as receiver:
            await _subscribe(api, receiver)
            call = await _place(api, to="+15550001111", simulated_callee=CALLEE)
            assert call["status"] == "queued"
            assert call["mode"] == "test" and call["direction"] == "outbound"
            read = await api.client.get(f"/v1/calls/{call['id']}", headers=api.auth())
            assert read.status_code == 200 and read.json()["id"] == call["id"]
            await receiver.wait_for("call.completed", call["id"])
            kinds = receiver.events(call["id"])
            assert kinds[:3] == ["call.initiated", "call.ringing", "call.answered"]
            assert "bot.connected" in kinds
            assert kinds.count("dtmf.received") == 2
            assert kinds[-1] == "call.completed"
            assert all(r.signed for r in receiver.received)
            ids = [r.event["id"] for r in receiver.received]
            assert len(set(ids)) == len(ids)
            done = (await api.client.get(f"/v1/calls/{call['id']}", headers=api.auth())).json()
            assert done["status"] == "completed"
            assert done["dtmf"] == "12"
            assert done["hangup_side"] == "caller"
            assert done["hangup_cause"] == "caller_hangup"
            assert 1.0 < done["duration"] < 10.0
            assert done["answered_at"] and done["ended_at"]
            assert done["quality"]["frames_in"] > 0
            metrics = (await api.client.get("/metrics")).text
            for name in (
                "voxgate_calls_active_test",
                "voxgate_calls_active_sip",
                "voxgate_bot_connect_seconds",
                "voxgate_frames_in",
                "voxgate_frames_out",
                "voxgate_webhook_queue_depth",
            ):
                assert name in metrics, name

    run(scenario())


def test_the_live_event_stream_carries_one_calls_events(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with serve_api(tmp_path) as api:
            seen: list[str] = []
            call = await _place(api, to="+15550001111", simulated_callee={**CALLEE, "ring": 0.5})
            other = await _place(api, to="+15550002222", simulated_callee=CALLEE)

            async def listen() -> None:
                url = f"/v1/events?call_id={call['id']}"
                async with api.client.stream("GET", url, headers=api.auth()) as stream:
                    assert stream.headers["content-type"].startswith("text/event-stream")
                    async for line in stream.aiter_lines():
                        if line.startswith("data:"):
                            event = json.loads(line[5:])
                            assert event["data"]["call"]["id"] == call["id"]
                            seen.append(event["type"])
                            if event["type"] == "call.completed":
                                return

            await asyncio.wait_for(listen(), 30)
            assert "call.answered" in seen and seen[-1] == "call.completed"
            assert other["id"] != call["id"]

    run(scenario())


def test_actions_on_a_live_call_and_409_once_it_is_over(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with serve_api(tmp_path) as api, WebhookReceiver() as receiver:
            call = await _answered_call(api, receiver)
            base = f"/v1/calls/{call['id']}"
            for path, body in (
                ("/dtmf", {"digits": "5#"}),
                ("/play", {"audio_base64": "//////////8=", "format": "mulaw", "barge_in": True}),
            ):
                answer = await api.client.post(base + path, json=body, headers=api.auth())
                assert answer.status_code == 202, (path, answer.text)
            swapped = await api.client.post(
                base + "/bot", json={"wss_url": api.control.bridge.echo_url}, headers=api.auth()
            )
            assert swapped.status_code == 202, swapped.text
            await until(lambda: receiver.events(call["id"]).count("bot.connected") >= 2)
            hung = await api.client.post(base + "/hangup", headers=api.auth())
            assert hung.status_code == 202
            await receiver.wait_for("call.completed", call["id"])
            done = (await api.client.get(base, headers=api.auth())).json()
            assert done["hangup_cause"] == "api_hangup" and done["hangup_side"] == "api"
            again = await api.client.post(base + "/hangup", headers=api.auth())
            assert again.status_code == 409
            assert again.json()["error"]["code"] == "call_not_live"
            transfer = await api.client.post(
                base + "/transfer", json={"target": "+1555"}, headers=api.auth()
            )
            assert transfer.status_code == 409

    run(scenario())


def test_transfer_of_a_live_call_ends_it_transferred(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with serve_api(tmp_path) as api, WebhookReceiver() as receiver:
            call = await _answered_call(api, receiver)
            answer = await api.client.post(
                f"/v1/calls/{call['id']}/transfer",
                json={"target": "sip:desk@example.com"},
                headers=api.auth(),
            )
            assert answer.status_code == 202, answer.text
            await receiver.wait_for("call.completed", call["id"])
            assert "call.transferred" in receiver.events(call["id"])
            done = (await api.client.get(f"/v1/calls/{call['id']}", headers=api.auth())).json()
            assert done["transfer_target"] == "sip:desk@example.com"
            assert done["hangup_cause"] == "transferred"

    run(scenario())


def test_unanswered_outcomes_end_as_busy_no_answer_and_failed(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with serve_api(tmp_path) as api, WebhookReceiver() as receiver:
            await _subscribe(api, receiver)
            placed = {}
            for outcome in ("busy", "no-answer", "fail"):
                call = await _place(
                    api, to="+1555", simulated_callee={"outcome": outcome, "ring": 0.1}
                )
                placed[outcome] = call["id"]
            for outcome, call_id in placed.items():
                await receiver.wait_for("call.failed", call_id)
                done = (await api.client.get(f"/v1/calls/{call_id}", headers=api.auth())).json()
                assert done["status"] == {"fail": "failed"}.get(outcome, outcome)
            assert not api.control.bridge.sessions

    run(scenario())


def test_idempotency_key_gives_the_same_call_and_refuses_another_body(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with serve_api(tmp_path) as api:
            headers = {**api.auth(), "Idempotency-Key": "order-42"}
            body = {"to": "+15550001111", "simulated_callee": {"outcome": "busy", "ring": 0}}
            first = await api.client.post("/v1/calls", json=body, headers=headers)
            second = await api.client.post("/v1/calls", json=body, headers=headers)
            assert first.status_code == second.status_code == 201
            assert first.json()["id"] == second.json()["id"]
            other = await api.client.post(
                "/v1/calls", json={**body, "to": "+15550009999"}, headers=headers
            )
            assert other.status_code == 422
            assert other.json()["error"]["code"] == "idempotency_key_reused"
            listed = (await api.client.get("/v1/calls", headers=api.auth())).json()
            assert len(listed["data"]) == 1

    run(scenario())


def test_dial_api_field_names_are_accepted_as_aliases(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with serve_api(tmp_path) as api:
            call = await _place(
                api,
                customer_no="+15550001111",
                caller_id="+15550002222",
                system_msg="You are a test.",
                text="Hello!",
                connect_ws_after_answer=1,
                simulated_callee={"outcome": "busy", "ring": 0},
            )
            assert call["to"] == "+15550001111" and call["from"] == "+15550002222"
            both = await api.client.post(
                "/v1/calls", json={"to": "+1", "customer_no": "+2"}, headers=api.auth()
            )
            assert both.status_code == 422

    run(scenario())


def test_a_test_key_sees_only_test_calls_and_a_live_key_needs_a_trunk(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with serve_api(tmp_path) as api:
            call = await _place(api, to="+1555", simulated_callee={"outcome": "busy", "ring": 0})
            live = api.auth(api.live_key)
            hidden = await api.client.get(f"/v1/calls/{call['id']}", headers=live)
            assert hidden.status_code == 404
            listed = (await api.client.get("/v1/calls", headers=live)).json()
            assert listed["data"] == []
            refused = await api.client.post("/v1/calls", json={"to": "+1555"}, headers=live)
            assert refused.status_code == 503
            assert refused.json()["error"]["code"] == "no_trunk"

    run(scenario())


def test_hangup_while_it_rings_cancels_the_call(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with serve_api(tmp_path) as api, WebhookReceiver() as receiver:
            await _subscribe(api, receiver)
            call = await _place(api, to="+15550001111", simulated_callee={"ring": 30})
            await receiver.wait_for("call.ringing", call["id"])
            dtmf = await api.client.post(
                f"/v1/calls/{call['id']}/dtmf", json={"digits": "1"}, headers=api.auth()
            )
            assert dtmf.status_code == 409
            hung = await api.client.post(f"/v1/calls/{call['id']}/hangup", headers=api.auth())
            assert hung.status_code == 202
            await receiver.wait_for("call.failed", call["id"])
            done = (await api.client.get(f"/v1/calls/{call['id']}", headers=api.auth())).json()
            assert done["status"] == "canceled"
            assert not api.control.bridge.sessions and not api.control.bridge.full()

    run(scenario())
