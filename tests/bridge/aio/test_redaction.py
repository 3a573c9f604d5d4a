"""No secret reaches the logs: a real ``voxgate serve`` at debug level, secrets everywhere.

The bridge runs as its own process with its stderr captured to a file, in
both log formats. Calls carry a secret in every place one can hide: the
server token in a Telnyx stream's ``?token=`` and in its auth header, a
Twilio signature, a per-call ``wss_url`` with ``user:pass@`` and
``?api_key=``, a ``wss_header`` with ``Authorization: Bearer``, malformed
``wss_header`` values, a bot URL outside ``bot.allow``, a wrong token, and
the carriers' REST credentials (the bot hangs up, so voxgate calls a REST
stand-in). Then no secret may appear anywhere in what the process wrote, nor
in a close reason sent to the carrier or the bot.
"""

from __future__ import annotations

import asyncio
import base64
import json
import re
from collections.abc import AsyncIterator, Coroutine
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, Final

import httpx
import pytest
from carrier import CarrierEmulator, twilio_signature
from rest_standin import TWILIO_ACCOUNT_SID, RestStandIn
from scripted_bot import BotConnection, ScriptedBot
from served import voxgate_serve
from websockets.exceptions import InvalidStatus

SERVER_TOKEN: Final = "S3CRET-server-token-7f3a9c"
WRONG_TOKEN: Final = "S3CRET-wrong-token-52be01"
METRICS_TOKEN: Final = "S3CRET-metrics-token-0d77e2"
TWILIO_AUTH_TOKEN: Final = "S3CRET-twilio-auth-token-91c4"
TELNYX_API_KEY: Final = "KEYS3CRET-telnyx-api-key-4e8d"
USERINFO_PASSWORD: Final = "S3CRET-userinfo-pass-6b21"
URL_API_KEY: Final = "S3CRET-url-api-key-a90f"
BEARER: Final = "S3CRET-bearer-token-3c5e"
MALFORMED_BEARER: Final = "S3CRET-malformed-bearer-d81a"
MALFORMED_BARE: Final = "S3CRET-malformed-bare-line-77c0"
TENANT_KEY: Final = "S3CRET-tenant-key-e13b"
REFUSED_PASSWORD: Final = "S3CRET-refused-bot-pass-5a02"
REFUSED_API_KEY: Final = "S3CRET-refused-bot-key-c6f9"

IS_SECRET: Final = re.compile(r"S3CRET[\w-]*")
FRAME: Final = bytes([0xFF]) * 160  # 20 ms of mu-law silence


def run(scenario: Coroutine[Any, Any, None], timeout: float = 90.0) -> None:
    asyncio.run(asyncio.wait_for(scenario, timeout))


@asynccontextmanager
async def logged_bridge(log: Path, **env: str) -> AsyncIterator[str]:
    """``voxgate serve`` as its own process, stderr into ``log``; yields its http:// base URL."""
    async with voxgate_serve(env, log) as (port, _):
        yield f"http://127.0.0.1:{port}"


def secret_bot_url(bot: ScriptedBot) -> str:
    port = bot.url.rsplit(":", 1)[1].split("/", 1)[0]
    return f"ws://botuser:{USERINFO_PASSWORD}@127.0.0.1:{port}/bot?api_key={URL_API_KEY}&lang=en"


def secret_parameters(bot: ScriptedBot) -> dict[str, str]:
    return {
        "wss_url": secret_bot_url(bot),
        "wss_header": f"Authorization: Bearer {BEARER}\nX-Tenant-Key: {TENANT_KEY}",
    }


class Seen:
    """Close reasons voxgate sent to carriers and bots."""

    def __init__(self) -> None:
        self.reasons: list[str] = []

    def carrier(self, carrier: CarrierEmulator) -> None:
        self.reasons.append(f"carrier {carrier.close_code}: {carrier.close_reason or ''}")

    def bot(self, connection: BotConnection) -> None:
        reason = connection.socket.close_reason or ""
        self.reasons.append(f"bot {connection.socket.close_code}: {reason}")


