"""Bot address decisions: which addresses are refused, which URLs match bot.allow."""

from __future__ import annotations

import pytest

from voxgate.bridge.botaddr import (
    BotEndpoint,
    allowed_by_patterns,
    forbidden_address,
    parse_bot_url,
    private_targets_allowed,
)


@pytest.mark.parametrize(
    ("ip", "why"),
    [
        # IPv4
        ("127.0.0.1", "loopback"),
        ("127.255.255.254", "loopback"),
        ("10.0.0.5", "private (RFC 1918)"),
        ("172.16.0.1", "private (RFC 1918)"),
        ("172.31.255.255", "private (RFC 1918)"),
        ("192.168.1.1", "private (RFC 1918)"),
        ("169.254.169.254", "cloud metadata service"),
        ("169.254.170.2", "cloud metadata service"),
        ("100.100.100.200", "cloud metadata service"),
        ("169.254.1.1", "link-local"),
        ("100.64.0.1", "shared address space (RFC 6598)"),
        ("100.127.255.255", "shared address space (RFC 6598)"),
        ("224.0.0.1", "multicast"),
        ("239.255.255.250", "multicast"),
        ("0.0.0.0", "unspecified ('this network', RFC 791)"),
        ("0.1.2.3", "unspecified ('this network', RFC 791)"),
        ("255.255.255.255", "broadcast"),
        ("240.0.0.1", "reserved"),
        ("192.0.2.1", "documentation (RFC 5737)"),
        ("198.51.100.7", "documentation (RFC 5737)"),
        ("203.0.113.9", "documentation (RFC 5737)"),
        ("198.19.0.1", "benchmarking (RFC 2544)"),
        ("192.0.0.8", "IETF protocol assignments (RFC 6890)"),
        # IPv6
        ("::1", "loopback"),
        ("::", "unspecified"),
        ("fc00::1", "unique local (RFC 4193)"),
        ("fd12:3456::1", "unique local (RFC 4193)"),
        ("fd00:ec2::254", "cloud metadata service"),
        ("fe80::1", "link-local"),
        ("fe80::1%eth0", "link-local"),
        ("fec0::1", "site-local (deprecated)"),
        ("ff02::1", "multicast"),
        ("2001:db8::1", "documentation (RFC 3849)"),
        ("100::1", "discard-only (RFC 6666)"),
        ("2001:2::1", "special-purpose (not globally reachable)"),  # benchmarking
        ("64:ff9b:1::a00:1", "NAT64 local-use (RFC 8215)"),
        # IPv4 behind IPv6
        ("::ffff:127.0.0.1", "loopback, as IPv4-mapped IPv6"),
        ("::ffff:7f00:1", "loopback, as IPv4-mapped IPv6"),
        ("::ffff:169.254.169.254", "cloud metadata service, as IPv4-mapped IPv6"),
        ("::ffff:10.1.2.3", "private (RFC 1918), as IPv4-mapped IPv6"),
        ("64:ff9b::127.0.0.1", "loopback, as NAT64"),
        ("64:ff9b::a9fe:a9fe", "cloud metadata service, as NAT64"),
        ("64:ff9b::c0a8:101", "private (RFC 1918), as NAT64"),
        ("2002:7f00:1::", "loopback, as 6to4"),
        ("2002:a00:1::1", "private (RFC 1918), as 6to4"),
        ("[::1]", "loopback"),
        # public
        ("8.8.8.8", None),
        ("93.184.216.34", None),
        ("100.63.255.255", None),  # just below 100.64.0.0/10
        ("172.32.0.1", None),  # just above 172.16.0.0/12
        ("2606:4700:4700::1111", None),
        ("::ffff:8.8.8.8", None),
        ("64:ff9b::808:808", None),  # NAT64 of a public address
        ("2002:808:808::1", None),  # 6to4 of a public address
        # not addresses
        ("localhost", "not an IP address"),
        ("127.1", "not an IP address"),  # getaddrinfo's shorthand: resolved, then checked
        ("", "not an IP address"),
    ],
)
def test_forbidden_address(ip: str, why: str | None) -> None:
    assert forbidden_address(ip) == why


@pytest.mark.parametrize(
    ("url", "endpoint"),
    [
        ("ws://bots.example.com/voice", BotEndpoint("ws", "bots.example.com", 80, "/voice")),
        ("wss://bots.example.com", BotEndpoint("wss", "bots.example.com", 443, "")),
        ("WSS://Bots.Example.COM.:8443/v", BotEndpoint("wss", "bots.example.com", 8443, "/v")),
        ("ws://u:p@127.0.0.1:9/x?a=1", BotEndpoint("ws", "127.0.0.1", 9, "/x")),
        ("ws://[::1]:9/", BotEndpoint("ws", "::1", 9, "/")),
        ("ws://[0:0::1]/", BotEndpoint("ws", "::1", 80, "/")),
        ("wss://bücher.example/", BotEndpoint("wss", "xn--bcher-kva.example", 443, "/")),
    ],
)
def test_parse_bot_url(url: str, endpoint: BotEndpoint) -> None:
    assert parse_bot_url(url) == endpoint


