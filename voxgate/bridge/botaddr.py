"""Which bots a call may reach, sans I/O (docs/CONFIG.md, "Which bots a call may reach").

Whoever sets a stream's custom parameters makes voxgate open a WebSocket, with
headers of their choosing, to the URL they name: without a check that reaches
services behind voxgate (server-side request forgery). A per-call URL is
therefore checked before it is dialled::

    wss_url --parse_bot_url--> BotEndpoint (scheme, host, port, path)
        |   not ws:// or wss:// with a host, a bad port,
        |   whitespace or control characters          -> refused
        v
    bot.allow set?  --yes-- allowed_by_patterns? --no--> refused
        | no                    | yes: any address may be reached
        v                       v
    every address the host resolves to:        (resolution: voxgate.bridge.aio.botaddr)
    forbidden_address(ip) unless private targets are allowed -> refused

The address is what counts, not the name: ``localhost``, ``127.1``, a name
whose DNS answer is 10.0.0.5, ``::ffff:127.0.0.1`` and ``64:ff9b::a9fe:a9fe``
are all caught by the address check. The caller connects to the one address
that was checked, so a second DNS answer cannot differ (DNS rebinding).

Patterns (``bot.allow``): ``bots.example.com`` (that host, any port),
``*.example.com`` (any subdomain, not ``example.com`` itself),
``host:port`` or ``[v6]:port``, ``*.example.com:443``, and a URL prefix
``wss://bots.example.com/voice/`` (same scheme, host and port, the path
under that prefix, without ``.``/``..`` segments).
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final
from urllib.parse import unquote, urlsplit

DEFAULT_PORTS: Final = {"ws": 80, "wss": 443}  # RFC 6455 section 3
SECURE_SCHEMES: Final = frozenset({"wss", "https"})  # TLS; https: RFC 9110 section 4.2.2

METADATA_ADDRESSES: Final = frozenset(
    {
        ipaddress.ip_address("169.254.169.254"),  # AWS, GCP, Azure, OpenStack...
        ipaddress.ip_address("169.254.170.2"),  # AWS ECS task metadata
        ipaddress.ip_address("100.100.100.200"),  # Alibaba Cloud
        ipaddress.ip_address("fd00:ec2::254"),  # AWS, over IPv6
    }
)

_V4: Final = (
    ("unspecified ('this network', RFC 791)", ipaddress.ip_network("0.0.0.0/8")),
    ("loopback", ipaddress.ip_network("127.0.0.0/8")),
    ("private (RFC 1918)", ipaddress.ip_network("10.0.0.0/8")),
    ("private (RFC 1918)", ipaddress.ip_network("172.16.0.0/12")),
    ("private (RFC 1918)", ipaddress.ip_network("192.168.0.0/16")),
    ("link-local", ipaddress.ip_network("169.254.0.0/16")),
    ("shared address space (RFC 6598)", ipaddress.ip_network("100.64.0.0/10")),
    ("multicast", ipaddress.ip_network("224.0.0.0/4")),
    ("broadcast", ipaddress.ip_network("255.255.255.255/32")),
    ("reserved", ipaddress.ip_network("240.0.0.0/4")),
    ("IETF protocol assignments (RFC 6890)", ipaddress.ip_network("192.0.0.0/24")),
    ("documentation (RFC 5737)", ipaddress.ip_network("192.0.2.0/24")),
    ("documentation (RFC 5737)", ipaddress.ip_network("198.51.100.0/24")),
    ("documentation (RFC 5737)", ipaddress.ip_network("203.0.113.0/24")),
    ("benchmarking (RFC 2544)", ipaddress.ip_network("198.18.0.0/15")),
)
_V6: Final = (
    ("unspecified", ipaddress.ip_network("::/128")),
    ("loopback", ipaddress.ip_network("::1/128")),
    ("unique local (RFC 4193)", ipaddress.ip_network("fc00::/7")),
    ("link-local", ipaddress.ip_network("fe80::/10")),
    ("site-local (deprecated)", ipaddress.ip_network("fec0::/10")),
    ("multicast", ipaddress.ip_network("ff00::/8")),
    ("NAT64 local-use (RFC 8215)", ipaddress.ip_network("64:ff9b:1::/48")),
    ("documentation (RFC 3849)", ipaddress.ip_network("2001:db8::/32")),
    ("discard-only (RFC 6666)", ipaddress.ip_network("100::/64")),
)
_NAT64: Final = ipaddress.ip_network("64:ff9b::/96")  # RFC 6052 section 2.1
_CONTROL_OR_SPACE: Final = re.compile(r"[\s\x00-\x1f\x7f]")


def forbidden_address(ip: str) -> str | None:
    """Why a bot may not be reached at ``ip`` without permission, or None for a public address.

    Loopback, private (RFC 1918, RFC 4193), link-local (with the clouds'
    metadata services), shared (RFC 6598), multicast, unspecified, reserved and
    other special-purpose addresses (RFC 6890 registries: documentation,
    benchmarking...) are refused; so are the same addresses reached through
    IPv4-mapped IPv6 (RFC 4291 section 2.5.5.2), NAT64 (RFC 6052) or 6to4
    (RFC 3056). Text that is not an IP address is refused too.
    """
    try:
        address = ipaddress.ip_address(ip.strip().strip("[]"))
    except ValueError:
        return "not an IP address"
    return _why(address)


def _why(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> str | None:
    if address in METADATA_ADDRESSES:
        return "cloud metadata service"
    if isinstance(address, ipaddress.IPv6Address):
        return _why_v6(address)
    for why, network in _V4:
        if address in network:
            return why
    if not address.is_global:
        return "special-purpose (not globally reachable)"
    return None


def _why_v6(address: ipaddress.IPv6Address) -> str | None:
    if address.scope_id:
        address = ipaddress.IPv6Address(str(address).partition("%")[0])
    embedded, through = _embedded_v4(address)
    if embedded is not None:
        why = _why(embedded)
        return f"{why}, as {through}" if why else None
    for why, network in _V6:
        if address in network:
            return why
    if not address.is_global:
        return "special-purpose (not globally reachable)"
    return None


def _embedded_v4(
    address: ipaddress.IPv6Address,
) -> tuple[ipaddress.IPv4Address | None, str]:
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped, "IPv4-mapped IPv6"
    if address in _NAT64:
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF), "NAT64"
    if address.sixtofour is not None:
        return address.sixtofour, "6to4"
    return None, ""


# --- URLs and patterns ----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class BotEndpoint:
    """The parts of a bot URL (or a webhook URL) that decide where it goes."""

    scheme: str  # "ws" or "wss" ("http" or "https" for a webhook)
    host: str  # lower case, no brackets, no trailing dot
    port: int  # the default port of the scheme when the URL names none
    path: str

    @property
    def secure(self) -> bool:
        return self.scheme in SECURE_SCHEMES


def parse_bot_url(url: str) -> BotEndpoint:
    """The endpoint of a ``ws://`` or ``wss://`` URL; ValueError (without secrets) if not one."""
    return parse_endpoint(url, DEFAULT_PORTS, "bot URL")