async def wait_until(predicate: Any, timeout: float = 10.0) -> None:
    async with asyncio.timeout(timeout):
        while not predicate():
            await asyncio.sleep(0.02)


async def call_ended_by_the_bot(
    carrier: CarrierEmulator, connection: BotConnection, standin: RestStandIn, seen: Seen
) -> None:
    """Audio both ways, then the bot hangs up: voxgate hangs up by REST."""
    await connection.wait_for_type("start")
    for _ in range(10):
        await carrier.send_audio(FRAME)
    await connection.send_audio(FRAME * 10)
    await connection.send({"type": "session.hangup", "reason": "done"})
    await carrier.wait_for_close(timeout=10)
    await connection.closed.wait()
    await wait_until(lambda: any(r.call_id == carrier.call_id for r in standin.accepted("hangup")))
    seen.carrier(carrier)
    seen.bot(connection)


async def calls_with_secrets(base: str, standin: RestStandIn, seen: Seen) -> None:
    ws = base.replace("http://", "ws://")
    async with ScriptedBot() as bot:
        params = secret_parameters(bot)
        # Telnyx: the token in the query string (as the README suggests) and in the header
        telnyx_url = f"{ws}/v1/streams/telnyx?token={SERVER_TOKEN}"
        async with CarrierEmulator(
            telnyx_url, "telnyx", custom_parameters=params, streaming_auth_token=SERVER_TOKEN
        ) as carrier:
            connection = await bot.connection(0, timeout=10)
            await call_ended_by_the_bot(carrier, connection, standin, seen)
        # Twilio: a signed stream
        twilio_url = f"{ws}/v1/streams/twilio"
        async with CarrierEmulator(
            twilio_url, "twilio", custom_parameters=params, twilio_auth_token=TWILIO_AUTH_TOKEN
        ) as carrier:
            connection = await bot.connection(1, timeout=10)
            await call_ended_by_the_bot(carrier, connection, standin, seen)
        # malformed wss_header values: refused, neither logged nor echoed in full
        for malformed in (f"Bearer {MALFORMED_BEARER}", MALFORMED_BARE):
            bad = {"wss_url": params["wss_url"], "wss_header": malformed}
            async with CarrierEmulator(
                f"{ws}/v1/streams/telnyx",
                "telnyx",
                custom_parameters=bad,
                streaming_auth_token=SERVER_TOKEN,
            ) as carrier:
                code = await carrier.wait_for_close(timeout=10)
                assert code == 1008
                seen.carrier(carrier)
        # a bot outside bot.allow: refused, its URL neither logged nor echoed in full
        elsewhere = f"ws://u:{REFUSED_PASSWORD}@192.0.2.1:9/bot?api_key={REFUSED_API_KEY}"
        async with CarrierEmulator(
            f"{ws}/v1/streams/telnyx",
            "telnyx",
            custom_parameters={**params, "wss_url": elsewhere},
            streaming_auth_token=SERVER_TOKEN,
        ) as carrier:
            assert await carrier.wait_for_close(timeout=10) == 1008
            seen.carrier(carrier)
        assert len(bot.connections) == 2  # the refused calls never reached the bot
    # a wrong token: refused before the upgrade
    refused = CarrierEmulator(f"{ws}/v1/streams/telnyx?token={WRONG_TOKEN}", "telnyx")
    with pytest.raises(InvalidStatus):
        await refused.connect()
    # /metrics with its token, both ways it might be asked for
    async with httpx.AsyncClient() as client:
        await client.get(
            f"{base}/metrics?token={METRICS_TOKEN}",
            headers={"Authorization": f"Bearer {METRICS_TOKEN}"},
        )


