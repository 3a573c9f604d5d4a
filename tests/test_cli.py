from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from carrier import CarrierEmulator
from scripted_bot import ScriptedBot
from websockets.asyncio.client import connect
from websockets.typing import Subprotocol

import voxgate
from voxgate.cli import main


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    script = Path(sys.executable).with_name("voxgate")
    command = [str(script)] if script.exists() else [sys.executable, "-m", "voxgate"]
    return subprocess.run([*command, *args], capture_output=True, text=True, check=False)


def test_console_script_reports_its_version() -> None:
    done = _run("--version")
    assert done.returncode == 0
    assert done.stdout.strip() == f"voxgate {voxgate.__version__}"


def test_console_script_help() -> None:
    done = _run("--help")
    assert done.returncode == 0
    assert "usage: voxgate" in done.stdout
    assert "AI voice bots" in done.stdout


def test_module_entry_point() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "voxgate", "--version"], capture_output=True, text=True, check=False
    )
    assert done.stdout.strip() == f"voxgate {voxgate.__version__}"


def test_unknown_option_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["--frobnicate"])
    assert exited.value.code == 2
    assert "unrecognized arguments: --frobnicate" in capsys.readouterr().err


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("VOXGATE_")}
    return {**env, **extra}


def _wait_healthy(port: int, process: subprocess.Popen[Any]) -> None:
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        assert process.poll() is None, process.stderr.read() if process.stderr else ""
        try:
            if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            time.sleep(0.1)
    raise AssertionError("voxgate serve did not become healthy")


def test_serve_alone_is_a_working_demo_with_the_built_in_echo_bot() -> None:
    """`voxgate serve` on embedded defaults: a Twilio stream is echoed by the built-in bot."""
    port = _free_port()
    command = [sys.executable, "-m", "voxgate", "serve", "--port", str(port)]
    process = subprocess.Popen(command, env=_clean_env(), stderr=subprocess.PIPE, text=True)
    try:
        _wait_healthy(port, process)
        health = httpx.get(f"http://127.0.0.1:{port}/healthz").json()
        assert health["status"] == "ok"

        async def call() -> bytes:
            url = f"ws://127.0.0.1:{port}/v1/streams/twilio"
            async with CarrierEmulator(url, "twilio") as carrier:
                audio = bytes(range(256)) * 10
                await carrier.send_audio(audio)
                heard = await carrier.wait_for_audio(len(audio), timeout=5)
                await carrier.hang_up()
                return heard[: len(audio)]

        assert asyncio.run(call()) == bytes(range(256)) * 10
        metrics = httpx.get(f"http://127.0.0.1:{port}/metrics").text
        assert 'voxgate_calls_started{carrier="twilio"} 1' in metrics
    finally:
        process.send_signal(signal.SIGINT)
        _, stderr = process.communicate(timeout=15)
    assert process.returncode == 0
    lines = [json.loads(line) for line in stderr.splitlines() if line.startswith("{")]
    call_lines = [line for line in lines if line["logger"] in ("voxgate.call", "voxgate.session")]
    assert call_lines
    assert all(line.get("call_id", "").startswith("vx-") for line in call_lines)


def test_serve_refuses_a_public_address_without_a_token() -> None:
    command = [sys.executable, "-m", "voxgate", "serve", "--host", "0.0.0.0", "--port", "1"]
    done = subprocess.run(
        command, env=_clean_env(), capture_output=True, text=True, timeout=30, check=False
    )
    assert done.returncode == 2
    assert "token" in done.stderr
    assert done.stdout == ""


def test_serve_reports_a_bad_configuration_clearly() -> None:
    command = [sys.executable, "-m", "voxgate", "serve"]
    env = _clean_env(VOXGATE_PORT="eighty")
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=30, check=False)
    assert done.returncode == 2
    assert "server.port" in done.stderr
    assert "VOXGATE_PORT" in done.stderr


def test_bot_echo_runs_as_its_own_server() -> None:
    port = _free_port()
    command = [sys.executable, "-m", "voxgate", "bot", "echo", "--port", str(port)]
    process = subprocess.Popen(command, env=_clean_env(), stderr=subprocess.PIPE, text=True)
    try:

        async def talk() -> dict[str, object]:
            for _ in range(100):
                try:
                    socket_ = await connect(
                        f"ws://127.0.0.1:{port}/", subprotocols=[Subprotocol("voxgate.v1")]
                    )
                    break
                except OSError:
                    await asyncio.sleep(0.1)
            async with socket_:
                start = {
                    "type": "start",
                    "protocol": "voxgate.v1",
                    "call_id": "vx-cli",
                    "stream_id": "vx-cli-1",
                    "media_format": {"encoding": "pcmu", "sample_rate": 8000, "channels": 1},
                    "audio_transport": "json",
                    "reconnected": False,
                }
                await socket_.send(json.dumps(start))
                await socket_.send(
                    json.dumps({"type": "media", "seq": 1, "timestamp_ms": 0, "audio": "AAEC"})
                )
                return dict(json.loads(await asyncio.wait_for(socket_.recv(), 5)))

        reply = asyncio.run(talk())
        assert reply == {"type": "response.audio.delta", "audio": "AAEC"}
    finally:
        process.send_signal(signal.SIGINT)
        process.communicate(timeout=15)


