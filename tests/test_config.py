"""voxgate.config: TOML + VOXGATE_* loading, validation, routes, and docs/CONFIG.md kept honest."""

from __future__ import annotations

import dataclasses
import json
import os
import re
import tomllib
from pathlib import Path
from typing import Any

import pytest

from voxgate.codecs.formats import PCMU_8K, AudioFormat, Encoding
from voxgate.config import (
    ENV_VARS,
    BotConfig,
    Config,
    ServerConfig,
    TelnyxConfig,
    TwilioConfig,
    load_config,
    parse_header_lines,
)
from voxgate.errors import ConfigError

DOC = (Path(__file__).resolve().parents[1] / "docs" / "CONFIG.md").read_text()
SECTIONS = ["server", "bot", "call", "twilio", "telnyx", "plivo", "log"]


def load(tmp_path: Path, toml: str | None = None, **env: str) -> Config:
    """The config from ``toml`` written to a file (if given) and ``env`` only."""
    if toml is None:
        return load_config(env=env)
    path = tmp_path / "voxgate.toml"
    path.write_text(toml)
    return load_config(path, env=env)


def value_at(config: Config, dotted: str) -> Any:
    section, key = dotted.split(".")
    return getattr(getattr(config, section), key)


# --- defaults --------------------------------------------------------------------------


def test_without_file_or_environment_everything_is_default() -> None:
    config = load_config(env={})
    assert config == Config()
    assert config.server == ServerConfig(host="127.0.0.1", port=8080, max_calls=500)
    assert config.bot.url == ""
    assert config.bot.audio == PCMU_8K
    assert config.bot.dialect == "voxgate.v1"
    assert config.call.hangup_after_playout is True
    assert dict(config.routes) == {}


def test_variables_not_starting_with_voxgate_are_ignored() -> None:
    assert load_config(env={"PORT": "1", "HOME": "/root", "VOXGATE": "x"}) == Config()


