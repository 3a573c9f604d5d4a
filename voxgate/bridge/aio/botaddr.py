"""Vetting a per-call bot URL: resolve its host and check every address.

The decisions are in :mod:`voxgate.bridge.botaddr`; this module resolves the
name (``loop.getaddrinfo``, or a resolver passed in by tests) and returns the
one address to connect to. Connect to :attr:`VettedTarget.address`, never to
the name again, so that a second DNS answer cannot differ from the one that
was checked (DNS rebinding)::

    target = await vet_bot_url(url, allow=bot.allow, private_allowed=...)
    # the bridge (botsocket.py): a socket connected to target.address, handed to
    # picows with the URL, no proxy and no redirect; or, with websockets:
    await websockets.asyncio.client.connect(url, **target.connect_kwargs(), ...)

The URL keeps the name, so the ``Host`` header and the TLS server name (SNI
and certificate check) are those of the URL.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Final

from voxgate.bridge.botaddr import (
    BotEndpoint,
    allowed_by_patterns,
    forbidden_address,
    parse_bot_url,
)
from voxgate.errors import VoxgateError

Resolver = Callable[[str, int], Awaitable[list[str]]]
"""``(host, port) -> addresses``; raises OSError when the name does not resolve."""

RESOLVE_TIMEOUT: Final = 5.0
CLOSE_REASON: Final = "bot address not allowed"


class BotAddressRefused(VoxgateError):  # noqa: N818 (a refusal, not a fault)
    """A per-call bot URL that may not be dialled; ``str()`` says why, without secrets.

    :attr:`close_reason` is the fixed text to close the carrier stream with
    (docs/CONFIG.md); the detail is for the log.
    """

    close_reason: str = CLOSE_REASON


class BotAddressUnresolved(BotAddressRefused):
    """The bot's host name did not resolve (in time): nothing could be checked."""

    close_reason = "bot address not resolved"


@dataclass(frozen=True, slots=True)
class VettedTarget:
    """Where to reach a vetted bot: the URL's host name and port, and the address checked."""

    host: str
    port: int
    address: str  # the one address to connect to
    secure: bool  # wss:// (https:// for a webhook)
    addresses: tuple[str, ...] = ()  # every address the name resolved to (all vetted)

    def connect_kwargs(self) -> dict[str, object]:
        """Keyword arguments for ``websockets`` ``connect``: this address, no proxy.

        With ``host`` given, websockets refuses cross-origin redirects (a bot
        answering 302 to ``ws://127.0.0.1/`` gets nowhere); ``proxy=None``
        stops a ``*_PROXY`` variable from resolving the name again.
        """
        kwargs: dict[str, object] = {"host": self.address, "port": self.port, "proxy": None}
        if self.secure:
            kwargs["server_hostname"] = self.host
        return kwargs


async def system_resolver(host: str, port: int) -> list[str]:
    """The addresses of ``host``, in the order the system prefers (RFC 6724), without repeats."""
    loop = asyncio.get_running_loop()
    infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


async def vet_bot_url(
    url: str,
    *,
    allow: tuple[str, ...],
    private_allowed: bool,
    resolve: Resolver = system_resolver,
    timeout: float = RESOLVE_TIMEOUT,
) -> VettedTarget:
    """Check a per-call bot URL (docs/CONFIG.md, "Which bots a call may reach").

    With ``allow`` set the URL must match a pattern, and may then reach any
    address; otherwise every address its host resolves to must be public,
    unless ``private_allowed``. Raises :class:`BotAddressRefused`, or
    :class:`BotAddressUnresolved` when the name does not resolve within
    ``timeout`` seconds.
    """
    try:
        endpoint = parse_bot_url(url)
    except ValueError as error:
        raise BotAddressRefused(str(error)) from None
    matched = bool(allow) and allowed_by_patterns(url, allow)
    if allow and not matched:
        raise BotAddressRefused(f"{endpoint.host}:{endpoint.port} does not match bot.allow")
    return await vet_endpoint(
        endpoint, private_allowed=matched or private_allowed, resolve=resolve, timeout=timeout
    )


async def vet_endpoint(
    endpoint: BotEndpoint,
    *,
    private_allowed: bool,
    resolve: Resolver = system_resolver,
    timeout: float = RESOLVE_TIMEOUT,
) -> VettedTarget:
    """Resolve a parsed endpoint and check every address (unless ``private_allowed``); the
    same errors as :func:`vet_bot_url`. Webhook URLs come here too
    (:mod:`voxgate.bridge.control.ssrf`)."""
    addresses = await _addresses(endpoint.host, endpoint.port, resolve, timeout)
    if not private_allowed:
        for address in addresses:
            why = forbidden_address(address)
            if why is not None:
                raise BotAddressRefused(f"{endpoint.host} resolves to {address}: {why}")
    return VettedTarget(endpoint.host, endpoint.port, addresses[0], endpoint.secure, addresses)


async def _addresses(host: str, port: int, resolve: Resolver, timeout: float) -> tuple[str, ...]:
    try:
        return (str(ipaddress.ip_address(host)),)  # a literal address: no DNS
    except ValueError:
        pass
    try:
        async with asyncio.timeout(timeout):
            addresses = tuple(await resolve(host, port))
    except TimeoutError:
        raise BotAddressUnresolved(f"resolving {host} took over {timeout:g} s") from None
    except (OSError, UnicodeError) as error:
        raise BotAddressUnresolved(f"{host} does not resolve: {error}") from None
    if not addresses:
        raise BotAddressUnresolved(f"{host} resolves to no address")
    return addresses
