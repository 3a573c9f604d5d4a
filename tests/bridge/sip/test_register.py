"""voxgate.bridge.sip.register: keeping voxgate registered with a trunk, in stepped time."""

from __future__ import annotations

from voxgate.bridge.sip import auth
from voxgate.bridge.sip.message import Request, Response, response_to
from voxgate.bridge.sip.register import (
    REFRESH_SHARE,
    RETRY_AFTER,
    Registration,
    RegistrationTarget,
)

TARGET = RegistrationTarget(
    registrar=("192.0.2.50", 5060),
    domain="trunk.example",
    username="vg",
    contact="<sip:voxgate@192.0.2.1:5060>",
    via=("192.0.2.1", 5060),
    expires=600,
)
CREDENTIALS = auth.Credentials("vg", "pw")


def challenge(request: Request, status: int = 401) -> Response:
    response = response_to(request, status)
    name = "Proxy-Authenticate" if status == 407 else "WWW-Authenticate"
    value = auth.challenge_value(realm="trunk.example", nonce="abc123", algorithm="SHA-256")
    response.headers.add(name, value)
    return response


def ok(request: Request, contact: str | None = None, expires: str | None = None) -> Response:
    response = response_to(request, 200)
    if contact is not None:
        response.headers.add("Contact", contact)
    if expires is not None:
        response.headers.add("Expires", expires)
    return response


def test_the_first_register_is_due_at_once_with_the_address_of_record() -> None:
    registration = Registration(TARGET, CREDENTIALS)
    request = registration.due(0.0)
    assert request is not None and request.method == "REGISTER"
    assert request.uri == "sip:trunk.example"
    assert (request.headers.get("To") or "") == "<sip:vg@trunk.example>"
    assert (request.headers.get("Expires"), request.headers.get("Contact")) == (
        "600",
        TARGET.contact,
    )
    assert registration.state == "registering"
    assert registration.due(0.1) is None  # nothing more until an answer


def test_a_challenge_is_answered_once_and_verifies_then_the_grant_sets_the_refresh() -> None:
    registration = Registration(TARGET, CREDENTIALS)
    first = registration.due(0.0)
    assert first is not None
    again = registration.response(challenge(first), 0.1)
    assert again is not None
    value = again.headers.get("Authorization") or ""
    answer = auth.parse_authorization(value)
    assert auth.verify(answer, password="pw", method="REGISTER", realm="trunk.example")
    assert again.headers.get("Call-ID") == first.headers.get("Call-ID")  # one registration
    assert again.headers.get("CSeq") != first.headers.get("CSeq")
    granted = ok(again, contact=f"{TARGET.contact};expires=120")
    assert registration.response(granted, 0.2) is None
    assert (registration.state, registration.granted) == ("registered", 120)
    assert registration.next_due() == 0.2 + 120 * REFRESH_SHARE


def test_a_second_challenge_in_a_row_fails_and_is_retried_later() -> None:
    registration = Registration(TARGET, CREDENTIALS)
    first = registration.due(0.0)
    assert first is not None
    again = registration.response(challenge(first, 407), 0.1)
    assert again is not None and again.headers.get("Proxy-Authorization")
    assert registration.response(challenge(again, 407), 0.2) is None
    assert registration.state == "failed"
    assert registration.next_due() == 0.2 + RETRY_AFTER
    retry = registration.due(0.2 + RETRY_AFTER)
    assert retry is not None and retry.headers.get("Proxy-Authorization") is None


def test_the_expires_header_when_the_contact_has_no_expiry_and_a_floor_on_refreshes() -> None:
    registration = Registration(TARGET, CREDENTIALS)
    first = registration.due(0.0)
    assert first is not None
    registration.response(ok(first, expires="10"), 1.0)
    assert registration.granted == 10
    assert registration.next_due() == 1.0 + 60 * REFRESH_SHARE  # never a refresh storm


def test_no_answer_fails_and_retries_and_a_refusal_too() -> None:
    registration = Registration(TARGET, None)
    first = registration.due(0.0)
    assert first is not None
    registration.failed(32.0)  # timer F
    assert (registration.state, registration.next_due()) == ("failed", 32.0 + RETRY_AFTER)
    second = registration.due(100.0)
    assert second is not None
    assert registration.response(challenge(second), 100.1) is None  # no credentials to answer
    assert registration.state == "failed"
    assert registration.owns("z9hG4bK-other") is False