def test_the_environment_defaults_to_os_environ(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VOXGATE_PORT", "9123")
    assert load_config().server.port == 9123


def test_config_is_frozen() -> None:
    config = load_config(env={})
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.server.port = 1  # type: ignore[misc]
    with pytest.raises(TypeError):
        config.routes["+1"] = config.bot  # type: ignore[index]


# --- the environment ---------------------------------------------------------------------

BASE_ENV = {"VOXGATE_BOT_URL": "wss://base.example.com"}  # a dialect other than v1 needs a url
ENV_VECTORS = [  # (variable, text, section.key, value)
    ("VOXGATE_HOST", "0.0.0.0", "server.host", "0.0.0.0"),
    ("VOXGATE_PORT", " 9000 ", "server.port", 9000),
    ("VOXGATE_TOKEN", "s3cret", "server.token", "s3cret"),
    (
        "VOXGATE_PUBLIC_URL",
        "https://vg.example.com/",
        "server.public_url",
        "https://vg.example.com",
    ),
    ("VOXGATE_MAX_CALLS", "12", "server.max_calls", 12),
    ("VOXGATE_DRAIN_SECONDS", "30", "server.drain_seconds", 30.0),
    ("VOXGATE_BOT_URL", "wss://bot.example.com/v", "bot.url", "wss://bot.example.com/v"),
    ("VOXGATE_BOT_HEADER", "A: 1\nB: two", "bot.header", (("A", "1"), ("B", "two"))),
    ("VOXGATE_BOT_DIALECT", "Telnyx", "bot.dialect", "telnyx"),
    ("VOXGATE_BOT_AUDIO", "pcm16/24000", "bot.audio", AudioFormat(Encoding.PCM16, 24000)),
    ("VOXGATE_BOT_OPENING_TEXT", "Hi!", "bot.opening_text", "Hi!"),
    ("VOXGATE_BOT_SYSTEM_PROMPT", "Be brief.", "bot.system_prompt", "Be brief."),
    ("VOXGATE_BOT_CONNECT_TIMEOUT", "2.5", "bot.connect_timeout", 2.5),
    ("VOXGATE_BOT_RECONNECT_FOR", "0", "bot.reconnect_for", 0.0),
    ("VOXGATE_BOT_FALLBACK", "Apology", "bot.fallback", "apology"),
    ("VOXGATE_HANGUP_AFTER_PLAYOUT", "no", "call.hangup_after_playout", False),
    ("VOXGATE_MAX_HANGUP_WAIT", "3", "call.max_hangup_wait", 3.0),
    ("VOXGATE_TWILIO_ACCOUNT_SID", "AC123", "twilio.account_sid", "AC123"),
    ("VOXGATE_TWILIO_AUTH_TOKEN", "tok", "twilio.auth_token", "tok"),
    (
        "VOXGATE_TWILIO_API_BASE",
        "http://127.0.0.1:9999",
        "twilio.api_base",
        "http://127.0.0.1:9999",
    ),
    ("VOXGATE_TELNYX_API_KEY", "KEY1", "telnyx.api_key", "KEY1"),
    (
        "VOXGATE_TELNYX_API_BASE",
        "http://127.0.0.1:9998/",
        "telnyx.api_base",
        "http://127.0.0.1:9998",
    ),
    ("VOXGATE_METRICS_TOKEN", "m3tr1cs", "server.metrics_token", "m3tr1cs"),
    ("VOXGATE_HANDSHAKE_TIMEOUT", "2.5", "server.handshake_timeout", 2.5),
    ("VOXGATE_START_TIMEOUT", "1", "server.start_timeout", 1.0),
    ("VOXGATE_MAX_PENDING", "7", "server.max_pending", 7),
    ("VOXGATE_MAX_INBOUND_RATE", "1.5", "server.max_inbound_rate", 1.5),
    ("VOXGATE_WORKERS", "4", "server.workers", 4),
    ("VOXGATE_NODE_NAME", "node-a", "server.node_name", "node-a"),
    (
        "VOXGATE_BOT_ALLOW",
        "bots.example.com, *.example.net\nwss://x.example.org/v/",
        "bot.allow",
        ("bots.example.com", "*.example.net", "wss://x.example.org/v/"),
    ),
    ("VOXGATE_BOT_PRIVATE_TARGETS", "Deny", "bot.private_targets", "deny"),
    ("VOXGATE_MAX_QUEUED_AUDIO", "60", "call.max_queued_audio", 60.0),
    ("VOXGATE_MAX_MARKS", "10", "call.max_marks", 10),
    ("VOXGATE_MAX_MARK_NAME", "32", "call.max_mark_name", 32),
    ("VOXGATE_MAX_TRANSCRIPT_BYTES", "0", "call.max_transcript_bytes", 0),
    ("VOXGATE_PLIVO_AUTH_ID", "MA123", "plivo.auth_id", "MA123"),
    ("VOXGATE_PLIVO_AUTH_TOKEN", "ptok", "plivo.auth_token", "ptok"),
    ("VOXGATE_PLIVO_API_BASE", "http://127.0.0.1:9997", "plivo.api_base", "http://127.0.0.1:9997"),
    ("VOXGATE_BOT_CONNECT_WS_AFTER_ANSWER", "1", "bot.connect_ws_after_answer", 1),
    ("VOXGATE_SIP_ENABLED", "false", "sip.enabled", False),
    ("VOXGATE_SIP_HOST", "0.0.0.0", "sip.host", "0.0.0.0"),
    ("VOXGATE_SIP_PORT", "5080", "sip.port", 5080),
    ("VOXGATE_SIP_EXTERNAL_ADDRESS", "203.0.113.7", "sip.external_address", "203.0.113.7"),
    ("VOXGATE_SIP_RTP_PORT_MIN", "21000", "sip.rtp_port_min", 21000),
    ("VOXGATE_SIP_RTP_PORT_MAX", "40000", "sip.rtp_port_max", 40000),
    ("VOXGATE_SIP_RTP_TIMEOUT", "10", "sip.rtp_timeout", 10.0),
    ("VOXGATE_SIP_CODECS", "pcma, pcmu", "sip.codecs", ("PCMA", "PCMU")),
    ("VOXGATE_SIP_INBAND_DTMF", "yes", "sip.inband_dtmf", True),
    (
        "VOXGATE_SIP_ALLOW",
        "192.0.2.0/24, 198.51.100.9",
        "sip.allow",
        ("192.0.2.0/24", "198.51.100.9"),
    ),
    ("VOXGATE_SIP_REALM", "pbx", "sip.realm", "pbx"),
    ("VOXGATE_SIP_USERNAME", "trunk", "sip.username", "trunk"),
    ("VOXGATE_SIP_PASSWORD", "pw", "sip.password", "pw"),
    ("VOXGATE_SIP_TRUNK", "sip:trunk.example.com:5060", "sip.trunk", "sip:trunk.example.com:5060"),
    ("VOXGATE_SIP_TRUNK_USERNAME", "u1", "sip.trunk_username", "u1"),
    ("VOXGATE_SIP_TRUNK_PASSWORD", "p1", "sip.trunk_password", "p1"),
    ("VOXGATE_SIP_FROM_NUMBER", "+15550001111", "sip.from_number", "+15550001111"),
    ("VOXGATE_SIP_REGISTER", "true", "sip.register", True),
    ("VOXGATE_STORE_URL", "postgresql://vg@db/voxgate", "store.url", "postgresql://vg@db/voxgate"),
    ("VOXGATE_API_RATE_LIMIT", "20", "api.rate_limit", 20.0),
    ("VOXGATE_API_MAX_BODY", "65536", "api.max_body", 65536),
    ("VOXGATE_API_MAX_PLAY_BYTES", "2048", "api.max_play_bytes", 2048),
    ("VOXGATE_WEBHOOKS_SECRET", "whsec_x", "webhooks.secret", "whsec_x"),
    ("VOXGATE_WEBHOOKS_PRIVATE_TARGETS", "deny", "webhooks.private_targets", "deny"),
    ("VOXGATE_WEBHOOKS_TIMEOUT", "3", "webhooks.timeout", 3.0),
    ("VOXGATE_LOG_LEVEL", "DEBUG", "log.level", "debug"),
    ("VOXGATE_LOG_FORMAT", "text", "log.format", "text"),
]


def test_every_key_has_an_environment_vector() -> None:
    assert {key for _, _, key, _ in ENV_VECTORS} == set(ENV_VARS)
    assert {name for name, _, key, _ in ENV_VECTORS} == set(ENV_VARS.values())


@pytest.mark.parametrize(("name", "text", "key", "expected"), ENV_VECTORS)
def test_environment_variable_sets_its_key(name: str, text: str, key: str, expected: Any) -> None:
    assert ENV_VARS[key] == name
    config = load_config(env={**BASE_ENV, name: text})
    assert value_at(config, key) == expected
    assert value_at(config, key) != value_at(Config(), key)  # the vector really changes it


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        *[("true", True), ("TRUE", True), ("1", True), ("yes", True), (" Yes ", True)],
        *[("false", False), ("False", False), ("0", False), ("no", False), ("NO", False)],
    ],
)
def test_booleans_from_the_environment(text: str, expected: bool) -> None:
    config = load_config(env={"VOXGATE_HANGUP_AFTER_PLAYOUT": text})
    assert config.call.hangup_after_playout is expected


