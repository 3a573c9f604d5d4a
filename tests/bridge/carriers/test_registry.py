"""The carrier registry: one entry per carrier, and the REST adapter that uses it."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable

import httpx
import pytest

from voxgate.bridge.aio.rest import CarrierRest
from voxgate.bridge.call_api import CarrierHangup, CarrierTransfer
from voxgate.bridge.carriers import rest
from voxgate.bridge.carriers._stream import CarrierDialect
from voxgate.bridge.carriers.plivo import PlivoDialect
from voxgate.bridge.carriers.registry import CARRIERS, CarrierSpec, Upgrade, carrier
from voxgate.bridge.carriers.telnyx import TelnyxDialect
from voxgate.bridge.carriers.twilio import TwilioDialect
from voxgate.config import Config, PlivoConfig, TelnyxConfig, TwilioConfig
from voxgate.errors import ConfigError

AC = "AC25e16e9a716a4a1786a7c83f58e30482"
CA = "CA2ab4f1b9e0bb5f4c3d8d1f2e6a7c9b01"
CONFIG = Config(
    twilio=TwilioConfig(account_sid=AC, auth_token="twilio-token", api_base="http://tw.test"),
    telnyx=TelnyxConfig(api_key="KEYtelnyx", api_base="http://tx.test"),
    plivo=PlivoConfig(auth_id="MAPLIVO", auth_token="plivo-token", api_base="http://pl.test"),
)
URL = "wss://vx.example.com/v1/streams/{}"


def upgrade(name: str, headers: dict[str, str] | None = None) -> Upgrade:
    return Upgrade(URL.format(name), f"/v1/streams/{name}", {}, headers or {})


# --- the entries -----------------------------------------------------------------------


def test_every_carrier_has_one_entry_named_as_its_url_segment_and_dialect() -> None:
    assert list(CARRIERS) == ["twilio", "telnyx", "plivo"]
    dialects: dict[str, type[CarrierDialect]] = {
        "twilio": TwilioDialect,
        "telnyx": TelnyxDialect,
        "plivo": PlivoDialect,
    }
    for name, spec in CARRIERS.items():
        assert spec.name == name == carrier(name).name
        dialect = spec.make_dialect()
        assert type(dialect) is dialects[name]
        assert dialect.name == name
        assert spec.make_dialect() is not dialect  # one per stream


@pytest.mark.parametrize("name", ["", "Twilio", "vonage", "../twilio", "x" * 1000])
def test_an_unknown_carrier_is_a_config_error_naming_the_known_ones(name: str) -> None:
    with pytest.raises(ConfigError, match="twilio, telnyx, plivo") as caught:
        carrier(name)
    assert len(str(caught.value)) < 200


def test_policy_flags_and_token_headers() -> None:
    assert all(spec.echoes_marks for spec in CARRIERS.values())
    assert carrier("telnyx").token_header == "x-telnyx-streaming-auth-token"
    assert carrier("twilio").token_header is None
    assert carrier("plivo").subprotocol == "audio.plivo.com"
    assert carrier("twilio").subprotocol is None


@pytest.mark.parametrize("name", ["twilio", "telnyx", "plivo"])
def test_rest_is_enabled_by_the_carriers_own_credentials(name: str) -> None:
    spec = carrier(name)
    assert spec.rest_enabled(CONFIG)
    assert not spec.rest_enabled(Config())


def test_upgrade_headers_are_lower_case_and_frozen() -> None:
    seen = Upgrade("wss://h/p?a=1", "/p", {"a": "1"}, {"X-Twilio-Signature": "s"})
    assert dict(seen.headers) == {"x-twilio-signature": "s"}
    with pytest.raises(TypeError):
        seen.query["b"] = "2"  # type: ignore[index]


# --- signatures ------------------------------------------------------------------------


def test_twilio_signature_is_checked_and_demanded_with_an_auth_token() -> None:
    spec = carrier("twilio")
    assert spec.signature_valid is not None
    signature = rest.twilio_signature("twilio-token", URL.format("twilio"))
    assert spec.signature_valid(CONFIG, upgrade("twilio", {"X-Twilio-Signature": signature}))
    assert not spec.signature_valid(CONFIG, upgrade("twilio", {"X-Twilio-Signature": "bad"}))
    assert not spec.signature_valid(CONFIG, upgrade("twilio"))
    assert not spec.signature_valid(Config(), upgrade("twilio", {"X-Twilio-Signature": ""}))
    assert spec.requires_signature(CONFIG)
    assert not spec.requires_signature(Config())


def test_plivo_signature_is_checked_but_not_demanded() -> None:
    spec = carrier("plivo")
    assert spec.signature_valid is not None
    nonce = "05429567804466091622"
    good = rest.plivo_signature("plivo-token", URL.format("plivo"), nonce)
    headers = {"X-Plivo-Signature-V3": good, "X-Plivo-Signature-V3-Nonce": nonce}
    assert spec.signature_valid(CONFIG, upgrade("plivo", headers))
    assert not spec.signature_valid(
        CONFIG, upgrade("plivo", {**headers, "X-Plivo-Signature-V3": "x"})
    )
    assert not spec.signature_valid(CONFIG, upgrade("plivo", {"X-Plivo-Signature-V3": good}))
    assert not spec.signature_valid(Config(), upgrade("plivo", headers))
    assert not spec.requires_signature(CONFIG)  # Plivo's docs do not say the upgrade is signed


def test_telnyx_has_no_signature_of_its_own() -> None:
    assert carrier("telnyx").signature_valid is None
    assert not carrier("telnyx").requires_signature(CONFIG)


# --- REST requests through the registry ------------------------------------------------

REQUESTS: list[tuple[str, CarrierHangup | CarrierTransfer, str, str]] = [
    ("twilio", CarrierHangup(), "POST", f"http://tw.test/2010-04-01/Accounts/{AC}/Calls/{CA}.json"),
    ("twilio", CarrierTransfer("+15550100"), "POST",
     f"http://tw.test/2010-04-01/Accounts/{AC}/Calls/{CA}.json"),
    ("telnyx", CarrierHangup(), "POST", f"http://tx.test/v2/calls/{CA}/actions/hangup"),
    ("telnyx", CarrierTransfer("+15550100"), "POST",
     f"http://tx.test/v2/calls/{CA}/actions/transfer"),
    ("plivo", CarrierHangup(), "DELETE", f"http://pl.test/v1/Account/MAPLIVO/Call/{CA}/"),
]  # fmt: skip


@pytest.mark.parametrize(("name", "action", "method", "url"), REQUESTS)
def test_rest_requests_are_built_from_the_configuration(
    name: str, action: CarrierHangup | CarrierTransfer, method: str, url: str
) -> None:
    request = carrier(name).rest_request(CONFIG, CA, action)
    assert (request.method, request.url) == (method, url)


Handler = Callable[[httpx.Request], httpx.Response]


def act(
    spec: CarrierSpec,
    action: CarrierHangup | CarrierTransfer,
    handler: Handler,
    config: Config = CONFIG,
) -> str | None:
    async def run() -> str | None:
        async with httpx.AsyncClient(transport=httpx.MockTransport(handler)) as client:
            return await CarrierRest(spec, config, CA, client)(action)

    return asyncio.run(run())


def test_carrier_rest_sends_the_built_request_and_reports_success() -> None:
    seen: list[httpx.Request] = []

    def answer(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(204 if request.method == "DELETE" else 200, json={})

    for name, action, method, url in REQUESTS:
        assert act(carrier(name), action, answer) is None
        assert (seen[-1].method, str(seen[-1].url)) == (method, url)
    assert json.loads(seen[3].content) == {"to": "+15550100"}


def test_carrier_rest_reports_failures_instead_of_raising() -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        return httpx.Response(404, text='{"error": "not found"}')

    def unreachable(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("no route", request=request)

    def never(request: httpx.Request) -> httpx.Response:
        raise AssertionError("no request may be sent")

    plivo, twilio = carrier("plivo"), carrier("twilio")
    assert act(plivo, CarrierHangup(), refuse) == 'plivo API answered 404: {"error": "not found"}'
    assert "unreachable" in (act(twilio, CarrierHangup(), unreachable) or "")
    failure = act(plivo, CarrierTransfer("+15550100"), never)
    assert (
        failure is not None and failure.startswith("plivo cannot do this") and "aleg_url" in failure
    )
    assert "empty" in (act(twilio, CarrierTransfer("  "), never) or "")
    assert "must not be empty" in (act(twilio, CarrierHangup(), never, Config()) or "")
