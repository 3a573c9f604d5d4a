"""Vetting per-call bot URLs: resolution, every address checked, the address pinned.

Only loopback is reachable here: names are resolved by an injected resolver,
or are ``localhost`` (resolved by the system, without DNS).
"""

from __future__ import annotations

import asyncio
import http
from collections.abc import Coroutine
from typing import Any

import pytest
from websockets.asyncio.client import connect
from websockets.asyncio.server import ServerConnection, serve
from websockets.datastructures import Headers
from websockets.http11 import Request, Response

from voxgate.bridge.aio.botaddr import (
    BotAddressRefused,
    BotAddressUnresolved,
    VettedTarget,
    vet_bot_url,
)
from voxgate.errors import VoxgateError


def run(scenario: Coroutine[Any, Any, None]) -> None:
    asyncio.run(asyncio.wait_for(scenario, 20), debug=True)


def vet(url: str, *, allow: tuple[str, ...] = (), private: bool = False, **kw: object) -> object:
    """The vetted target, or the refusal, of one URL."""

    async def scenario() -> object:
        try:
            return await vet_bot_url(url, allow=allow, private_allowed=private, **kw)  # type: ignore[arg-type]
        except BotAddressRefused as refused:
            return refused

    result: list[object] = []

    async def keep() -> None:
        result.append(await scenario())

    run(keep())
    return result[0]


class FakeDns:
    """A resolver answering from a table, counting the questions."""

    def __init__(self, answers: dict[str, list[str]]) -> None:
        self.answers = answers
        self.asked: list[tuple[str, int]] = []

    async def __call__(self, host: str, port: int) -> list[str]:
        self.asked.append((host, port))
        if host not in self.answers:
            raise OSError(-2, "Name or service not known")
        return self.answers[host]


def refusal(result: object) -> str:
    assert isinstance(result, BotAddressRefused), result
    return str(result)


def test_refusals_are_voxgate_errors_with_a_fixed_close_reason() -> None:
    assert issubclass(BotAddressRefused, VoxgateError)
    assert issubclass(BotAddressUnresolved, BotAddressRefused)
    assert BotAddressRefused("x").close_reason == "bot address not allowed"


@pytest.mark.parametrize(
    ("url", "why"),
    [
        ("ws://127.0.0.1:9/bot", "127.0.0.1 resolves to 127.0.0.1: loopback"),
        ("ws://[::1]:9/bot", "::1 resolves to ::1: loopback"),
        ("ws://169.254.169.254/latest/meta-data", "cloud metadata service"),
        ("ws://10.0.0.5/", "private (RFC 1918)"),
        ("ws://[::ffff:127.0.0.1]/", "loopback, as IPv4-mapped IPv6"),
        ("ws://0.0.0.0:8080/", "unspecified"),
        ("ws://localhost:9/bot", "localhost resolves to "),  # the system resolver, no DNS
    ],
)
def test_private_addresses_are_refused(url: str, why: str) -> None:
    assert why in refusal(vet(url))


def test_localhost_resolves_to_loopback_and_is_pinned_when_allowed() -> None:
    target = vet("ws://localhost:9/bot", private=True)
    assert isinstance(target, VettedTarget)
    assert target.host == "localhost" and target.port == 9 and not target.secure
    assert target.address in ("127.0.0.1", "::1")
    assert set(target.addresses) <= {"127.0.0.1", "::1"}


def test_literal_addresses_need_no_dns() -> None:
    dns = FakeDns({})
    target = vet("wss://93.184.216.34/voice", resolve=dns)
    assert target == VettedTarget("93.184.216.34", 443, "93.184.216.34", True, ("93.184.216.34",))
    assert dns.asked == []
    target = vet("ws://127.0.0.1:9/", private=True, resolve=dns)
    assert isinstance(target, VettedTarget) and target.address == "127.0.0.1"


def test_every_resolved_address_must_pass() -> None:
    dns = FakeDns(
        {
            "public.example": ["93.184.216.34", "2606:2800:220:1::1"],
            "mixed.example": ["93.184.216.34", "10.0.0.7"],
            "rebound.example": ["::ffff:169.254.169.254"],
        }
    )
    target = vet("wss://public.example:8443/v", resolve=dns)
    assert isinstance(target, VettedTarget)
    assert (target.host, target.port, target.address) == ("public.example", 8443, "93.184.216.34")
    assert target.addresses == ("93.184.216.34", "2606:2800:220:1::1")
    assert dns.asked == [("public.example", 8443)]
    assert refusal(vet("wss://mixed.example/", resolve=dns)) == (
        "mixed.example resolves to 10.0.0.7: private (RFC 1918)"
    )
    assert "metadata" in refusal(vet("wss://rebound.example/", resolve=dns))
    target = vet("wss://mixed.example/", private=True, resolve=dns)
    assert isinstance(target, VettedTarget) and target.address == "93.184.216.34"


