"""Which bot takes a call, and how: custom parameters, then routes, then [bot], then echo."""

from __future__ import annotations

from pathlib import Path

import pytest

from voxgate.bridge.aio.app import Bridge
from voxgate.bridge.events import StreamStarted
from voxgate.codecs.formats import PCMU_8K, AudioFormat, Encoding
from voxgate.config import load_config
from voxgate.errors import ConfigError, UnsupportedFormatError

ROUTES = """
[bot]
url = "wss://default.example/bot"
audio = "pcm16/16000"
opening_text = "Hello!"

[routes."+15550002222"]
url = "wss://sales.example/bot"
system_prompt = "You sell."
"""


def _bridge(tmp_path: Path) -> Bridge:
    path = tmp_path / "voxgate.toml"
    path.write_text(ROUTES)
    bridge = Bridge(load_config(path, {}))
    bridge.echo_url = "ws://127.0.0.1:1/echo"
    return bridge


def _started(to: str = "+15559999999", **params: str) -> StreamStarted:
    return StreamStarted("MZ1", "CA1", to_number=to, custom_parameters=params)


def test_default_bot_from_configuration(tmp_path: Path) -> None:
    bot = _bridge(tmp_path).bot_target(_started())
    assert bot.url == "wss://default.example/bot"
    assert bot.audio == AudioFormat(Encoding.PCM16, 16000)
    assert bot.dialect == "voxgate.v1"
    assert bot.opening_text == "Hello!"


def test_route_for_the_called_number_inherits_the_rest(tmp_path: Path) -> None:
    bot = _bridge(tmp_path).bot_target(_started(to="+15550002222"))
    assert bot.url == "wss://sales.example/bot"
    assert bot.system_prompt == "You sell."
    assert bot.opening_text == "Hello!"
    assert bot.audio == AudioFormat(Encoding.PCM16, 16000)


def test_custom_parameters_win(tmp_path: Path) -> None:
    bot = _bridge(tmp_path).bot_target(
        _started(
            to="+15550002222",
            wss_url="ws://mine.example/ws",
            wss_header="Authorization: Bearer t\nX-Tenant: 7",
            bot_dialect="V1",
            bot_audio="pcm16/24000",
        )
    )
    assert bot.url == "ws://mine.example/ws"
    assert bot.headers == (("Authorization", "Bearer t"), ("X-Tenant", "7"))
    assert bot.dialect == "voxgate.v1"
    assert bot.audio == AudioFormat(Encoding.PCM16, 24000)


def test_a_twilio_dialect_bot_gets_pcmu_whatever_was_asked(tmp_path: Path) -> None:
    bot = _bridge(tmp_path).bot_target(_started(bot_dialect="Twilio", bot_audio="pcm16/24000"))
    assert bot.dialect == "twilio"
    assert bot.audio == PCMU_8K


def test_nothing_configured_means_the_built_in_echo_bot() -> None:
    bridge = Bridge(load_config(None, {}))
    bridge.echo_url = "ws://127.0.0.1:1/echo"
    assert bridge.bot_target(_started()).url == "ws://127.0.0.1:1/echo"


@pytest.mark.parametrize("dialect", ["twilio", "telnyx"])
def test_the_built_in_echo_speaks_voxgate_v1_whatever_dialect_was_asked(dialect: str) -> None:
    bridge = Bridge(load_config(None, {}))
    bridge.echo_url = "ws://127.0.0.1:1/echo"
    bot = bridge.bot_target(_started(bot_dialect=dialect, bot_audio="pcm16/16000"))
    assert (bot.url, bot.dialect) == ("ws://127.0.0.1:1/echo", "voxgate.v1")
    assert bot.audio == AudioFormat(Encoding.PCM16, 16000)


@pytest.mark.parametrize(
    ("params", "error", "words"),
    [
        ({"wss_url": "http://bot.example"}, ConfigError, "ws:// or wss://"),
        ({"bot_dialect": "klingon"}, ConfigError, "unknown bot dialect 'klingon'"),
        ({"bot_audio": "opus/48000"}, UnsupportedFormatError, "unknown audio encoding"),
        (
            {"wss_header": "no colon here"},
            ConfigError,
            "wss_header is not valid 'Name: value' lines",
        ),
        (
            {"bot_dialect": "telnyx", "bot_audio": "pcm16/16000"},
            ConfigError,
            "a telnyx-dialect bot takes l16, pcma, pcmu audio, not pcm16/16000",
        ),
    ],
)
def test_bad_call_parameters_are_refused_with_a_reason(
    tmp_path: Path, params: dict[str, str], error: type[Exception], words: str
) -> None:
    with pytest.raises(error, match=words):
        _bridge(tmp_path).bot_target(_started(**params))
