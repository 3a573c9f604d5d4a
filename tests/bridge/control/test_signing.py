"""The X-Voxgate-Signature header: exact vectors, and what a receiver refuses.

The expected headers come from :func:`reference_header`, written here from the format's
definition with the standard library's ``hmac`` (not by calling :func:`sign`), so a slip
in the module cannot hide in its own test.
"""

from __future__ import annotations

import hashlib
import hmac

import pytest
from hypothesis import given
from hypothesis import strategies as st

from voxgate.bridge.control.signing import HEADER, sign, verify

SECRET = "whsec_0123456789abcdef"
BODY = b'{"id":"evt_1","type":"call.answered"}'
T = 1_760_000_000


def reference_header(secret: str, body: bytes, timestamp: int) -> str:
    """The header as the format defines it: ``t=<t>,v1=<hex HMAC-SHA256(secret, "t." + body)>``."""
    digest = hmac.digest(secret.encode("utf-8"), b"%d." % timestamp + body, "sha256")
    return "t=" + str(timestamp) + ",v1=" + digest.hex()


# (secret, body, timestamp)
VECTORS = [
    (SECRET, BODY, T),
    (SECRET, b"", T),
    ("", BODY, T),
    ("k", b"x", 0),
    ("s\u00e9cret-\u00fc\u00f1\u00ee", '{"caf\u00e9":"\u263a"}'.encode(), 1),
    (SECRET, bytes(range(256)) * 4, 4_102_444_800),
    ("x" * 200, b"a" * 100_000, T),  # a key longer than SHA-256's block is hashed first
]


def test_the_header_name() -> None:
    assert HEADER == "X-Voxgate-Signature"


@pytest.mark.parametrize(("secret", "body", "timestamp"), VECTORS)
def test_vectors(secret: str, body: bytes, timestamp: int) -> None:
    expected = reference_header(secret, body, timestamp)
    assert sign(secret, body, timestamp) == expected
    assert verify(expected, body, secret, now=timestamp)


def test_a_literal_vector() -> None:
    """One value written out, from a third computation (hashlib's HMAC by hand)."""
    key = SECRET.encode().ljust(64, b"\0")
    inner = hashlib.sha256(bytes(b ^ 0x36 for b in key) + f"{T}.".encode() + BODY).digest()
    outer = hashlib.sha256(bytes(b ^ 0x5C for b in key) + inner).hexdigest()
    assert sign(SECRET, BODY, T) == f"t={T},v1={outer}"


def test_tampering_is_refused() -> None:
    header = reference_header(SECRET, BODY, T)
    assert verify(header, BODY, SECRET, now=T)
    assert not verify(header, BODY + b" ", SECRET, now=T)
    assert not verify(header, BODY.replace(b"answered", b"completed"), SECRET, now=T)
    assert not verify(header, BODY, SECRET + "x", now=T)
    assert not verify(header, BODY, "", now=T)
    other_time = header.replace(f"t={T}", f"t={T + 1}")
    assert not verify(other_time, BODY, SECRET, now=T)


@pytest.mark.parametrize(
    ("now", "accepted"),
    [
        (T, True),
        (T + 300, True),
        (T - 300, True),  # the sender's clock a little ahead
        (T + 300.5, False),
        (T - 301, False),
        (T + 86_400, False),  # a replay a day later
        (float("nan"), False),
        (float("inf"), False),
    ],
)
def test_the_timestamp_window(now: float, accepted: bool) -> None:
    assert verify(reference_header(SECRET, BODY, T), BODY, SECRET, now=now) is accepted


def test_a_tolerance_can_be_chosen() -> None:
    header = reference_header(SECRET, BODY, T)
    assert verify(header, BODY, SECRET, now=T + 1000, tolerance=1000)
    assert not verify(header, BODY, SECRET, now=T + 1000, tolerance=999)


def test_several_signatures_for_a_rotated_secret() -> None:
    old, new = "whsec_old", "whsec_new"
    mac_old = reference_header(old, BODY, T).partition(",")[2]
    mac_new = reference_header(new, BODY, T).partition(",")[2]
    header = f"t={T},{mac_old},{mac_new}"
    assert verify(header, BODY, old, now=T)
    assert verify(header, BODY, new, now=T)
    assert not verify(header, BODY, "whsec_other", now=T)
    # Spaces after commas, unknown schemes and upper-case hex are read too.
    loose = f"t={T}, v0=abc, {mac_new.upper().replace('V1=', 'v1=')}"
    assert verify(loose, BODY, new, now=T)


GOOD = reference_header(SECRET, BODY, T)
MAC = GOOD.partition(",v1=")[2]


@pytest.mark.parametrize(
    "header",
    [
        "",
        ",",
        "garbage",
        f"v1={MAC}",  # no timestamp
        f"t={T}",  # no signature
        f"t={T},v1=",
        f"t={T},v1={MAC[:-1]}",  # too short
        f"t={T},v1={MAC}0",  # too long
        f"t={T},v1={MAC[:-1]}g",  # not hex
        f"t={T},t={T},v1={MAC}",  # two timestamps
        f"t=-{T},v1={MAC}",
        f"t={T}.0,v1={MAC}",
        f"t= {T},v1={MAC}",
        f"t=\u0661\u0662,v1={MAC}",  # Arabic-Indic digits are digits to str.isdigit
        f"t={T},v1={MAC},junk",
        f"t={T};v1={MAC}",
        f"T={T},V1={MAC}",
        f"t={'9' * 40},v1={MAC}",
        f"t={T}," + ",".join([f"v1={'0' * 64}"] * 9) + f",v1={MAC}",  # too many signatures
        f"t={T},v1={MAC}" + " " * 5000,  # too long to read
        f"t={T},v1={MAC}\u00e9",
    ],
)
def test_garbled_headers_are_refused(header: str) -> None:
    assert not verify(header, BODY, SECRET, now=T)


def test_non_strings_are_refused_not_raised() -> None:
    assert not verify(None, BODY, SECRET, now=T)  # type: ignore[arg-type]
    assert not verify(GOOD.encode(), BODY, SECRET, now=T)  # type: ignore[arg-type]


@given(st.text(max_size=300))
def test_verify_never_raises(header: str) -> None:
    assert verify(header, BODY, SECRET, now=T) in (True, False)


@given(st.binary(max_size=500), st.text(max_size=40), st.integers(0, 10**11))
def test_sign_then_verify(body: bytes, secret: str, timestamp: int) -> None:
    header = sign(secret, body, timestamp)
    assert header == reference_header(secret, body, timestamp)
    assert verify(header, body, secret, now=timestamp)
