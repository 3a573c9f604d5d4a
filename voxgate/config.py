"""voxgate's configuration: an optional TOML file, then ``VOXGATE_*`` environment variables.

Theory of operation (:func:`load_config`)::

    path argument | env VOXGATE_CONFIG | nothing
        |  read with tomllib            (unreadable file, bad TOML -> ConfigError)
        v
    raw values per section.key, each remembering where it came from ("in FILE")
        |  every VOXGATE_<NAME> variable: text -> the key's TOML type, replaces
        |  the file's value ("from VOXGATE_<NAME>"); unknown VOXGATE_* -> ConfigError
        v
    validate: unknown sections/keys, wrong types, out-of-range values, bad
    dialect/audio/header/URL -> ConfigError "<section.key>: <problem> (<origin>)"
        |  [routes."<called number>"] tables: same keys as [bot], validated the same
        |  way; a key a route leaves out is inherited from the final [bot]
        v
    Config (frozen dataclasses, routes in a read-only mapping)

One table, ``_SCHEMA``, lists every key with its TOML type and its check; the
dataclass defaults are the defaults (docs/CONFIG.md documents them, and a test
keeps it in step). :meth:`Config.check_listen_safe` (no open port without a
token) is left to the ``serve`` command: tools that only read the file skip it.
"""

from __future__ import annotations

import dataclasses
import difflib
import ipaddress
import math
import os
import re
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any, Final, Literal, get_args
from urllib.parse import urlsplit

from voxgate.codecs.formats import PCMU_8K, AudioFormat
from voxgate.errors import ConfigError

Dialect = Literal["voxgate.v1", "twilio", "telnyx"]
Fallback = Literal["hangup", "apology"]
PrivateTargets = Literal["auto", "allow", "deny"]
LogLevel = Literal["debug", "info", "warning", "error", "critical"]
LogFormat = Literal["json", "text"]
Headers = tuple[tuple[str, str], ...]

CONFIG_ENV_VAR: Final = "VOXGATE_CONFIG"
"""Names the TOML file to read when :func:`load_config` is given no path."""


# --- the configuration ----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ServerConfig:
    """The HTTP listener: REST, carrier WebSocket ingress, health."""

    host: str = "127.0.0.1"
    port: int = 8080
    token: str = ""  # carriers present it (Telnyx header or ?token=); "" = none
    public_url: str = ""  # base URL carriers use (needed to check Twilio signatures)
    max_calls: int = 500
    drain_seconds: float = 0.0  # on SIGTERM/SIGINT, let calls under way finish for this long
    metrics_token: str = ""  # asked of GET /metrics; "" = server.token when that is set
    handshake_timeout: float = 5.0  # accept -> the WebSocket upgrade is complete and authorised
    start_timeout: float = 5.0  # accept -> the carrier's start message
    max_pending: int = 100  # connections that have not started a call yet
    max_inbound_rate: float = 3.0  # carrier audio beyond this many times real time is dropped
    workers: int = 0  # processes sharing the port; 0 = one per core (one on loopback)
    node_name: str = ""  # this node's name in a shared store; "" = <hostname>:<port>

    def worker_count(self) -> int:
        """How many worker processes ``voxgate serve`` runs."""
        if self.workers:
            return self.workers
        return 1 if is_loopback(self.host) else max(1, os.cpu_count() or 1)


@dataclass(frozen=True, slots=True)
class BotConfig:
    """Where a call's audio goes and how voxgate talks to it."""

    url: str = ""  # ws:// or wss://; "" = the built-in echo bot
    header: Headers = ()  # (name, value) pairs sent on the bot's upgrade request
    dialect: Dialect = "voxgate.v1"
    audio: AudioFormat = PCMU_8K
    opening_text: str = ""
    system_prompt: str = ""
    connect_timeout: float = 5.0
    reconnect_for: float = 10.0  # seconds of reconnect attempts after a drop; 0 = none
    fallback: Fallback = "hangup"  # what the caller gets when the bot cannot be reached
    allow: tuple[str, ...] = ()  # patterns a per-call wss_url must match (empty: any)
    private_targets: PrivateTargets = "auto"  # per-call bots on private addresses
    connect_ws_after_answer: int = 0  # SIP: 0 = connect the bot while ringing, 1 = after answer


