"""``/v1/numbers``: CRUD, and the routes deciding real incoming calls (a carrier stream
from the emulator): which bot, reject, or the number's webhook asked."""

from __future__ import annotations

from pathlib import Path

from carrier import CarrierEmulator
from control_api import Api, serve_api
from scenario import run
from scripted_bot import ScriptedBot
from webhook_receiver import WebhookReceiver

NUMBER = "+15550002222"  # the emulator's called number (Telnyx streams carry it)


async def _route(api: Api, **body: object) -> dict[str, object]:
    answer = await api.client.post(
        "/v1/numbers", json={"number": NUMBER, **body}, headers=api.auth()
    )
    assert answer.status_code == 201, answer.text
    route: dict[str, object] = answer.json()
    return route


def test_numbers_crud_hides_the_header_and_refuses_duplicates(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with serve_api(tmp_path) as api:
            route = await _route(
                api, wss_url="ws://127.0.0.1:9/bot", wss_header="Authorization: Bearer sekrit"
            )
            assert route["wss_header_set"] is True
            assert "sekrit" not in str(route)
            again = await api.client.post(
                "/v1/numbers", json={"number": NUMBER}, headers=api.auth()
            )
            assert again.status_code == 409 and again.json()["error"]["field"] == "number"
            url = f"/v1/numbers/{route['id']}"
            changed = await api.client.patch(
                url, json={"incoming_call_action": "reject", "wss_header": None}, headers=api.auth()
            )
            assert changed.status_code == 200, changed.text
            body = changed.json()
            assert body["incoming_call_action"] == "reject" and body["wss_header_set"] is False
            assert body["wss_url"] == "ws://127.0.0.1:9/bot"  # left out: kept
            listed = (await api.client.get("/v1/numbers", headers=api.auth())).json()
            assert [n["id"] for n in listed["data"]] == [route["id"]]
            assert (await api.client.delete(url, headers=api.auth())).status_code == 204
            assert (await api.client.get(url, headers=api.auth())).status_code == 404
            assert (await api.client.delete(url, headers=api.auth())).status_code == 404
            bad = await api.client.post(
                "/v1/numbers",
                json={"number": NUMBER, "incoming_call_action": "maybe"},
                headers=api.auth(),
            )
            assert bad.status_code == 422 and bad.json()["error"]["field"] == "incoming_call_action"

    run(scenario())


def test_an_incoming_call_goes_to_its_numbers_bot_and_is_recorded(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with serve_api(tmp_path) as api, ScriptedBot() as bot, WebhookReceiver() as hooks:
            hooks.secrets.append(api.control.webhook_secret)
            await _route(api, wss_url=bot.url, webhook_url=hooks.url)
            url = f"{api.running.ws_url}/v1/streams/telnyx"
            async with CarrierEmulator(url, "telnyx") as carrier:
                connection = await bot.connection()
                start = (await connection.wait_for_type("start"))[0]
                call_id = start["call_id"]
                await carrier.send_dtmf("7")
                await hooks.wait_for("dtmf.received")
                await carrier.hang_up()
            await hooks.wait_for("call.completed")
            assert hooks.events()[:2] == ["call.initiated", "call.answered"]
            assert all(r.signed for r in hooks.received)
            calls = (await api.client.get("/v1/calls", headers=api.auth(api.live_key))).json()
            [call] = calls["data"]
            assert call["id"] == call_id
            assert call["direction"] == "inbound" and call["to"] == NUMBER
            assert call["status"] == "completed" and call["dtmf"] == "7"
            assert call["carrier"] == "telnyx"

    run(scenario())


def test_a_rejecting_route_and_a_webhook_that_decides(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with serve_api(tmp_path) as api, ScriptedBot() as bot, WebhookReceiver() as hooks:
            route = await _route(api, incoming_call_action="reject")
            url = f"{api.running.ws_url}/v1/streams/telnyx"
            carrier = CarrierEmulator(url, "telnyx")
            await carrier.connect()
            assert await carrier.wait_for_close() == 1008
            hooks.decision = {
                "action": "answer",
                "wss_url": bot.url,
                "custom_parameters": {"lang": "fr"},
            }
            changed = await api.client.patch(
                f"/v1/numbers/{route['id']}",
                json={"incoming_call_action": "webhook", "webhook_url": hooks.url},
                headers=api.auth(),
            )
            assert changed.status_code == 200
            async with CarrierEmulator(url, "telnyx"):
                connection = await bot.connection()
                start = (await connection.wait_for_type("start"))[0]
                assert "lang" in str(start)
            question = [r for r in hooks.received if r.event.get("type") == "call.incoming"]
            assert question and question[0].event["data"]["to"] == NUMBER

    run(scenario())


def test_the_configuration_files_routes_seed_the_store_once(tmp_path: Path) -> None:
    async def scenario() -> None:
        config = tmp_path / "voxgate.toml"
        config.write_text(
            '[routes."+15557654321"]\nurl = "ws://127.0.0.1:9/sales"\nopening_text = "Sales!"\n'
        )
        async with serve_api(tmp_path, config_file=config) as api:
            [route] = (await api.client.get("/v1/numbers", headers=api.auth())).json()["data"]
            assert route["number"] == "+15557654321"
            assert route["wss_url"] == "ws://127.0.0.1:9/sales" and route["text"] == "Sales!"
            changed = await api.client.patch(
                f"/v1/numbers/{route['id']}", json={"text": "Hi"}, headers=api.auth()
            )
            assert changed.status_code == 200
        # a restart: the store's route stays
        async with serve_api(tmp_path, config_file=config) as api:
            [route] = (await api.client.get("/v1/numbers", headers=api.auth())).json()["data"]
            assert route["text"] == "Hi"
            assert api.running.bridge.bot_config_for("+15557654321").opening_text == "Hi"

    run(scenario())
