from __future__ import annotations

import asyncio
import json
import logging
import os
import re
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
from voxgate import cli
from voxgate.bots import echo as echo_bot
from voxgate.bots.sdk import runner as bot_runner
from voxgate.cli import main
from voxgate.config import load_config


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
    assert "AI voice bots" in " ".join(done.stdout.split())  # however argparse wraps it


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


BOT_START = {  # what voxgate sends a bot first
    "type": "start",
    "protocol": "voxgate.v1",
    "call_id": "vx-00000000000000000001",
    "stream_id": "vx-00000000000000000001-1",
    "direction": "inbound",
    "carrier": {"name": "twilio", "call_id": "CA1"},
    "custom_parameters": {},
    "media_format": {"encoding": "pcmu", "sample_rate": 8000, "channels": 1},
    "audio_transport": "json",
    "reconnected": False,
}


async def _first_reply(port: int) -> dict[str, object]:
    """Play voxgate to the bot process on ``port``: start, one media; the bot's first answer."""
    for _ in range(150):  # the process is starting
        try:
            bot = await connect(f"ws://127.0.0.1:{port}/", subprotocols=[Subprotocol("voxgate.v1")])
            break
        except OSError:
            await asyncio.sleep(0.1)
    async with bot:
        await bot.send(json.dumps(BOT_START))
        await bot.send(json.dumps({"type": "media", "seq": 1, "timestamp_ms": 0, "audio": "AAEC"}))
        return dict(json.loads(await asyncio.wait_for(bot.recv(), 10)))