def test_allow_list() -> None:
    dns = FakeDns({"bots.example.com": ["10.0.0.9"], "evil.example": ["93.184.216.34"]})
    allow = ("bots.example.com", "wss://api.example.io/voice/")
    # matching a pattern: any address, even a private one
    target = vet("wss://bots.example.com/v", allow=allow, resolve=dns)
    assert isinstance(target, VettedTarget) and target.address == "10.0.0.9"
    # not matching: refused before any resolution
    dns.asked.clear()
    why = refusal(vet("wss://evil.example/v", allow=allow, resolve=dns))
    assert why == "evil.example:443 does not match bot.allow"
    assert dns.asked == []
    assert "bot.allow" in refusal(vet("wss://api.example.io/admin", allow=allow, resolve=dns))


@pytest.mark.parametrize(
    "url",
    [
        "http://bots.example.com/",
        "wss://u:S3CRET@h:99999/?api_key=S3CRET",
        "wss://h/ S3CRET",
        "not a url S3CRET",
        "",
    ],
)
def test_malformed_urls_are_refused_without_echoing_them(url: str) -> None:
    why = refusal(vet(url, private=True, resolve=FakeDns({})))
    assert "bot URL" in why
    assert "S3CRET" not in why


def test_refusals_name_no_secret() -> None:
    url = "ws://user:S3CRET-pass@127.0.0.1:9/bot?api_key=S3CRET-key"
    assert "S3CRET" not in refusal(vet(url))
    dns = FakeDns({})
    why = refusal(vet("wss://user:S3CRET@nowhere.example/?token=S3CRET", resolve=dns))
    assert "S3CRET" not in why and "nowhere.example" in why


def test_unresolvable_names() -> None:
    unresolved = vet("wss://nowhere.example/", resolve=FakeDns({}))
    assert isinstance(unresolved, BotAddressUnresolved)
    assert unresolved.close_reason == "bot address not resolved"
    empty = vet("wss://empty.example/", resolve=FakeDns({"empty.example": []}))
    assert isinstance(empty, BotAddressUnresolved)

    async def never(host: str, port: int) -> list[str]:
        await asyncio.sleep(60)
        return []

    slow = vet("wss://slow.example/", resolve=never, timeout=0.05)
    assert isinstance(slow, BotAddressUnresolved) and "took over 0.05 s" in str(slow)


def test_connect_kwargs() -> None:
    plain = VettedTarget("bots.example.com", 80, "93.184.216.34", False)
    assert plain.connect_kwargs() == {"host": "93.184.216.34", "port": 80, "proxy": None}
    secure = VettedTarget("bots.example.com", 443, "2606:2800:220:1::1", True)
    assert secure.connect_kwargs() == {
        "host": "2606:2800:220:1::1",
        "port": 443,
        "proxy": None,
        "server_hostname": "bots.example.com",
    }


def test_the_pinned_address_is_the_one_connected_to() -> None:
    """The name never reaches the system resolver again: it could answer differently."""

    async def scenario() -> None:
        seen: list[str | None] = []

        async def handler(connection: ServerConnection) -> None:
            seen.append(connection.request.headers.get("Host") if connection.request else None)
            await connection.close()

        async with serve(handler, "127.0.0.1", 0) as server:
            port = next(iter(server.sockets)).getsockname()[1]
            url = f"ws://rebind.invalid:{port}/bot"  # .invalid never resolves (RFC 6761)
            dns = FakeDns({"rebind.invalid": ["127.0.0.1"]})
            target = await vet_bot_url(url, allow=(), private_allowed=True, resolve=dns)
            async with connect(url, **target.connect_kwargs(), open_timeout=5) as socket:  # type: ignore[arg-type]
                await socket.wait_closed()
        assert seen == [f"rebind.invalid:{port}"]

    run(scenario())


def test_a_pinned_connection_does_not_follow_a_redirect_elsewhere() -> None:
    async def scenario() -> None:
        async def handler(connection: ServerConnection) -> None:
            await connection.close()

        async def redirect(connection: ServerConnection, request: Request) -> Response:
            location = "ws://127.0.0.2:1/internal"
            headers = Headers([("Location", location), ("Content-Length", "0")])
            return Response(http.HTTPStatus.FOUND, "Found", headers)

        async with serve(handler, "127.0.0.1", 0, process_request=redirect) as server:
            port = next(iter(server.sockets)).getsockname()[1]
            url = f"ws://bot.invalid:{port}/"
            dns = FakeDns({"bot.invalid": ["127.0.0.1"]})
            target = await vet_bot_url(url, allow=(), private_allowed=True, resolve=dns)
            with pytest.raises(ValueError, match="cannot follow cross-origin redirect"):
                async with connect(url, **target.connect_kwargs(), open_timeout=5):  # type: ignore[arg-type]
                    pass

    run(scenario())