def test_environment_overrides_the_file(tmp_path: Path) -> None:
    toml = '[server]\nport = 8443\nhost = "0.0.0.0"\n[log]\nlevel = "error"\n'
    config = load(tmp_path, toml, VOXGATE_PORT="9000")
    assert config.server.port == 9000  # from the environment
    assert config.server.host == "0.0.0.0"  # from the file
    assert config.log.level == "error"


def test_voxgate_config_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "named.toml"
    path.write_text("[server]\nport = 7001\n")
    assert load_config(env={"VOXGATE_CONFIG": str(path)}).server.port == 7001


def test_an_explicit_path_wins_over_voxgate_config(tmp_path: Path) -> None:
    (tmp_path / "a.toml").write_text("[server]\nport = 7001\n")
    (tmp_path / "b.toml").write_text("[server]\nport = 7002\n")
    env = {"VOXGATE_CONFIG": str(tmp_path / "a.toml")}
    assert load_config(tmp_path / "b.toml", env=env).server.port == 7002
    assert load_config(str(tmp_path / "b.toml"), env=env).server.port == 7002


def test_header_may_be_an_array_of_lines_in_toml(tmp_path: Path) -> None:
    config = load(tmp_path, '[bot]\nheader = ["X-A: 1", "X-B: 2"]\n')
    assert config.bot.header == (("X-A", "1"), ("X-B", "2"))