@pytest.mark.parametrize("stop", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_bot_echo_runs_as_its_own_server(stop: signal.Signals) -> None:
    port = _free_port()
    command = [sys.executable, "-m", "voxgate", "bot", "echo", "--port", str(port)]
    process = subprocess.Popen(command, env=_clean_env(), stderr=subprocess.PIPE, text=True)
    try:
        reply = asyncio.run(_first_reply(port))
        assert reply == {"type": "response.audio.delta", "audio": "AAEC"}
    finally:
        process.send_signal(stop)
        process.communicate(timeout=15)
    assert process.returncode == 0  # stopped by the signal, quietly


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


# --- voxgate bot echo: every option also an environment variable ---------------------


def test_help_describes_what_exists_both_ingresses_and_dial() -> None:
    done = _run("--help")
    assert "SIP" in done.stdout
    assert "WebSocket" in done.stdout
    assert "dial" in done.stdout


def test_serve_help_names_the_variables_behind_its_options(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["serve", "--help"])
    assert exited.value.code == 0
    shown = " ".join(capsys.readouterr().out.split())
    for variable in ("VOXGATE_CONFIG", "VOXGATE_HOST", "VOXGATE_PORT", "VOXGATE_WORKERS"):
        assert f"(env: {variable})" in shown


def _echo_help(capsys: pytest.CaptureFixture[str]) -> str:
    with pytest.raises(SystemExit) as exited:
        main(["bot", "echo", "--help"])
    assert exited.value.code == 0
    return " ".join(capsys.readouterr().out.split())


ECHO_OPTIONS = ["host", "port", "binary", "token", "delay", "dtmf_tones", "transfer_target"]


def test_bot_echo_help_gives_every_option_a_text_and_its_variable(
    capsys: pytest.CaptureFixture[str],
) -> None:
    shown = _echo_help(capsys)
    flags = set(re.findall(r"\[(--[a-z-]+)", shown.split(" options: ")[0])) - {"--help"}
    assert flags == {"--" + name.replace("_", "-") for name in ECHO_OPTIONS}
    for name in ECHO_OPTIONS:
        assert f"(env: ECHO_BOT_{name.upper()}; default: " in shown, name


def test_bot_help_lists_the_sample_bots_with_what_their_modules_say(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["bot", "--help"])
    assert exited.value.code == 0
    shown = capsys.readouterr().out
    for name, summary in bot_runner.BUNDLED_SUMMARIES.items():
        assert f"  {name:<14}{summary}" in shown
    assert set(bot_runner.BUNDLED_SUMMARIES) == set(bot_runner.BUNDLED)


@pytest.fixture
def echo_runs(monkeypatch: pytest.MonkeyPatch) -> list[dict[str, object]]:
    """Each bot that ``main`` would have started, as its settings (nothing listens)."""
    runs: list[dict[str, object]] = []

    async def run_bot(handler: object, host: str, port: int, **settings: Any) -> None:
        options = vars(settings.pop("options"))
        runs.append({"handler": handler, "host": host, "port": port, **settings, **options})

    for name in ECHO_OPTIONS:
        monkeypatch.delenv(f"ECHO_BOT_{name.upper()}", raising=False)
    monkeypatch.setattr(cli, "run_bot", run_bot)
    monkeypatch.setattr(cli, "setup_logging", lambda level, format_: None)
    return runs


ECHO_ENV = {
    "ECHO_BOT_HOST": "127.0.0.2",
    "ECHO_BOT_PORT": "9123",
    "ECHO_BOT_BINARY": "yes",
    "ECHO_BOT_DELAY": "0.5",
    "ECHO_BOT_DTMF_TONES": "1",
    "ECHO_BOT_TRANSFER_TARGET": "+15550100999",
}


def _settings(run: dict[str, object]) -> dict[str, object]:
    return {name: run[name] for name in ECHO_OPTIONS}


def test_bot_echo_defaults(echo_runs: list[dict[str, object]]) -> None:
    assert main(["bot", "echo"]) == 0
    (run,) = echo_runs
    assert run["handler"] is echo_bot.handle
    assert run["logger"] is logging.getLogger("voxgate.bots.echo")
    assert _settings(run) == {
        "host": "127.0.0.1",
        "port": 9000,
        "binary": False,
        "token": None,
        "delay": 0.0,
        "dtmf_tones": False,
        "transfer_target": "+15550100000",
    }


def test_bot_echo_takes_every_option_from_the_environment(
    echo_runs: list[dict[str, object]], monkeypatch: pytest.MonkeyPatch
) -> None:
    for variable, value in ECHO_ENV.items():
        monkeypatch.setenv(variable, value)
    assert main(["bot", "echo"]) == 0
    (run,) = echo_runs
    assert _settings(run) == {
        "host": "127.0.0.2",
        "port": 9123,
        "binary": True,
        "token": None,
        "delay": 0.5,
        "dtmf_tones": True,
        "transfer_target": "+15550100999",
    }


def test_bot_echo_options_beat_the_environment(
    echo_runs: list[dict[str, object]], monkeypatch: pytest.MonkeyPatch
) -> None:
    for variable, value in ECHO_ENV.items():
        monkeypatch.setenv(variable, value)
    argv = ["--host", "::1", "--port", "0", "--no-binary", "--transfer-target", "sip:a@b"]
    argv += ["--delay", "0", "--no-dtmf-tones", "--token", "t0ken"]
    assert main(["bot", "echo", *argv]) == 0
    (run,) = echo_runs
    assert _settings(run) == {
        "host": "::1",
        "port": 0,
        "binary": False,
        "token": "t0ken",
        "delay": 0.0,
        "dtmf_tones": False,
        "transfer_target": "sip:a@b",
    }


BAD_ECHO_ENV = [
    ("ECHO_BOT_PORT", "nine", "must be a port number from 0 to 65535, got 'nine'"),
    ("ECHO_BOT_PORT", "65536", "must be a port number from 0 to 65535, got '65536'"),
    ("ECHO_BOT_BINARY", "maybe", "must be true/false/1/0/yes/no, got 'maybe'"),
    ("ECHO_BOT_HOST", " ", "must not be empty"),
    ("ECHO_BOT_DELAY", "60", "must be 0 to 10 seconds, got '60'"),
    ("ECHO_BOT_TRANSFER_TARGET", "", "must be a +E.164 number or a sip:/sips: URI, got ''"),
]


@pytest.mark.parametrize("case", BAD_ECHO_ENV, ids=lambda case: f"{case[0]}={case[1]!r}")
def test_bot_echo_refuses_a_bad_variable_with_status_2(
    echo_runs: list[dict[str, object]],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    case: tuple[str, str, str],
) -> None:
    variable, value, message = case
    monkeypatch.setenv(variable, value)
    assert main(["bot", "echo"]) == 2
    assert capsys.readouterr().err == f"voxgate bot echo: error: {variable}: {message}\n"
    assert echo_runs == []


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--port", "-1"], "argument --port: must be a port number from 0 to 65535, got '-1'"),
        (["--host", ""], "argument --host: must not be empty"),
        (["--transfer-target", "12"], "must be a +E.164 number or a sip:/sips: URI, got '12'"),
    ],
)
def test_bot_echo_refuses_a_bad_option_with_status_2(
    echo_runs: list[dict[str, object]],
    capsys: pytest.CaptureFixture[str],
    argv: list[str],
    message: str,
) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["bot", "echo", *argv])
    assert exited.value.code == 2
    assert capsys.readouterr().err.endswith(f"{message}\n")
    assert echo_runs == []


