"""The guard for outgoing webhook URLs (server-side request forgery).

Whoever may subscribe a webhook, or give a call a ``webhook_url``, names a URL that
voxgate will POST to from inside its network. The URL goes through the same checks as a
bot's ``wss_url`` (:mod:`voxgate.bridge.botaddr` decides, :mod:`voxgate.bridge.aio.botaddr`
resolves; the range rules exist once, there)::

    url --parse_endpoint--> not http:// or https:// with a host,
        |                   bad port, whitespace/control chars --> refused, permanent
        v
    resolve the host (literal address: no DNS) --fails/times out--> refused (unresolved)
        v
    any address loopback, private, link-local, metadata, multicast, reserved...
        | and not private_allowed --> refused (permanent for a literal address,
        |                             not for a name: its DNS answer may change)
        v
    VettedTarget: host and port of the URL, the one checked address to connect to

The caller must connect to :attr:`VettedTarget.address` (the outbox worker pins it in
its transport, :mod:`voxgate.bridge.aio.outbox`) so that a second DNS answer cannot
differ from the checked one (DNS rebinding). Redirects are never followed.
"""

from __future__ import annotations

import ipaddress
from typing import Final

from voxgate.bridge.aio.botaddr import (
    RESOLVE_TIMEOUT,
    BotAddressRefused,
    BotAddressUnresolved,
    Resolver,
    VettedTarget,
    system_resolver,
    vet_endpoint,
)
from voxgate.bridge.botaddr import parse_endpoint
from voxgate.errors import VoxgateError

WEB_PORTS: Final = {"http": 80, "https": 443}  # RFC 9110 sections 4.2.1 and 4.2.2


class WebhookAddressRefused(VoxgateError, ValueError):  # noqa: N818 (a refusal, not a fault)
    """A webhook URL voxgate may not POST to; ``str()`` says why, without secrets.

    ``permanent``: no later try can succeed (a malformed URL, a literal private
    address), so a delivery to it is dead at once; otherwise (a name that does not
    resolve, or resolves to a refused address today) the delivery is retried.
    """

    def __init__(self, message: str, *, permanent: bool) -> None:
        super().__init__(message)
        self.permanent = permanent


async def vet_webhook_url(
    url: str,
    *,
    private_allowed: bool,
    resolve: Resolver = system_resolver,
    timeout: float = RESOLVE_TIMEOUT,
) -> VettedTarget:
    """Check a webhook URL; the target to connect to, or :class:`WebhookAddressRefused`."""
    try:
        endpoint = parse_endpoint(url, WEB_PORTS, "webhook URL")
    except ValueError as error:
        raise WebhookAddressRefused(str(error), permanent=True) from None
    try:
        return await vet_endpoint(
            endpoint, private_allowed=private_allowed, resolve=resolve, timeout=timeout
        )
    except BotAddressUnresolved as error:
        raise WebhookAddressRefused(str(error), permanent=False) from None
    except BotAddressRefused as error:
        raise WebhookAddressRefused(str(error), permanent=_literal(endpoint.host)) from None


def _literal(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True