def test_seconds_may_be_integers_in_toml(tmp_path: Path) -> None:
    config = load(tmp_path, "[bot]\nreconnect_for = 3\n")
    assert config.bot.reconnect_for == 3.0
    assert isinstance(config.bot.reconnect_for, float)


# --- routes ------------------------------------------------------------------------------

ROUTES_TOML = """
[bot]
url = "wss://bots.example.com/general"
audio = "pcma"
opening_text = "Hello."

[routes."+15551234567"]
url = "wss://bots.example.com/sales"

[routes."tel:+15557654321"]
dialect = "telnyx"
opening_text = "Support."
"""


def test_routes_inherit_unset_keys_from_bot(tmp_path: Path) -> None:
    config = load(tmp_path, ROUTES_TOML)
    sales = config.bot_for("+15551234567")
    assert sales.url == "wss://bots.example.com/sales"
    assert sales.audio == AudioFormat(Encoding.PCMA, 8000)  # inherited
    assert sales.opening_text == "Hello."  # inherited
    assert sales == dataclasses.replace(config.bot, url="wss://bots.example.com/sales")
    support = config.bot_for("+15557654321")  # the tel: prefix is dropped
    assert support.url == "wss://bots.example.com/general"
    assert (support.dialect, support.opening_text) == ("telnyx", "Support.")


def test_routes_inherit_environment_overrides_of_bot(tmp_path: Path) -> None:
    config = load(
        tmp_path,
        ROUTES_TOML,
        VOXGATE_BOT_URL="ws://127.0.0.1:9000",
        VOXGATE_BOT_CONNECT_TIMEOUT="1",
    )
    assert config.bot.url == "ws://127.0.0.1:9000"
    assert config.bot_for("+15557654321").url == "ws://127.0.0.1:9000"  # no url of its own
    assert config.bot_for("+15551234567").url == "wss://bots.example.com/sales"  # its own
    assert config.bot_for("+15551234567").connect_timeout == 1.0


@pytest.mark.parametrize("number", [None, "+15550000000", "", "15551234567"])
def test_calls_without_a_route_get_the_default_bot(tmp_path: Path, number: str | None) -> None:
    config = load(tmp_path, ROUTES_TOML)
    assert config.bot_for(number) is config.bot


@pytest.mark.parametrize("number", ["+15551234567", " +15551234567 ", "tel:+15551234567"])
def test_route_lookup_normalises_the_number(tmp_path: Path, number: str) -> None:
    config = load(tmp_path, ROUTES_TOML)
    assert config.bot_for(number).url == "wss://bots.example.com/sales"


# --- validation --------------------------------------------------------------------------