@dataclass(frozen=True, slots=True)
class CallConfig:
    """Call policy."""

    hangup_after_playout: bool = True  # a bot's hangup waits for queued audio
    max_hangup_wait: float = 10.0  # ... but no longer than this many seconds
    max_queued_audio: float = 300.0  # seconds of the bot's audio queued for the caller
    max_marks: int = 1000  # marks waiting to be played
    max_mark_name: int = 256  # bytes of one mark's name
    max_transcript_bytes: int = 262144  # transcript text kept per call


@dataclass(frozen=True, slots=True)
class TwilioConfig:
    account_sid: str = ""
    auth_token: str = ""
    api_base: str = "https://api.twilio.com"

    @property
    def enabled(self) -> bool:
        """Whether voxgate can use Twilio's REST API (hangup, transfer)."""
        return bool(self.account_sid and self.auth_token)


@dataclass(frozen=True, slots=True)
class TelnyxConfig:
    api_key: str = ""
    api_base: str = "https://api.telnyx.com"

    @property
    def enabled(self) -> bool:
        """Whether voxgate can use Telnyx's Call Control API (hangup, transfer)."""
        return bool(self.api_key)


@dataclass(frozen=True, slots=True)
class PlivoConfig:
    auth_id: str = ""
    auth_token: str = ""
    api_base: str = "https://api.plivo.com"

    @property
    def enabled(self) -> bool:
        """Whether voxgate can use Plivo's REST API (hangup, transfer)."""
        return bool(self.auth_id and self.auth_token)


@dataclass(frozen=True, slots=True)
class SipConfig:
    """The SIP listener (UDP) and the RTP ports of its calls; the trunk for outbound calls."""

    enabled: bool = True
    host: str = "127.0.0.1"
    port: int = 5060
    external_address: str = ""  # advertised in Contact and SDP (behind NAT); "" = host
    rtp_port_min: int = 20000
    rtp_port_max: int = 29998
    rtp_timeout: float = 30.0  # no RTP for this long ends the call
    codecs: tuple[str, ...] = ("PCMU", "PCMA", "L16")  # accepted, in this order when offering
    inband_dtmf: bool = False  # also detect DTMF tones in the caller's audio
    allow: tuple[str, ...] = ()  # addresses or networks calls may come from (empty: any)
    realm: str = "voxgate"
    username: str = ""  # inbound digest authentication (empty: none)
    password: str = ""
    trunk: str = ""  # outbound calls: the trunk's SIP URI (sip:host:port)
    trunk_username: str = ""
    trunk_password: str = ""
    from_number: str = ""  # the caller id of outbound calls
    register: bool = False  # keep voxgate registered with the trunk

    def advertised(self) -> str:
        """The address put in Contact headers and SDP."""
        if self.external_address:
            return self.external_address
        return "127.0.0.1" if self.host in ("0.0.0.0", "::", "") else self.host


@dataclass(frozen=True, slots=True)
class StoreConfig:
    """Where the control plane keeps keys, calls, numbers and the webhook outbox."""

    url: str = "sqlite:///var/voxgate.db"  # sqlite:///path (relative to the working directory)
    # or postgresql://user:password@host:port/db (several nodes sharing one store)


@dataclass(frozen=True, slots=True)
class ApiConfig:
    """The REST control plane (/v1)."""

    rate_limit: float = 100.0  # requests per second per API key (on each worker)
    max_body: int = 1048576  # bytes of one request's body
    max_play_bytes: int = 10485760  # bytes of audio one /play may fetch or upload


@dataclass(frozen=True, slots=True)
class WebhooksConfig:
    """Webhook delivery."""

    secret: str = ""  # signs per-call and per-number webhook_url deliveries; "" = made once
    private_targets: PrivateTargets = "auto"  # webhook URLs on private/loopback addresses
    timeout: float = 10.0  # seconds one delivery attempt may take


@dataclass(frozen=True, slots=True)
class LogConfig:
    level: LogLevel = "info"
    format: LogFormat = "json"