@pytest.mark.parametrize(
    "url",
    [
        "http://bots.example.com/",
        "bots.example.com",
        "wss:///path",
        "wss://h:99999/",
        "wss://h:port/",
        "wss://h /",
        "wss://h/\n",
        "wss://h\t.example.com/",
        "",
    ],
)
def test_parse_bot_url_refuses(url: str) -> None:
    with pytest.raises(ValueError, match="bot URL") as refused:
        parse_bot_url(url + "?token=S3CRET")
    assert "S3CRET" not in str(refused.value)


PATTERNS = (
    "bots.example.com",
    "*.bots.example.net",
    "voice.example.org:8443",
    "[2001:db8::5]:9000",
    "wss://api.example.io/voice/",
    "wss://api.example.io/exact",
)


@pytest.mark.parametrize(
    ("url", "allowed"),
    [
        # a host: any scheme, any port
        ("wss://bots.example.com/", True),
        ("ws://bots.example.com:9999/x", True),
        ("wss://BOTS.example.com./x", True),
        ("wss://u:p@bots.example.com/", True),
        ("wss://bots.example.com.evil.com/", False),
        ("wss://evilbots.example.com/", False),
        ("wss://bots.example.com@evil.com/", False),  # userinfo is not the host
        ("wss://a.bots.example.com/", False),
        # *. : subdomains, not the domain itself
        ("wss://a.bots.example.net/", True),
        ("wss://a.b.bots.example.net:1/", True),
        ("wss://bots.example.net/", False),
        ("wss://abots.example.net/", False),
        # host:port
        ("wss://voice.example.org:8443/", True),
        ("wss://voice.example.org/", False),
        ("ws://voice.example.org:8443/", True),
        ("wss://[2001:db8::5]:9000/", True),
        ("wss://[2001:db8:0::5]:9000/", True),
        ("wss://[2001:db8::5]:9001/", False),
        # URL prefix: scheme, host, port, path
        ("wss://api.example.io/voice/", True),
        ("wss://api.example.io/voice/en?x=1", True),
        ("wss://api.example.io:443/voice/en", True),
        ("ws://api.example.io/voice/en", False),
        ("wss://api.example.io:8443/voice/en", False),
        ("wss://api.example.io/voicemail", False),
        ("wss://api.example.io/voice", False),
        ("wss://api.example.io/voice/../admin", False),
        ("wss://api.example.io/voice/%2e%2e/admin", False),
        ("wss://api.example.io/exact", True),
        ("wss://api.example.io/exact/sub", True),
        ("wss://api.example.io/exactly", False),
        # not URLs
        ("http://bots.example.com/", False),
        ("wss://bots.example.com:99999/", False),
        ("", False),
    ],
)
def test_allowed_by_patterns(url: str, allowed: bool) -> None:
    assert allowed_by_patterns(url, PATTERNS) is allowed


@pytest.mark.parametrize(
    ("url", "patterns", "allowed"),
    [
        ("wss://127.0.0.1:9/", ("127.0.0.1",), True),
        ("wss://127.0.0.1:9/", ("127.0.0.1:9",), True),
        ("wss://127.0.0.1:9/", ("127.0.0.1:10",), False),
        ("wss://[::1]:9/", ("::1",), True),
        ("wss://[::1]:9/", ("[::1]",), True),
        ("wss://h/", (), False),
        ("wss://h/", ("", "  "), False),
        ("wss://h/", ("*.",), False),
        ("wss://h/", ("h:notaport",), False),
        ("wss://h/", ("[h",), False),
        ("wss://h/", ("wss://",), False),
        ("wss://x.h:443/", ("*.h:443",), True),
        ("wss://x.h:444/", ("*.h:443",), False),
        ("wss://h/", (" h ",), True),
    ],
)
def test_pattern_forms(url: str, patterns: tuple[str, ...], allowed: bool) -> None:
    assert allowed_by_patterns(url, patterns) is allowed


@pytest.mark.parametrize(
    ("setting", "loopback", "allowed"),
    [
        ("allow", False, True),
        ("allow", True, True),
        ("deny", True, False),
        ("deny", False, False),
        ("auto", True, True),
        ("auto", False, False),
    ],
)
def test_private_targets(setting: str, loopback: bool, allowed: bool) -> None:
    assert private_targets_allowed(setting, loopback) is allowed