def parse_endpoint(url: str, default_ports: Mapping[str, int], what: str) -> BotEndpoint:
    """The endpoint of a URL whose scheme is one of ``default_ports`` (webhooks: http,
    https); ValueError naming ``what`` (without secrets) if not one."""
    if _CONTROL_OR_SPACE.search(url):
        raise ValueError(f"the {what} holds whitespace or a control character")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        raise ValueError(f"the {what} is malformed (bad host or port)") from None
    scheme = parts.scheme.lower()
    if scheme not in default_ports or not parts.hostname:
        schemes = " or ".join(f"{name}://" for name in default_ports)
        raise ValueError(f"the {what} is not {schemes} with a host")
    host = _canonical_host(parts.hostname)
    return BotEndpoint(scheme, host, default_ports[scheme] if port is None else port, parts.path)


def allowed_by_patterns(url: str, patterns: tuple[str, ...] | list[str]) -> bool:
    """Whether ``url`` matches one of the ``bot.allow`` patterns (see the module docstring).

    A malformed URL or pattern matches nothing; an empty list matches nothing
    either (the caller decides what an empty ``bot.allow`` means).
    """
    try:
        endpoint = parse_bot_url(url)
    except ValueError:
        return False
    return any(_matches(endpoint, pattern.strip()) for pattern in patterns if pattern.strip())


def _matches(endpoint: BotEndpoint, pattern: str) -> bool:
    if "://" in pattern:
        return _matches_prefix(endpoint, pattern)
    host, port = _split_host_port(pattern)
    if host is None or (port is not None and port != endpoint.port):
        return False
    if host.startswith("*."):
        suffix = _canonical_host(host[2:])
        return bool(suffix) and endpoint.host.endswith("." + suffix)
    return _canonical_host(host) == endpoint.host


def _matches_prefix(endpoint: BotEndpoint, pattern: str) -> bool:
    try:
        prefix = parse_bot_url(pattern)
    except ValueError:
        return False
    if (prefix.scheme, prefix.host, prefix.port) != (
        endpoint.scheme,
        endpoint.host,
        endpoint.port,
    ):
        return False
    if _has_dot_segment(endpoint.path):
        return False  # "/voice/../admin" is not under "/voice/" once the server resolves it
    want = prefix.path or "/"
    have = endpoint.path or "/"
    if want.endswith("/"):
        return have.startswith(want)
    return have == want or have.startswith(want + "/")


def _has_dot_segment(path: str) -> bool:
    segments = unquote(path).replace("\\", "/").split("/")
    return any(segment in (".", "..") for segment in segments)


def _split_host_port(pattern: str) -> tuple[str | None, int | None]:
    """``("host", port | None)``; ``(None, None)`` for a pattern that cannot be read."""
    if pattern.startswith("["):
        host, bracket, rest = pattern[1:].partition("]")
        if not bracket or (rest and not rest.startswith(":")):
            return None, None
        return host, _port(rest[1:]) if rest else None
    if pattern.count(":") == 1:
        host, _, port_text = pattern.partition(":")
        port = _port(port_text)
        return (host, port) if port is not None else (None, None)
    return pattern, None  # a host name, an IPv4 address or a bare IPv6 address


def _port(text: str) -> int | None:
    return int(text) if text.isdigit() and 0 < int(text) < 65536 else None


def _canonical_host(host: str) -> str:
    """Lower case, no trailing dot, IP addresses in their canonical form, IDNA as ASCII."""
    host = host.strip().strip("[]").lower().rstrip(".")
    try:
        return str(ipaddress.ip_address(host))
    except ValueError:
        pass
    try:
        return host.encode("idna").decode("ascii")
    except UnicodeError:
        return host


def private_targets_allowed(setting: str, listens_on_loopback: bool) -> bool:
    """``bot.private_targets``: ``allow``, ``deny``, or ``auto`` (allowed when on loopback)."""
    return setting == "allow" or (setting == "auto" and listens_on_loopback)
