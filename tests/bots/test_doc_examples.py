"""The bots in docs/PROTOCOL.md and docs/BOTS.md work: each runs through the bridge.

Every fenced ``python`` block that defines ``handle`` is written to a file, loaded the way
``voxgate bot PATH`` loads it, served, and called through a real bridge by the carrier
emulator (a Twilio stream).
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from carrier import CarrierEmulator
from scenario import run

from voxgate.bots.sdk.runner import default_options, load_bot
from voxgate.bots.sdk.server import serve_bot
from voxgate.bridge.aio.server import running_bridge
from voxgate.config import load_config

DOCS = Path(__file__).resolve().parents[2] / "docs"


def sdk_bots(name: str) -> list[str]:
    """The fenced ``python`` blocks of ``docs/<name>`` that are whole SDK bots."""
    text = (DOCS / name).read_text(encoding="utf-8")
    blocks = re.findall(r"```python\n(.*?)```", text, re.DOTALL)
    return [block for block in blocks if "async def handle(call: Call)" in block]


SDK_BOTS = sdk_bots("PROTOCOL.md")
(GUIDE_BOT,) = sdk_bots("BOTS.md")


def test_the_protocol_document_has_two_sdk_bots() -> None:
    assert len(SDK_BOTS) == 2


@asynccontextmanager
async def called(source: str, tmp_path: Path, name: str) -> AsyncIterator[CarrierEmulator]:
    """The example ``source`` served as a bot, and a Twilio stream through a bridge to it."""
    path = tmp_path / f"{name}.py"
    path.write_text(source, encoding="utf-8")
    module = load_bot(str(path))
    server = await serve_bot(module.handle, "127.0.0.1", 0, options=default_options(module))
    port = server.sockets[0].getsockname()[1]
    try:
        config = load_config(None, {"VOXGATE_LOG_FORMAT": "text"})
        async with running_bridge(config) as running:
            url = f"{running.ws_url}/v1/streams/twilio"
            params = {"wss_url": f"ws://127.0.0.1:{port}"}
            async with CarrierEmulator(url, "twilio", custom_parameters=params) as stream:
                yield stream
    finally:
        server.close()
        await server.wait_closed()


def test_the_minimal_sdk_bot_echoes(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with called(SDK_BOTS[0], tmp_path, "echo_example") as stream:
            spoken = bytes(range(0, 256, 2)) * 5  # 640 bytes: 80 ms of PCMU
            await stream.send_audio(spoken)
            assert await stream.wait_for_audio(len(spoken), timeout=10) == spoken

    run(scenario(), timeout=30)


def test_the_opening_hours_bot_greets_answers_1_and_hangs_up_after_its_goodbye(
    tmp_path: Path,
) -> None:
    async def scenario() -> None:
        async with called(SDK_BOTS[1], tmp_path, "hours_example") as stream:
            assert len(await stream.wait_for_audio(2400, timeout=10)) == 2400  # 300 ms of PCMU
            await stream.send_dtmf("1")
            await asyncio.wait_for(stream.wait_for_close(), 15)
            assert len(stream.received_audio()) == 4800  # and the goodbye, whole

    run(scenario(), timeout=40)


def test_the_guide_s_first_bot_beeps_echoes_and_hangs_up_on_hash(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with called(GUIDE_BOT, tmp_path, "first_bot") as stream:
            beep = await stream.wait_for_audio(1600, timeout=10)  # 200 ms of PCMU
            spoken = bytes(range(0, 256, 2)) * 5
            await stream.send_audio(spoken)
            heard = await stream.wait_for_audio(len(beep) + len(spoken), timeout=10)
            assert heard == beep + spoken
            await stream.send_dtmf("#")
            await asyncio.wait_for(stream.wait_for_close(), 15)

    run(scenario(), timeout=40)