@dataclass(frozen=True, slots=True)
class Config:
    server: ServerConfig = field(default_factory=ServerConfig)
    bot: BotConfig = field(default_factory=BotConfig)
    routes: Mapping[str, BotConfig] = field(default_factory=lambda: MappingProxyType({}))
    call: CallConfig = field(default_factory=CallConfig)
    twilio: TwilioConfig = field(default_factory=TwilioConfig)
    telnyx: TelnyxConfig = field(default_factory=TelnyxConfig)
    plivo: PlivoConfig = field(default_factory=PlivoConfig)
    sip: SipConfig = field(default_factory=SipConfig)
    store: StoreConfig = field(default_factory=StoreConfig)
    api: ApiConfig = field(default_factory=ApiConfig)
    webhooks: WebhooksConfig = field(default_factory=WebhooksConfig)
    log: LogConfig = field(default_factory=LogConfig)

    def bot_for(self, called_number: str | None) -> BotConfig:
        """The bot for a call to ``called_number`` (its route, else ``[bot]``)."""
        if called_number is None:
            return self.bot
        return self.routes.get(_route_key(called_number), self.bot)

    def private_allowed(self, setting: str) -> bool:
        """Whether a ``private_targets`` setting (``bot.``, ``webhooks.``) lets outgoing
        connections reach private and loopback addresses: ``allow``, or ``auto`` while
        voxgate itself listens on loopback."""
        return setting == "allow" or (setting == "auto" and is_loopback(self.server.host))

    def check_listen_safe(self) -> None:
        """Refuse a listener reachable from other hosts that anyone could call into."""
        sip = self.sip
        if sip.register and not sip.trunk:
            raise ConfigError("sip.register: set sip.trunk, the registrar to register with")
        if sip.enabled and not is_loopback(sip.host) and not (sip.allow or sip.username):
            raise ConfigError(
                f"sip.host: refusing to take SIP calls on {sip.host} from anyone: set sip.allow "
                "(the trunk's or PBX's addresses) or sip.username and sip.password, "
                "or listen on 127.0.0.1"
            )
        host = self.server.host
        if is_loopback(host) or self.server.token or self.twilio.auth_token:
            return
        raise ConfigError(
            f"server.host: refusing to listen on {host} without a token: set server.token "
            "(VOXGATE_TOKEN) or twilio.auth_token (VOXGATE_TWILIO_AUTH_TOKEN), "
            "or listen on 127.0.0.1"
        )


def is_loopback(host: str) -> bool:
    """Whether ``host`` is ``localhost`` or an address in 127.0.0.0/8 or ::1."""
    name = host.strip().strip("[]").lower()
    if name == "localhost":
        return True
    try:
        address = ipaddress.ip_address(name)
    except ValueError:
        return False
    mapped = getattr(address, "ipv4_mapped", None)  # ::ffff:127.0.0.1
    return address.is_loopback or (mapped is not None and mapped.is_loopback)


# --- header lines ---------------------------------------------------------------------

_TOKEN: Final = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")  # RFC 9110 section 5.6.2
_CONTROL: Final = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")  # CTLs but HTAB, RFC 9110 section 5.5
_HANDSHAKE_HEADERS: Final = frozenset(  # the handshake sets these itself, RFC 6455 section 4.1
    {"host", "connection", "upgrade", "content-length", "transfer-encoding"}
    | {f"sec-websocket-{n}" for n in ("key", "version", "accept", "extensions", "protocol")}
)


def parse_header_lines(text: str) -> Headers:
    """``(name, value)`` pairs from ``"Name: value"`` lines separated by newlines.

    Blank lines are skipped and ``\\r\\n`` line ends accepted; a name must be an
    HTTP token (RFC 9110 section 5.6.2), a value must hold no control character
    (no CR/LF injection), and headers the WebSocket handshake sets itself
    (RFC 6455 section 4.1) are refused.
    """
    headers: list[tuple[str, str]] = []
    for number, raw_line in enumerate(text.split("\n"), 1):
        line = raw_line.removesuffix("\r")
        if not line.strip():
            continue
        name, colon, value = line.partition(":")
        name, value = name.strip(" \t"), value.strip(" \t")
        if not colon:
            raise ConfigError(f"header line {number} is not 'Name: value': {line!r}")
        if not name:
            raise ConfigError(f"header line {number} has an empty name: {line!r}")
        if not _TOKEN.fullmatch(name):
            raise ConfigError(f"header line {number}: {name!r} is not a valid header name")
        if _CONTROL.search(value):
            raise ConfigError(
                f"header line {number}: the value of {name} holds a control character"
            )
        if name.lower() in _HANDSHAKE_HEADERS:
            raise ConfigError(f"header line {number}: {name} is set by the WebSocket handshake")
        headers.append((name, value))
    return tuple(headers)