BAD_FILES = [  # (TOML, what the error must say)
    ("[sever]\nport = 1\n", "sever: unknown section"),
    ("[sever]\nport = 1\n", "did you mean 'server'?"),
    ("server = 5\n", "server: must be a table"),
    ("[server]\nprot = 1\n", "server.prot: unknown key"),
    ("[server]\nprot = 1\n", "did you mean 'port'?"),
    ("[bot]\nulr = 'ws://x'\n", "bot.ulr: unknown key"),
    ('[server]\nport = "8080"\n', "server.port: must be an integer, got str"),
    ("[server]\nport = 8080.0\n", "server.port: must be an integer, got float"),
    ("[server]\nport = true\n", "server.port: must be an integer, got bool"),
    ("[server]\nport = 0\n", "server.port: must be an integer from 1 to 65535, got 0"),
    ("[server]\nport = 65536\n", "server.port: must be an integer from 1 to 65535, got 65536"),
    ("[server]\nmax_calls = 0\n", "server.max_calls: must be an integer of at least 1"),
    ("[server]\nhost = ''\n", "server.host: must be a host name or address"),
    ("[server]\nhost = 'a b'\n", "server.host: must be a host name or address"),
    ("[server]\ntoken = 5\n", "server.token: must be a string, got int"),
    ("[server]\npublic_url = 'ftp://x.example'\n", "server.public_url: must be a URL starting"),
    (
        "[bot]\nurl = 'http://bot.example.com'\n",
        "bot.url: must be a URL starting with ws:// or wss://",
    ),
    ("[bot]\nurl = 'wss://'\n", "bot.url: must be a URL starting with ws:// or wss://"),
    ("[bot]\nurl = 'bot.example.com'\n", "bot.url: must be a URL starting with ws:// or wss://"),
    (
        "[bot]\ndialect = 'sip'\n",
        "bot.dialect: must be one of voxgate.v1, twilio, telnyx, got 'sip'",
    ),
    ("[bot]\naudio = 'mp3'\n", "bot.audio: bad audio format 'mp3': unknown audio encoding"),
    (
        "[bot]\naudio = 'pcmu/11025'\n",
        "bot.audio: bad audio format 'pcmu/11025': sample rate 11025",
    ),
    ("[bot]\nheader = 'no colon here'\n", "bot.header: header line 1 is not 'Name: value'"),
    ("[bot]\nheader = ['A: 1', ': x']\n", "bot.header: header line 2 has an empty name"),
    ("[bot]\nheader = ['A: 1', 5]\n", "bot.header: must be a string, got list"),
    (
        '[bot]\nheader = "X: a\\rInjected: b"\n',
        "bot.header: header line 1: the value of X holds a control",
    ),
    ("[bot]\nconnect_timeout = 0\n", "bot.connect_timeout: must be more than 0 seconds"),
    ("[bot]\nconnect_timeout = 'fast'\n", "bot.connect_timeout: must be a number, got str"),
    ("[bot]\nreconnect_for = -1\n", "bot.reconnect_for: must be 0 or more seconds"),
    ("[bot]\nreconnect_for = inf\n", "bot.reconnect_for: must be a finite number"),
    ("[bot]\nreconnect_for = nan\n", "bot.reconnect_for: must be a finite number"),
    ("[bot]\nfallback = 'music'\n", "bot.fallback: must be one of hangup, apology, got 'music'"),
    (
        "[bot]\ndialect = 'twilio'\n",
        "bot.dialect: the built-in echo bot (empty url) speaks voxgate.v1",
    ),
    (
        "[call]\nhangup_after_playout = 'yes'\n",
        "call.hangup_after_playout: must be true or false, got str",
    ),
    ("[call]\nmax_hangup_wait = -0.5\n", "call.max_hangup_wait: must be 0 or more seconds"),
    (
        "[twilio]\napi_base = 'wss://api.twilio.com'\n",
        "twilio.api_base: must be a URL starting with https://",
    ),
    (
        "[telnyx]\napi_base = 'api.telnyx.com'\n",
        "telnyx.api_base: must be a URL starting with https://",
    ),
    ("[log]\nlevel = 'loud'\n", "log.level: must be one of debug, info, warning, error, critical"),
    ("[log]\nformat = 'xml'\n", "log.format: must be one of json, text, got 'xml'"),
    ("routes = 5\n", "routes: must be a table"),
    ('[routes."+1555"]\nulr = "ws://x"\n', 'routes."+1555".ulr: unknown key'),
    ('[routes."+1555"]\nport = 8080\n', 'routes."+1555".port: unknown key'),
    (
        '[routes."+1555"]\nurl = "https://x"\n',
        'routes."+1555".url: must be a URL starting with ws://',
    ),
    ('[routes."+1555"]\ndialect = "twilio"\n', 'routes."+1555".dialect: the built-in echo bot'),
    ('[routes]\n"+1555" = "wss://x"\n', 'routes."+1555": must be a table of [bot] keys'),
    ('[routes." "]\nurl = "wss://x"\n', 'routes." ": a route needs a called number'),
    ('[routes."+1555"]\n[routes."tel:+1555"]\n', 'routes."tel:+1555": a second route for +1555'),
    ("[server\n", "is not valid TOML"),
]


@pytest.mark.parametrize(("toml", "message"), BAD_FILES)
def test_bad_files_are_refused_naming_key_and_problem(
    tmp_path: Path, toml: str, message: str
) -> None:
    with pytest.raises(ConfigError) as caught:
        load(tmp_path, toml)
    assert message in str(caught.value)
    if "." in message.split(":", 1)[0]:  # errors about one key say where the value came from
        assert f"(in {tmp_path / 'voxgate.toml'})" in str(caught.value)