def secrets_of_the_run(ws_base: str) -> list[str]:
    twilio_url = f"{ws_base}/v1/streams/twilio"
    return [
        SERVER_TOKEN,
        WRONG_TOKEN,
        METRICS_TOKEN,
        TWILIO_AUTH_TOKEN,
        TELNYX_API_KEY,
        USERINFO_PASSWORD,
        URL_API_KEY,
        BEARER,
        MALFORMED_BEARER,
        MALFORMED_BARE,
        TENANT_KEY,
        REFUSED_PASSWORD,
        REFUSED_API_KEY,
        twilio_signature(TWILIO_AUTH_TOKEN, twilio_url),  # a replayable credential
        base64.b64encode(f"botuser:{USERINFO_PASSWORD}".encode()).decode(),
        base64.b64encode(f"{TWILIO_ACCOUNT_SID}:{TWILIO_AUTH_TOKEN}".encode()).decode(),
    ]


def leaks(text: str, secrets: list[str]) -> dict[str, list[str]]:
    """Each secret found, with (at most three of) the lines holding it."""
    found: dict[str, list[str]] = {}
    for line in text.splitlines():
        for secret in secrets:
            if secret in line:
                found.setdefault(secret, [])
                if len(found[secret]) < 3:
                    found[secret].append(line[:300])
        if "S3CRET" in line and not any(secret in line for secret in secrets):
            for partial in IS_SECRET.findall(line):  # a piece of one, cut or encoded
                found.setdefault(partial, []).append(line[:300])
    return found


@pytest.mark.parametrize("fmt", ["json", "text"])
def test_no_secret_reaches_the_logs_or_a_close_reason(fmt: str, tmp_path: Path) -> None:
    log = tmp_path / "voxgate.log"
    seen = Seen()
    ws_base: list[str] = []

    async def scenario() -> None:
        async with RestStandIn(
            twilio_auth_token=TWILIO_AUTH_TOKEN, telnyx_api_key=TELNYX_API_KEY
        ) as standin:
            env = {
                "VOXGATE_LOG_LEVEL": "debug",
                "VOXGATE_LOG_FORMAT": fmt,
                "VOXGATE_BOT_ALLOW": "127.0.0.1",
                "VOXGATE_TOKEN": SERVER_TOKEN,
                "VOXGATE_METRICS_TOKEN": METRICS_TOKEN,
                "VOXGATE_TWILIO_ACCOUNT_SID": TWILIO_ACCOUNT_SID,
                "VOXGATE_TWILIO_AUTH_TOKEN": TWILIO_AUTH_TOKEN,
                "VOXGATE_TWILIO_API_BASE": standin.base_url,
                "VOXGATE_TELNYX_API_KEY": TELNYX_API_KEY,
                "VOXGATE_TELNYX_API_BASE": standin.base_url,
            }
            async with logged_bridge(log, **env) as base:
                ws_base.append(base.replace("http://", "ws://"))
                await calls_with_secrets(base, standin, seen)
            assert len(standin.accepted("hangup")) == 2

    run(scenario())
    output = log.read_text(encoding="utf-8", errors="replace")
    lines = output.splitlines()

    secrets = secrets_of_the_run(ws_base[0])
    assert leaks(output, secrets) == {}
    assert leaks("\n".join(seen.reasons), secrets) == {}
    for reason in seen.reasons:
        assert len(reason.split(": ", 1)[1].encode()) <= 123

    # the run was logged, at debug level, in the format asked for
    assert "call started" in output
    stamp = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z")
    if fmt == "json":
        entries = [json.loads(line) for line in lines]
        assert {"debug", "info"} <= {entry["level"] for entry in entries}
        assert all(stamp.fullmatch(str(entry["ts"])) for entry in entries)
        assert not any("color_message" in entry for entry in entries)
    else:
        assert any(" debug " in line for line in lines)
        assert stamp.match(lines[0])
    assert "\x1b" not in output  # no terminal colours