# --- checks: each takes a value of the key's TOML type, returns the stored value ------


def _same(value: Any) -> Any:
    return value


def _int_in(low: int, high: int | None = None) -> Callable[[int], int]:
    def check(value: int) -> int:
        if value < low or (high is not None and value > high):
            span = f"from {low} to {high}" if high is not None else f"of at least {low}"
            raise ConfigError(f"must be an integer {span}, got {value}")
        return value

    return check


def _seconds(*, allow_zero: bool) -> Callable[[float], float]:
    def check(value: float) -> float:
        if value < 0 or (value == 0 and not allow_zero):
            raise ConfigError(f"must be {'0 or more' if allow_zero else 'more than 0'} seconds")
        return value

    return check


def _at_least(low: float) -> Callable[[float], float]:
    def check(value: float) -> float:
        if value < low:
            raise ConfigError(f"must be at least {low}, got {value}")
        return value

    return check


def _one_of(*choices: str) -> Callable[[str], str]:
    def check(value: str) -> str:
        if value.strip().lower() not in choices:
            raise ConfigError(f"must be one of {', '.join(choices)}, got {value!r}")
        return value.strip().lower()

    return check


def _url(*schemes: str) -> Callable[[str], str]:
    """Checks an empty string or a URL with one of ``schemes`` and a host."""

    def check(value: str) -> str:
        value = value.strip()
        if not value:
            return ""
        parts = urlsplit(value)
        if parts.scheme.lower() not in schemes or not parts.hostname:
            allowed = " or ".join(f"{scheme}://" for scheme in schemes)
            raise ConfigError(f"must be a URL starting with {allowed}, got {value!r}")
        return value

    return check


def _base_url(*schemes: str) -> Callable[[str], str]:
    checked = _url(*schemes)
    return lambda value: checked(value).rstrip("/")


def _patterns(value: str) -> tuple[str, ...]:
    """Bot address patterns, one per line or separated by commas (see docs/CONFIG.md)."""
    patterns = [item.strip() for item in re.split(r"[\n,]", value) if item.strip()]
    for pattern in patterns:
        if any(char.isspace() for char in pattern):
            raise ConfigError(f"a bot address pattern holds a space: {pattern!r}")
    return tuple(patterns)


def _codec_names(value: str) -> tuple[str, ...]:
    names = tuple(item.strip().upper() for item in re.split(r"[\n,]", value) if item.strip())
    unknown = [name for name in names if name not in ("PCMU", "PCMA", "L16")]
    if unknown or not names:
        raise ConfigError(f"must name codecs among PCMU, PCMA, L16, got {value[:60]!r}")
    return names


def _networks(value: str) -> tuple[str, ...]:
    """Addresses or CIDR networks, one per line or separated by commas."""
    items = tuple(item.strip() for item in re.split(r"[\n,]", value) if item.strip())
    for item in items:
        try:
            ipaddress.ip_network(item, strict=False)
        except ValueError:
            raise ConfigError(f"{item[:60]!r} is not an address or network") from None
    return items


def _sip_uri(value: str) -> str:
    if value and not value.startswith(("sip:", "sips:")):
        raise ConfigError(f"must be a SIP URI (sip:host[:port]), got {value[:60]!r}")
    return value


def _webhook_timeout(value: float) -> float:
    if not 0 < value < 60:  # under the outbox's 60 s lease: a slow attempt is not sent twice
        raise ValueError("must be more than 0 and less than 60 seconds")
    return value


def _store_url(value: str) -> str:
    if not value.startswith(("sqlite:///", "postgresql://", "postgres://")):
        raise ValueError("must start with sqlite:/// or postgresql://")
    return value


def _host(value: str) -> str:
    if not value.strip() or any(char.isspace() for char in value.strip()):
        raise ConfigError(f"must be a host name or address, got {value!r}")
    return value.strip()


def _audio(value: str) -> AudioFormat:
    try:
        return AudioFormat.parse(value)
    except ValueError as error:
        raise ConfigError(f"bad audio format {value!r}: {error}") from error