BAD_ENV = [  # (variable, text, what the error must say)
    ("VOXGATE_PORT", "http", "server.port: must be an integer, got 'http' (from VOXGATE_PORT)"),
    (
        "VOXGATE_PORT",
        "99999",
        "server.port: must be an integer from 1 to 65535, got 99999 (from VOXGATE_PORT)",
    ),
    ("VOXGATE_PORT", "", "server.port: must be an integer, got ''"),
    ("VOXGATE_MAX_CALLS", "1.5", "server.max_calls: must be an integer, got '1.5'"),
    (
        "VOXGATE_HANGUP_AFTER_PLAYOUT",
        "maybe",
        "call.hangup_after_playout: must be true/false/1/0/yes/no",
    ),
    (
        "VOXGATE_HANGUP_AFTER_PLAYOUT",
        "on",
        "call.hangup_after_playout: must be true/false/1/0/yes/no",
    ),
    ("VOXGATE_BOT_RECONNECT_FOR", "soon", "bot.reconnect_for: must be a number, got 'soon'"),
    ("VOXGATE_BOT_CONNECT_TIMEOUT", "nan", "bot.connect_timeout: must be a finite number"),
    ("VOXGATE_BOT_DIALECT", "vapi", "bot.dialect: must be one of voxgate.v1, twilio, telnyx"),
    ("VOXGATE_BOT_AUDIO", "opus", "bot.audio: bad audio format 'opus'"),
    ("VOXGATE_BOT_HEADER", "A: 1\nbroken", "bot.header: header line 2 is not 'Name: value'"),
    (
        "VOXGATE_BOT_HEADER",
        "Host: evil.example",
        "bot.header: header line 1: Host is set by the WebSocket",
    ),
    (
        "VOXGATE_BOT_URL",
        "http://bot",
        "bot.url: must be a URL starting with ws:// or wss://, got 'http://bot' "
        "(from VOXGATE_BOT_URL)",
    ),
    ("VOXGATE_BOT_FALLBACK", "", "bot.fallback: must be one of hangup, apology, got ''"),
    ("VOXGATE_LOG_FORMAT", "yaml", "log.format: must be one of json, text"),
    (
        "VOXGATE_BOT_ULR",
        "ws://x",
        "VOXGATE_BOT_ULR: unknown environment variable; did you mean 'VOXGATE_BOT_URL'?",
    ),
    (
        "VOXGATE_PROT",
        "1",
        "VOXGATE_PROT: unknown environment variable; did you mean 'VOXGATE_PORT'?",
    ),
]


@pytest.mark.parametrize(("name", "text", "message"), BAD_ENV)
def test_bad_environment_variables_are_refused(name: str, text: str, message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load_config(env={name: text})
    assert message in str(caught.value)


def test_a_missing_file_is_an_error(tmp_path: Path) -> None:
    missing = tmp_path / "nope.toml"
    with pytest.raises(ConfigError, match=r"cannot read config file .*nope\.toml"):
        load_config(missing, env={})
    with pytest.raises(ConfigError, match=r"cannot read config file .*nope\.toml"):
        load_config(env={"VOXGATE_CONFIG": str(missing)})


def test_config_error_is_a_value_error() -> None:
    with pytest.raises(ValueError, match=r"server\.port"):
        load_config(env={"VOXGATE_PORT": "x"})


# --- listening safely --------------------------------------------------------------------

LISTEN_VECTORS = [  # (host, server.token, twilio.auth_token, safe?)
    ("127.0.0.1", "", "", True),
    ("127.8.9.10", "", "", True),
    ("localhost", "", "", True),
    ("LOCALHOST", "", "", True),
    ("::1", "", "", True),
    ("[::1]", "", "", True),
    ("::ffff:127.0.0.1", "", "", True),
    ("0.0.0.0", "", "", False),
    ("::", "", "", False),
    ("192.168.1.10", "", "", False),
    ("voxgate.example.com", "", "", False),
    ("128.0.0.1", "", "", False),
    ("0.0.0.0", "tok", "", True),
    ("0.0.0.0", "", "twilio-token", True),
    ("::", "tok", "twilio-token", True),
]


@pytest.mark.parametrize(("host", "token", "auth_token", "safe"), LISTEN_VECTORS)
def test_check_listen_safe(host: str, token: str, auth_token: str, safe: bool) -> None:
    env = {"VOXGATE_HOST": host, "VOXGATE_TOKEN": token, "VOXGATE_TWILIO_AUTH_TOKEN": auth_token}
    config = load_config(env=env)
    if safe:
        config.check_listen_safe()
    else:
        with pytest.raises(
            ConfigError, match=rf"refusing to listen on {re.escape(host)} without a token"
        ):
            config.check_listen_safe()


def test_the_brief_s_example_message() -> None:
    with pytest.raises(ConfigError, match=r"refusing to listen on 0\.0\.0\.0 without a token"):
        load_config(env={"VOXGATE_HOST": "0.0.0.0"}).check_listen_safe()


# --- carriers ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("sid", "token", "enabled"),
    [("", "", False), ("AC1", "", False), ("", "t", False), ("AC1", "t", True)],
)
def test_twilio_is_enabled_with_both_credentials(sid: str, token: str, enabled: bool) -> None:
    assert TwilioConfig(account_sid=sid, auth_token=token).enabled is enabled


