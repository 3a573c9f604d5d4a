"""Carrying out carrier REST actions (hangup, transfer) with httpx.

The requests themselves are built, sans-I/O, by the carrier's registry entry
(:mod:`voxgate.bridge.carriers.registry`, with :mod:`voxgate.bridge.carriers.rest`);
this module only sends them and turns the answer into "done" or a reason it
failed. A request that cannot be built (a carrier that cannot transfer, an
empty target) is a failure too, never an exception.
"""

from __future__ import annotations

from dataclasses import dataclass

import httpx

from voxgate.bridge.call_api import CarrierHangup, CarrierTransfer
from voxgate.bridge.carriers import rest
from voxgate.bridge.carriers.registry import CarrierSpec
from voxgate.config import Config
from voxgate.errors import ConfigError, ProtocolError

TIMEOUT = httpx.Timeout(5.0)


@dataclass(frozen=True, slots=True)
class CarrierRest:
    """The credentials and client that act on one call of one carrier."""

    carrier: CarrierSpec
    config: Config
    call_id: str  # the carrier's REST id: Twilio CallSid, Telnyx call_control_id, Plivo callId
    client: httpx.AsyncClient

    def request(self, action: CarrierHangup | CarrierTransfer) -> rest.HttpRequest:
        """The request for ``action``; raises ProtocolError or ConfigError if there is none."""
        return self.carrier.rest_request(self.config, self.call_id, action)

    async def __call__(self, action: CarrierHangup | CarrierTransfer) -> str | None:
        """None once the carrier has done ``action``, else why it was not done."""
        name = self.carrier.name
        try:
            request = self.request(action)
        except (ProtocolError, ConfigError) as error:
            return f"{name} cannot do this: {error}"
        try:
            response = await self.client.request(
                request.method,
                request.url,
                headers=dict(request.headers),
                content=request.body,
                timeout=TIMEOUT,
            )
        except httpx.HTTPError as error:
            return f"{name} API unreachable: {error!r}"
        if response.is_success:
            return None
        return f"{name} API answered {response.status_code}: {response.text[:200]}"