@dataclass(frozen=True, slots=True)
class _Key:
    kind: type  # str, int, float or bool: the TOML type
    check: Callable[[Any], Any] = _same
    lines: bool = False  # a str that TOML may also give as an array of lines


_SCHEMA: Final[dict[str, dict[str, _Key]]] = {
    "server": {
        "host": _Key(str, _host),
        "port": _Key(int, _int_in(1, 65535)),
        "token": _Key(str),
        "public_url": _Key(str, _base_url("https", "wss", "http", "ws")),
        "max_calls": _Key(int, _int_in(1)),
        "drain_seconds": _Key(float, _seconds(allow_zero=True)),
        "metrics_token": _Key(str),
        "handshake_timeout": _Key(float, _seconds(allow_zero=False)),
        "start_timeout": _Key(float, _seconds(allow_zero=False)),
        "max_pending": _Key(int, _int_in(1)),
        "max_inbound_rate": _Key(float, _at_least(1.0)),
        "workers": _Key(int, _int_in(0, 256)),
        "node_name": _Key(str),
    },
    "bot": {
        "url": _Key(str, _url("ws", "wss")),
        "header": _Key(str, parse_header_lines, lines=True),
        "dialect": _Key(str, _one_of(*get_args(Dialect))),
        "audio": _Key(str, _audio),
        "opening_text": _Key(str),
        "system_prompt": _Key(str),
        "connect_timeout": _Key(float, _seconds(allow_zero=False)),
        "reconnect_for": _Key(float, _seconds(allow_zero=True)),
        "fallback": _Key(str, _one_of(*get_args(Fallback))),
        "allow": _Key(str, _patterns, lines=True),
        "private_targets": _Key(str, _one_of(*get_args(PrivateTargets))),
        "connect_ws_after_answer": _Key(int, _int_in(0, 1)),
    },
    "call": {
        "hangup_after_playout": _Key(bool),
        "max_hangup_wait": _Key(float, _seconds(allow_zero=True)),
        "max_queued_audio": _Key(float, _seconds(allow_zero=False)),
        "max_marks": _Key(int, _int_in(1)),
        "max_mark_name": _Key(int, _int_in(1, 65536)),
        "max_transcript_bytes": _Key(int, _int_in(0)),
    },
    "twilio": {
        "account_sid": _Key(str),
        "auth_token": _Key(str),
        "api_base": _Key(str, _base_url("https", "http")),
    },
    "telnyx": {
        "api_key": _Key(str),
        "api_base": _Key(str, _base_url("https", "http")),
    },
    "plivo": {
        "auth_id": _Key(str),
        "auth_token": _Key(str),
        "api_base": _Key(str, _base_url("https", "http")),
    },
    "sip": {
        "enabled": _Key(bool),
        "host": _Key(str, _host),
        "port": _Key(int, _int_in(0, 65535)),
        "external_address": _Key(str),
        "rtp_port_min": _Key(int, _int_in(1024, 65534)),
        "rtp_port_max": _Key(int, _int_in(1024, 65534)),
        "rtp_timeout": _Key(float, _seconds(allow_zero=False)),
        "codecs": _Key(str, _codec_names, lines=True),
        "inband_dtmf": _Key(bool),
        "allow": _Key(str, _networks, lines=True),
        "realm": _Key(str),
        "username": _Key(str),
        "password": _Key(str),
        "trunk": _Key(str, _sip_uri),
        "trunk_username": _Key(str),
        "trunk_password": _Key(str),
        "from_number": _Key(str),
        "register": _Key(bool),
    },
    "store": {
        "url": _Key(str, _store_url),
    },
    "api": {
        "rate_limit": _Key(float, _at_least(0.1)),
        "max_body": _Key(int, _int_in(1024)),
        "max_play_bytes": _Key(int, _int_in(1024)),
    },
    "webhooks": {
        "secret": _Key(str),
        "private_targets": _Key(str, _one_of(*get_args(PrivateTargets))),
        "timeout": _Key(float, _webhook_timeout),
    },
    "log": {
        "level": _Key(str, _one_of(*get_args(LogLevel))),
        "format": _Key(str, _one_of(*get_args(LogFormat))),
    },
}