@pytest.mark.parametrize(("key", "enabled"), [("", False), ("KEY1", True)])
def test_telnyx_is_enabled_with_an_api_key(key: str, enabled: bool) -> None:
    assert TelnyxConfig(api_key=key).enabled is enabled
    assert load_config(env={"VOXGATE_TELNYX_API_KEY": key}).telnyx.enabled is enabled


# --- header lines ------------------------------------------------------------------------

GOOD_HEADERS = [  # (text, parsed)
    ("", ()),
    ("\n\n", ()),
    ("Authorization: Bearer sk-1", (("Authorization", "Bearer sk-1"),)),
    ("A: 1\nB: 2", (("A", "1"), ("B", "2"))),
    ("A: 1\r\nB: 2\r\n", (("A", "1"), ("B", "2"))),
    ("  X-Key :  spaced value \t", (("X-Key", "spaced value"),)),
    ("X-Empty:", (("X-Empty", ""),)),
    ("X-Url: https://a.example/b?c=d", (("X-Url", "https://a.example/b?c=d"),)),
    ("X-Tab: a\tb", (("X-Tab", "a\tb"),)),
    ("A: 1\n\nA: 2", (("A", "1"), ("A", "2"))),  # repeated headers are kept in order
]


@pytest.mark.parametrize(("text", "parsed"), GOOD_HEADERS)
def test_header_lines_parse(text: str, parsed: tuple[tuple[str, str], ...]) -> None:
    assert parse_header_lines(text) == parsed


BAD_HEADERS = [  # (text, what the error must say)
    ("no colon", "header line 1 is not 'Name: value'"),
    (": value", "header line 1 has an empty name"),
    ("   : value", "header line 1 has an empty name"),
    ("A: 1\nBad Name: x", "header line 2: 'Bad Name' is not a valid header name"),
    ("X(y): 1", "'X(y)' is not a valid header name"),
    ("X: a\rInjected: b", "the value of X holds a control character"),
    ("X: a\x00b", "the value of X holds a control character"),
    ("X: a\x7f", "the value of X holds a control character"),
    ("A\r: b", "is not a valid header name"),
    ("Sec-WebSocket-Protocol: evil", "Sec-WebSocket-Protocol is set by the WebSocket handshake"),
    ("upgrade: h2c", "upgrade is set by the WebSocket handshake"),
    ("Content-Length: 0", "Content-Length is set by the WebSocket handshake"),
]


