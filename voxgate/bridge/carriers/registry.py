"""The carriers voxgate serves, one entry each (sans-I/O).

A :class:`CarrierSpec` says everything the I/O adapter needs to serve one
carrier's media streams at ``/v1/streams/{name}``: how to make the stream's
dialect, how to check the carrier's own signature on the WebSocket upgrade
(and whether the configuration demands one), which header carries
``server.token`` if not the ``?token=`` query parameter, which WebSocket
subprotocol to accept, whether the carrier echoes marks, and how to build
its REST requests (hangup, transfer) from the configuration. The shared
token check and every socket stay with the adapter.

Adding a carrier is one module (its :class:`~._stream.CarrierDialect`
subclass and REST builders in :mod:`.rest`) and one entry in
:data:`CARRIERS`; nothing else branches on the carrier's name.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Final

from voxgate.bridge.call_api import CarrierHangup, CarrierTransfer
from voxgate.bridge.carriers import rest
from voxgate.bridge.carriers._stream import CarrierDialect
from voxgate.bridge.carriers.plivo import PlivoDialect
from voxgate.bridge.carriers.rest import HttpRequest
from voxgate.bridge.carriers.telnyx import TelnyxDialect
from voxgate.bridge.carriers.twilio import TwilioDialect
from voxgate.config import Config
from voxgate.errors import ConfigError

CarrierAction = CarrierHangup | CarrierTransfer


@dataclass(frozen=True, slots=True)
class Upgrade:
    """What a carrier's WebSocket upgrade request carried, as data.

    ``url`` is the URL the carrier signed: ``server.public_url`` + path and
    query when that is set, else the URL as the server saw it
    (``scheme://host/path?query``). Header names are lower case.
    """

    url: str
    path: str
    query: Mapping[str, str]
    headers: Mapping[str, str]

    def __post_init__(self) -> None:
        object.__setattr__(self, "query", MappingProxyType(dict(self.query)))
        lower = {name.lower(): value for name, value in self.headers.items()}
        object.__setattr__(self, "headers", MappingProxyType(lower))


def _never(config: Config) -> bool:
    return False


@dataclass(frozen=True, slots=True)
class CarrierSpec:
    """One carrier; see the module docstring."""

    name: str  # the URL segment: /v1/streams/{name}; also metric labels and logs
    make_dialect: Callable[[], CarrierDialect]
    echoes_marks: bool  # the carrier echoes a mark once the audio before it has played
    rest_enabled: Callable[[Config], bool]  # its credentials are configured
    rest_request: Callable[[Config, str, CarrierAction], HttpRequest]  # str: its call id
    signature_valid: Callable[[Config, Upgrade], bool] | None = None  # None: no signature
    requires_signature: Callable[[Config], bool] = field(default=_never)
    token_header: str | None = None  # a header the carrier sends server.token in
    subprotocol: str | None = None  # to accept when the carrier offers it


# --- Twilio -----------------------------------------------------------------------------


def _twilio_request(config: Config, call_id: str, action: CarrierAction) -> HttpRequest:
    twilio = config.twilio
    sid, token, base = twilio.account_sid, twilio.auth_token, twilio.api_base
    if isinstance(action, CarrierTransfer):
        return rest.twilio_transfer(sid, token, call_id, action.target, api_base=base)
    return rest.twilio_hangup(sid, token, call_id, api_base=base)


def _twilio_signed(config: Config, upgrade: Upgrade) -> bool:
    signature = upgrade.headers.get("x-twilio-signature", "")
    token = config.twilio.auth_token
    return bool(signature) and rest.twilio_signature_valid(token, upgrade.url, signature)


# --- Telnyx -----------------------------------------------------------------------------


def _telnyx_request(config: Config, call_id: str, action: CarrierAction) -> HttpRequest:
    key, base = config.telnyx.api_key, config.telnyx.api_base
    if isinstance(action, CarrierTransfer):
        return rest.telnyx_transfer(key, call_id, action.target, api_base=base)
    return rest.telnyx_hangup(key, call_id, api_base=base)


# --- Plivo ------------------------------------------------------------------------------


def _plivo_request(config: Config, call_id: str, action: CarrierAction) -> HttpRequest:
    plivo = config.plivo
    auth_id, token, base = plivo.auth_id, plivo.auth_token, plivo.api_base
    if isinstance(action, CarrierTransfer):
        return rest.plivo_transfer(auth_id, token, call_id, action.target, api_base=base)
    return rest.plivo_hangup(auth_id, token, call_id, api_base=base)


def _plivo_signed(config: Config, upgrade: Upgrade) -> bool:
    headers = upgrade.headers
    nonce = headers.get("x-plivo-signature-v3-nonce", "")
    signatures = headers.get("x-plivo-signature-v3", "")
    token = config.plivo.auth_token
    return bool(signatures) and rest.plivo_signature_valid(token, upgrade.url, nonce, signatures)


CARRIERS: Final[Mapping[str, CarrierSpec]] = MappingProxyType(
    {
        spec.name: spec
        for spec in (
            CarrierSpec(
                name="twilio",
                make_dialect=TwilioDialect,
                echoes_marks=True,
                rest_enabled=lambda config: config.twilio.enabled,
                rest_request=_twilio_request,
                signature_valid=_twilio_signed,
                requires_signature=lambda config: bool(config.twilio.auth_token),
            ),
            CarrierSpec(
                name="telnyx",
                make_dialect=TelnyxDialect,
                echoes_marks=True,
                rest_enabled=lambda config: config.telnyx.enabled,
                rest_request=_telnyx_request,
                token_header="x-telnyx-streaming-auth-token",
            ),
            CarrierSpec(
                name="plivo",
                make_dialect=PlivoDialect,
                echoes_marks=True,  # checkpoint -> playedStream
                rest_enabled=lambda config: config.plivo.enabled,
                rest_request=_plivo_request,
                signature_valid=_plivo_signed,  # accepted, not demanded: see carriers.rest
                subprotocol="audio.plivo.com",
            ),
        )
    }
)
"""Every carrier voxgate serves, by name."""


def carrier(name: str) -> CarrierSpec:
    """The carrier called ``name``; :class:`ConfigError` naming the known ones otherwise."""
    spec = CARRIERS.get(name)
    if spec is None:
        known = ", ".join(CARRIERS)
        raise ConfigError(f"unknown carrier {name[:40]!r}: voxgate serves {known}")
    return spec
