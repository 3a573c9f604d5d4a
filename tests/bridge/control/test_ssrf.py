"""The webhook URL guard: the bot URL checks (one set of range rules) for http/https.

Names are resolved by an injected resolver (only loopback is reachable here), or are
literal addresses, which need no DNS.
"""

from __future__ import annotations

import asyncio
import ipaddress
from collections.abc import Awaitable, Callable

import pytest

from voxgate.bridge.aio.botaddr import VettedTarget
from voxgate.bridge.botaddr import forbidden_address
from voxgate.bridge.control.ssrf import WebhookAddressRefused, vet_webhook_url
from voxgate.errors import VoxgateError


def dns(answers: dict[str, list[str]]) -> Callable[[str, int], Awaitable[list[str]]]:
    async def resolve(host: str, port: int) -> list[str]:
        if host not in answers:
            raise OSError(-2, "Name or service not known")
        return answers[host]

    return resolve


DNS = dns(
    {
        "hooks.example.com": ["93.184.215.14", "2606:2800:21f:cb07:6820:80da:af6b:8b2c"],
        "inside.example.com": ["10.1.2.3"],
        "mixed.example.com": ["93.184.215.14", "169.254.169.254"],
        "rebind.example.com": ["127.0.0.1"],
    }
)


def vet(url: str, *, private: bool = False) -> VettedTarget | WebhookAddressRefused:
    async def scenario() -> VettedTarget | WebhookAddressRefused:
        try:
            return await vet_webhook_url(url, private_allowed=private, resolve=DNS, timeout=5)
        except WebhookAddressRefused as refused:
            return refused

    return asyncio.run(asyncio.wait_for(scenario(), 20))


def refused(result: object) -> WebhookAddressRefused:
    assert isinstance(result, WebhookAddressRefused), result
    return result


def test_refusals_are_voxgate_errors() -> None:
    assert issubclass(WebhookAddressRefused, VoxgateError)
    assert issubclass(WebhookAddressRefused, ValueError)


def test_a_public_https_url_is_pinned_to_its_first_address() -> None:
    target = vet("https://hooks.example.com/voxgate?token=abc")
    assert target == VettedTarget(
        "hooks.example.com",
        443,
        "93.184.215.14",
        True,
        ("93.184.215.14", "2606:2800:21f:cb07:6820:80da:af6b:8b2c"),
    )


@pytest.mark.parametrize(
    ("url", "host", "port", "secure"),
    [
        ("http://hooks.example.com/x", "hooks.example.com", 80, False),
        ("HTTPS://Hooks.Example.COM.:8443/x", "hooks.example.com", 8443, True),
        ("https://93.184.215.14/x", "93.184.215.14", 443, True),
        ("http://[2606:2800:21f:cb07:6820:80da:af6b:8b2c]:81/", None, 81, False),
    ],
)
def test_schemes_and_ports(url: str, host: str | None, port: int, secure: bool) -> None:
    target = vet(url)
    assert isinstance(target, VettedTarget), target
    assert (target.port, target.secure) == (port, secure)
    if host is not None:
        assert target.host == host


@pytest.mark.parametrize(
    "address",
    [
        "127.0.0.1",
        "127.8.9.10",
        "10.0.0.1",
        "172.16.5.4",
        "192.168.1.1",
        "169.254.169.254",
        "100.64.0.1",
        "0.0.0.0",
        "224.0.0.1",
        "255.255.255.255",
        "240.0.0.1",
        "::1",
        "::",
        "fd00::1",
        "fe80::1",
        "ff02::1",
        "::ffff:127.0.0.1",
        "64:ff9b::a9fe:a9fe",
        "2002:7f00:1::",
    ],
)
def test_literal_private_addresses_are_refused_for_good(address: str) -> None:
    bracketed = f"[{address}]" if ":" in address else address
    result = refused(vet(f"https://{bracketed}:8443/hook"))
    why = forbidden_address(address)
    assert why is not None
    assert str(result).endswith(why)  # the very reason the bot URL check gives
    assert result.permanent  # an address literal cannot change: dead at once
    target = vet(f"https://{bracketed}:8443/hook", private=True)
    assert isinstance(target, VettedTarget)
    assert ipaddress.ip_address(target.address) == ipaddress.ip_address(address)


@pytest.mark.parametrize(
    ("url", "why"),
    [
        ("https://inside.example.com/", "inside.example.com resolves to 10.1.2.3: private"),
        ("https://mixed.example.com/", "169.254.169.254: cloud metadata service"),
        ("http://rebind.example.com:9/", "rebind.example.com resolves to 127.0.0.1: loopback"),
    ],
)
def test_names_resolving_inside_are_refused_for_now(url: str, why: str) -> None:
    result = refused(vet(url))
    assert why in str(result)
    assert not result.permanent  # the name's answer may change: retried
    assert isinstance(vet(url, private=True), VettedTarget)


def test_localhost_by_the_system_resolver() -> None:
    async def scenario() -> None:
        with pytest.raises(WebhookAddressRefused, match="loopback"):
            await vet_webhook_url("http://localhost:9/hook", private_allowed=False)
        target = await vet_webhook_url("http://localhost:9/hook", private_allowed=True)
        assert target.address in {"127.0.0.1", "::1"}

    asyncio.run(asyncio.wait_for(scenario(), 20))


def test_unresolvable_names_are_retried_not_dead() -> None:
    result = refused(vet("https://nowhere.invalid/hook"))
    assert "does not resolve" in str(result)
    assert not result.permanent


@pytest.mark.parametrize(
    "url",
    [
        "ws://hooks.example.com/",
        "wss://hooks.example.com/",
        "ftp://hooks.example.com/",
        "file:///etc/passwd",
        "gopher://hooks.example.com:70/",
        "hooks.example.com/hook",
        "https:///no-host",
        "https://hooks.example.com:99999/",
        "https://hooks.example.com:0x50/",
        "https://hooks.example.com/a b",
        "https://hooks.example.com/\r\nX-Injected: 1",
        "",
    ],
)
def test_urls_that_can_never_be_sent_to(url: str) -> None:
    result = refused(vet(url, private=True))
    assert result.permanent
    assert "webhook URL" in str(result)


def test_refusals_name_no_secret() -> None:
    for url in (
        "https://user:pa55word@inside.example.com/hook?token=s3cr3t",
        "ftp://user:pa55word@hooks.example.com/hook?token=s3cr3t",
        "https://user:pa55word@hooks.example.com:bad/hook?token=s3cr3t",
    ):
        text = str(refused(vet(url)))
        assert "pa55word" not in text and "s3cr3t" not in text