@pytest.mark.parametrize(("text", "message"), BAD_HEADERS)
def test_bad_header_lines_are_refused(text: str, message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_header_lines(text)
    assert message in str(caught.value)


# --- docs/CONFIG.md stays true ------------------------------------------------------------


def toml_blocks() -> list[str]:
    return re.findall(r"```toml\n(.*?)```", DOC, flags=re.DOTALL)


def full_example() -> str:
    example = DOC.split("## Full example", 1)[1]
    first: str = re.findall(r"```toml\n(.*?)```", example, flags=re.DOTALL)[0]
    return first


def test_the_doc_has_toml_examples() -> None:
    assert len(toml_blocks()) >= 2


@pytest.mark.parametrize("block", toml_blocks(), ids=lambda block: block.split("\n", 1)[0])
def test_every_toml_example_in_the_doc_loads(tmp_path: Path, block: str) -> None:
    load(tmp_path, block)


def test_the_full_example_sets_every_key_and_means_what_it_says(tmp_path: Path) -> None:
    tables = tomllib.loads(full_example())
    written = {f"{s}.{k}" for s, table in tables.items() if s != "routes" for k in table}
    assert written == set(ENV_VARS)
    assert tables["routes"]
    config = load(tmp_path, full_example())
    assert config.server.host == "0.0.0.0"
    config.check_listen_safe()  # it has a token
    assert config.bot.header == (("Authorization", "Bearer sk-example"), ("X-Tenant", "acme"))
    assert config.bot.audio == AudioFormat(Encoding.PCM16, 24000)
    assert config.bot.reconnect_for == 15.0
    assert config.twilio.enabled
    assert config.telnyx.enabled
    sales = config.bot_for("+15551234567")
    assert sales.url == "wss://bots.example.com/sales"
    assert sales.header == config.bot.header  # inherited
    legacy = config.bot_for("+15557654321")
    assert (legacy.dialect, legacy.audio) == ("twilio", PCMU_8K)


ROW = re.compile(
    r"^\| `(\w+\.\w+)` \| `(VOXGATE_\w+)` \| (\w+) \| `([^`]*)` \| (.+) \|$", re.MULTILINE
)
TYPE_NAMES = {str: "string", int: "integer", float: "number", bool: "boolean"}


def documented_rows() -> dict[str, tuple[str, str, str, str]]:
    rows = {
        key: (env, kind, default, meaning) for key, env, kind, default, meaning in ROW.findall(DOC)
    }
    assert len(rows) == len(ROW.findall(DOC)), "a key is documented twice"
    return rows


def as_toml(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, AudioFormat):
        return json.dumps(str(value))
    if value == ():
        return '""'
    return json.dumps(value)


def test_every_key_is_documented_with_its_variable_type_and_default() -> None:
    rows = documented_rows()
    assert set(rows) == set(ENV_VARS)
    defaults = Config()
    for key, (env, kind, default, meaning) in rows.items():
        section, name = key.split(".")
        section_class = type(getattr(defaults, section))
        declared = {f.name: f.type for f in dataclasses.fields(section_class)}[name]
        assert env == ENV_VARS[key], key
        assert default == as_toml(value_at(defaults, key)), key
        expected_kind = {"float": "number", "bool": "boolean", "int": "integer"}.get(
            str(declared), "string"
        )
        assert kind == expected_kind, key
        assert len(meaning) > 20, key


def test_every_dataclass_field_appears_in_the_doc() -> None:
    for field in dataclasses.fields(Config):
        assert f"[{field.name}" in DOC, field.name
    for section in SECTIONS:
        for field in dataclasses.fields(type(getattr(Config(), section))):
            assert f"`{section}.{field.name}`" in DOC, f"{section}.{field.name}"
    assert "bot_for(called_number)" in DOC
    assert "check_listen_safe()" in DOC
    assert "VOXGATE_CONFIG" in DOC


def test_bot_config_keys_are_the_route_keys() -> None:
    assert [f.name for f in dataclasses.fields(BotConfig)] == [
        key.split(".")[1] for key in ENV_VARS if key.startswith("bot.")
    ]


def test_worker_count_is_one_per_core_but_one_on_loopback_unless_set() -> None:
    cores = max(1, os.cpu_count() or 1)
    assert ServerConfig().worker_count() == 1  # 127.0.0.1
    assert ServerConfig(host="0.0.0.0").worker_count() == cores
    assert ServerConfig(host="0.0.0.0", workers=3).worker_count() == 3
    assert ServerConfig(workers=2).worker_count() == 2
    with pytest.raises(ConfigError, match=r"server\.workers"):
        load_config(None, {"VOXGATE_WORKERS": "-1"})