DOCKERFILE = Path(__file__).resolve().parents[1] / "Dockerfile"


def _healthcheck_command() -> list[str]:
    text = DOCKERFILE.read_text().replace("\\\n", " ")
    (line,) = [line for line in text.splitlines() if line.startswith("HEALTHCHECK")]
    return list(json.loads(line.split(" CMD ", 1)[1]))


def test_dockerfile_runs_as_non_root_and_serves_on_8080() -> None:
    text = DOCKERFILE.read_text()
    assert text.startswith("#") and "FROM python:3.11-slim" in text
    assert "\nUSER voxgate\n" in text
    assert "\nEXPOSE 8080\n" in text
    assert 'CMD ["voxgate", "serve"]' in text


def test_dockerfile_healthcheck_tells_healthy_from_down() -> None:
    port = _free_port()
    check = [sys.executable if part == "python" else part for part in _healthcheck_command()]
    check = [part.replace("8080", str(port)) for part in check]
    down = subprocess.run(check, capture_output=True, timeout=30, check=False)
    assert down.returncode != 0
    command = [sys.executable, "-m", "voxgate", "serve", "--port", str(port)]
    process = subprocess.Popen(command, env=_clean_env(), stderr=subprocess.PIPE, text=True)
    try:
        _wait_healthy(port, process)
        up = subprocess.run(check, capture_output=True, timeout=30, check=False)
        assert up.returncode == 0
    finally:
        process.send_signal(signal.SIGINT)
        process.communicate(timeout=15)


def test_stopping_voxgate_tells_each_bot_it_is_shutting_down() -> None:
    async def scenario() -> None:
        async with ScriptedBot() as bot:
            port = _free_port()
            command = [sys.executable, "-m", "voxgate", "serve", "--port", str(port)]
            env = _clean_env(VOXGATE_BOT_URL=bot.url)
            process = subprocess.Popen(command, env=env, stderr=subprocess.DEVNULL)
            try:
                await asyncio.to_thread(_wait_healthy, port, process)
                carrier = CarrierEmulator(f"ws://127.0.0.1:{port}/v1/streams/twilio", "twilio")
                await carrier.connect()
                connection = await bot.connection()
                await connection.wait_for_type("start")
                process.send_signal(signal.SIGINT)
                async with asyncio.timeout(5):
                    await connection.closed.wait()
                assert connection.of_type("stop") == [{"type": "stop", "reason": "shutdown"}]
                assert connection.close_code == 1001
                await carrier.close()
            finally:
                process.send_signal(signal.SIGINT)
                await asyncio.to_thread(process.wait, 15)
        assert process.returncode == 0

    asyncio.run(scenario())


def test_a_stop_signal_drains_the_calls_under_way_first() -> None:
    async def scenario() -> None:
        port = _free_port()
        command = [sys.executable, "-m", "voxgate", "serve", "--port", str(port)]
        env = _clean_env(VOXGATE_DRAIN_SECONDS="20")
        process = subprocess.Popen(command, env=env, stderr=subprocess.DEVNULL)
        try:
            await asyncio.to_thread(_wait_healthy, port, process)
            url = f"ws://127.0.0.1:{port}/v1/streams/twilio"
            carrier = CarrierEmulator(url, "twilio")
            await carrier.connect()
            await carrier.send_audio(bytes(320))
            await carrier.wait_for_audio(320, timeout=5)  # the call is up
            process.send_signal(signal.SIGTERM)
            async with httpx.AsyncClient() as client:
                async with asyncio.timeout(5):
                    while (await client.get(f"http://127.0.0.1:{port}/healthz")).status_code != 503:
                        await asyncio.sleep(0.05)
            with pytest.raises(Exception, match="403"):
                await CarrierEmulator(url, "twilio").connect()  # no new calls
            audio = bytes(range(256)) * 4
            await carrier.send_audio(audio)  # the call under way goes on
            heard = await carrier.wait_for_audio(320 + len(audio), timeout=5)
            assert heard[320 : 320 + len(audio)] == audio
            assert process.poll() is None
            hung_up = time.monotonic()
            await carrier.hang_up()  # the last call ends: voxgate stops
            await asyncio.to_thread(process.wait, 10)
            assert time.monotonic() - hung_up < 3
        finally:
            if process.poll() is None:
                process.kill()
        # uvicorn re-raises the signal it handled once it has shut down cleanly
        assert process.returncode in (0, -signal.SIGTERM)

    asyncio.run(scenario())