_SECTION_CLASSES: Final[dict[str, type]] = {
    "server": ServerConfig,
    "bot": BotConfig,
    "call": CallConfig,
    "twilio": TwilioConfig,
    "telnyx": TelnyxConfig,
    "plivo": PlivoConfig,
    "sip": SipConfig,
    "store": StoreConfig,
    "api": ApiConfig,
    "webhooks": WebhooksConfig,
    "log": LogConfig,
}

_ENV_PREFIXES: Final = {
    "server": "VOXGATE_",  # VOXGATE_HOST, VOXGATE_PORT, ...
    "bot": "VOXGATE_BOT_",
    "call": "VOXGATE_",  # VOXGATE_HANGUP_AFTER_PLAYOUT, VOXGATE_MAX_HANGUP_WAIT
    "twilio": "VOXGATE_TWILIO_",
    "telnyx": "VOXGATE_TELNYX_",
    "plivo": "VOXGATE_PLIVO_",
    "sip": "VOXGATE_SIP_",
    "store": "VOXGATE_STORE_",  # VOXGATE_STORE_URL
    "api": "VOXGATE_API_",
    "webhooks": "VOXGATE_WEBHOOKS_",
    "log": "VOXGATE_LOG_",
}

ENV_VARS: Final[Mapping[str, str]] = MappingProxyType(
    {
        f"{section}.{key}": f"{_ENV_PREFIXES[section]}{key.upper()}"
        for section, keys in _SCHEMA.items()
        for key in keys
    }
)
"""``"section.key"`` -> the environment variable that overrides it."""

_SECTIONS: Final = (*_SCHEMA, "routes")
_KEYS_BY_ENV: Final = {name: tuple(key.split(".")) for key, name in ENV_VARS.items()}
_TYPE_NAMES: Final = {str: "a string", int: "an integer", float: "a number", bool: "true or false"}
_BOOLEANS: Final = {"true": True, "1": True, "yes": True, "false": False, "0": False, "no": False}


# --- loading --------------------------------------------------------------------------

_Raw = dict[str, dict[str, tuple[object, str]]]  # section -> key -> (value, origin)


def load_config(path: str | Path | None = None, env: Mapping[str, str] | None = None) -> Config:
    """The configuration from ``path`` (or ``$VOXGATE_CONFIG``) and ``VOXGATE_*`` variables."""
    env = os.environ if env is None else env
    if path is None and env.get(CONFIG_ENV_VAR, "").strip():
        path = env[CONFIG_ENV_VAR].strip()
    tables = _read_toml(Path(path)) if path is not None else {}
    origin = f"in {path}"
    raw, route_tables = _raw_from_file(tables, origin)
    _apply_env(raw, env)
    sections = {
        name: _build(name, cls, raw.get(name, {})) for name, cls in _SECTION_CLASSES.items()
    }
    bot: BotConfig = sections["bot"]
    _check_bot(bot, "bot", raw.get("bot", {}).get("dialect", (None, "default"))[1])
    routes = _build_routes(route_tables, bot, origin)
    _check_sip(sections["sip"], origin)
    return Config(routes=routes, **sections)


def _check_sip(sip: SipConfig, origin: str) -> None:
    if sip.rtp_port_max - sip.rtp_port_min < 2:
        raise ConfigError(
            f"sip.rtp_port_min, sip.rtp_port_max: need at least two even ports between them, "
            f"got {sip.rtp_port_min}-{sip.rtp_port_max} ({origin})"
        )


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as file:
            return tomllib.load(file)
    except OSError as error:
        raise ConfigError(f"cannot read config file {path}: {error.strerror or error}") from error
    except tomllib.TOMLDecodeError as error:
        raise ConfigError(f"config file {path} is not valid TOML: {error}") from error


def _raw_from_file(tables: dict[str, Any], origin: str) -> tuple[_Raw, dict[str, Any]]:
    raw: _Raw = {}
    routes: dict[str, Any] = {}
    for section, table in tables.items():
        if section != "routes" and section not in _SCHEMA:
            raise ConfigError(
                f"{section}: unknown section ({origin}){_suggest(section, _SECTIONS)}"
            )
        if not isinstance(table, dict):
            raise ConfigError(f"{section}: must be a table ({origin})")
        if section == "routes":
            routes = table
            continue
        for key, value in table.items():
            _known_key(section, key, origin)
            raw.setdefault(section, {})[key] = (value, origin)
    return raw, routes