def test_an_unknown_bot_or_a_module_without_handle_is_status_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["bot", "nosuchbot"]) == 2
    assert "unknown bot 'nosuchbot' (bundled: echo, receptionist, relay" in capsys.readouterr().err
    empty = tmp_path / "empty.py"
    empty.write_text("X = 1\n")
    assert main(["bot", str(empty)]) == 2
    assert "has no handle(call) function" in capsys.readouterr().err


def test_a_bot_module_of_ones_own_runs_with_its_own_options(
    tmp_path: Path, echo_runs: list[dict[str, object]], monkeypatch: pytest.MonkeyPatch
) -> None:
    mine = tmp_path / "my_bot.py"
    mine.write_text(
        "import argparse\n"
        "def add_arguments(parser: argparse.ArgumentParser) -> None:\n"
        "    parser.add_argument('--greeting', default='hi')\n"
        "async def handle(call: object) -> None:\n"
        "    pass\n"
    )
    monkeypatch.setenv("MY_BOT_BOT_GREETING", "hello")
    assert main(["bot", str(mine), "--port", "0"]) == 0
    (run,) = echo_runs
    assert run["greeting"] == "hello"
    assert run["port"] == 0
    assert run["logger"] is logging.getLogger("bot.my_bot")


def test_bot_echo_on_a_taken_port_is_one_clear_line() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        command = [sys.executable, "-m", "voxgate", "bot", "echo", "--port", str(port)]
        done = subprocess.run(
            command, env=_clean_env(), capture_output=True, text=True, timeout=30, check=False
        )
    assert done.returncode == 1
    assert done.stderr.startswith(f"voxgate bot echo: error: cannot listen on 127.0.0.1:{port}")
    assert "Traceback" not in done.stderr


def test_the_echo_bot_variables_do_not_trouble_serve() -> None:
    """``voxgate serve`` refuses unknown VOXGATE_* variables; the echo bot's are not theirs."""
    load_config(None, ECHO_ENV)


def test_a_bot_s_help_never_prints_a_secret_default(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    mine = tmp_path / "keyed.py"
    mine.write_text(
        "import argparse\n"
        "def add_arguments(parser: argparse.ArgumentParser) -> None:\n"
        "    parser.add_argument('--api-key', default='sk-very-secret')\n"
        "async def handle(call: object) -> None:\n"
        "    pass\n"
    )
    with pytest.raises(SystemExit):
        main(["bot", str(mine), "--help"])
    shown = " ".join(capsys.readouterr().out.split())
    assert "sk-very-secret" not in shown
    assert "(env: KEYED_BOT_API_KEY; default: set)" in shown


# What each sample bot sends first, once voxgate's start arrived (the relay, with no key,
# says why in its log and hangs up).
FIRST_REPLY = {"echo": "response.audio.delta", "receptionist": "response.audio.delta"}
FIRST_REPLY["relay"] = "session.hangup"


@pytest.mark.parametrize("name", list(bot_runner.BUNDLED))
def test_every_sample_bot_runs_as_its_own_server(name: str, tmp_path: Path) -> None:
    port = _free_port()
    command = [sys.executable, "-m", "voxgate", "bot", name, "--port", str(port)]
    env = {k: v for k, v in _clean_env().items() if not k.endswith("_API_KEY")}
    process = subprocess.Popen(command, env=env, cwd=tmp_path, stderr=subprocess.PIPE, text=True)

    try:
        assert asyncio.run(_first_reply(port))["type"] == FIRST_REPLY[name]
    finally:
        process.send_signal(signal.SIGTERM)
        _, errors = process.communicate(timeout=15)
    assert process.returncode == 0, errors
    assert "Traceback" not in errors
