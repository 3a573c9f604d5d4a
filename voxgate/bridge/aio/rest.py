"""Carrying out carrier REST actions (hangup, transfer) with httpx.

The requests themselves are built, sans-I/O, by :mod:`voxgate.bridge.carriers.rest`
(Twilio's "Update a Call", Telnyx's Call Control actions); this module only
sends them and turns the answer into "done" or a reason it failed.
"""

from __future__ import annotations

from dataclasses import dataclass

import httpx

from voxgate.bridge.call_api import CarrierHangup, CarrierTransfer
from voxgate.bridge.carriers import rest
from voxgate.config import TelnyxConfig, TwilioConfig

TIMEOUT = httpx.Timeout(5.0)


@dataclass(frozen=True, slots=True)
class CarrierRest:
    """The credentials and client that act on one carrier's calls."""

    carrier: str
    call_id: str  # Twilio CallSid, Telnyx call_control_id
    client: httpx.AsyncClient
    twilio: TwilioConfig | None = None
    telnyx: TelnyxConfig | None = None

    def request(self, action: CarrierHangup | CarrierTransfer) -> rest.HttpRequest:
        if self.twilio is not None:
            sid, token, base = self.twilio.account_sid, self.twilio.auth_token, self.twilio.api_base
            if isinstance(action, CarrierTransfer):
                return rest.twilio_transfer(sid, token, self.call_id, action.target, api_base=base)
            return rest.twilio_hangup(sid, token, self.call_id, api_base=base)
        assert self.telnyx is not None
        key, base = self.telnyx.api_key, self.telnyx.api_base
        if isinstance(action, CarrierTransfer):
            return rest.telnyx_transfer(key, self.call_id, action.target, api_base=base)
        return rest.telnyx_hangup(key, self.call_id, api_base=base)

    async def __call__(self, action: CarrierHangup | CarrierTransfer) -> str | None:
        request = self.request(action)
        try:
            response = await self.client.request(
                request.method,
                request.url,
                headers=dict(request.headers),
                content=request.body,
                timeout=TIMEOUT,
            )
        except httpx.HTTPError as error:
            return f"{self.carrier} API unreachable: {error!r}"
        if response.is_success:
            return None
        return f"{self.carrier} API answered {response.status_code}: {response.text[:200]}"