def _known_key(section: str, key: str, origin: str, where: str | None = None) -> None:
    if key not in _SCHEMA[section]:
        suggestion = _suggest(key, _SCHEMA[section])
        raise ConfigError(f"{where or section}.{key}: unknown key ({origin}){suggestion}")


def _suggest(word: str, known: Mapping[str, object] | tuple[str, ...]) -> str:
    close = difflib.get_close_matches(word, list(known), n=1)
    return f"; did you mean {close[0]!r}?" if close else f"; known: {', '.join(known)}"


def _apply_env(raw: _Raw, env: Mapping[str, str]) -> None:
    for name, text in env.items():
        if not name.startswith("VOXGATE_") or name == CONFIG_ENV_VAR:
            continue
        if name not in _KEYS_BY_ENV:
            raise ConfigError(f"{name}: unknown environment variable{_suggest(name, _KEYS_BY_ENV)}")
        section, key = _KEYS_BY_ENV[name]
        kind = _SCHEMA[section][key].kind
        try:
            value = _from_text(text, kind)
        except ValueError as error:
            raise ConfigError(f"{section}.{key}: {error} (from {name})") from error
        raw.setdefault(section, {})[key] = (value, f"from {name}")


def _from_text(text: str, kind: type) -> object:
    """An environment variable's text as a value of the key's TOML type."""
    if kind is bool:
        if text.strip().lower() not in _BOOLEANS:
            raise ConfigError(f"must be true/false/1/0/yes/no, got {text!r}")
        return _BOOLEANS[text.strip().lower()]
    if kind is int or kind is float:
        try:
            return kind(text.strip())
        except ValueError:
            raise ConfigError(f"must be {_TYPE_NAMES[kind]}, got {text!r}") from None
    return text


def _build(section: str, cls: type, values: dict[str, tuple[object, str]], where: str = "") -> Any:
    checked = {
        key: _check(f"{where or section}.{key}", _SCHEMA[section][key], value, origin)
        for key, (value, origin) in values.items()
    }
    return cls(**checked)


def _check(where: str, spec: _Key, value: object, origin: str) -> object:
    if spec.lines and isinstance(value, list) and all(isinstance(line, str) for line in value):
        value = "\n".join(value)  # bot.header = ["A: 1", "B: 2"]
    try:
        return spec.check(_typed(value, spec.kind))
    except ValueError as error:
        raise ConfigError(f"{where}: {error} ({origin})") from error


def _typed(value: object, kind: type) -> object:
    """``value`` if it has the TOML type ``kind`` (an integer passes as a float)."""
    if kind is float and isinstance(value, int | float) and not isinstance(value, bool):
        if not math.isfinite(value):
            raise ConfigError(f"must be a finite number, got {value}")
        return float(value)
    if isinstance(value, kind) and not (kind is int and isinstance(value, bool)):
        return value
    raise ConfigError(f"must be {_TYPE_NAMES[kind]}, got {type(value).__name__} {value!r}")


def _check_bot(bot: BotConfig, where: str, origin: str) -> None:
    if not bot.url and bot.dialect != "voxgate.v1":
        raise ConfigError(
            f"{where}.dialect: the built-in echo bot (empty url) speaks voxgate.v1 only, "
            f"not {bot.dialect}; set {where}.url ({origin})"
        )


def _route_key(number: str) -> str:
    return number.strip().removeprefix("tel:")


def _build_routes(tables: dict[str, Any], bot: BotConfig, origin: str) -> Mapping[str, BotConfig]:
    routes: dict[str, BotConfig] = {}
    for number, table in tables.items():
        where = f'routes."{number}"'
        number_key = _route_key(number)
        if not number_key:
            raise ConfigError(f"{where}: a route needs a called number ({origin})")
        if number_key in routes:
            raise ConfigError(f"{where}: a second route for {number_key} ({origin})")
        if not isinstance(table, dict):
            raise ConfigError(f"{where}: must be a table of [bot] keys ({origin})")
        for key in table:
            _known_key("bot", key, origin, where)
        overrides = _build("bot", dict, {k: (v, origin) for k, v in table.items()}, where)
        route = dataclasses.replace(bot, **overrides)
        _check_bot(route, where, origin)
        routes[number_key] = route
    return MappingProxyType(routes)
