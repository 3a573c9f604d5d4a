"""SIP digest authentication: RFC 3261 22.4 on RFC 7616 digest, SHA-256 per RFC 8760.

Theory of operation
-------------------
*Client (UAC).* A 401 or 407 carries one or more challenges (``WWW-Authenticate`` /
``Proxy-Authenticate``). :func:`choose_challenge` takes the strongest one voxgate can answer
(SHA-256 before MD5, RFC 8760 2.4) and :func:`authorization` builds the ``Authorization`` /
``Proxy-Authorization`` value for the retried request: ``qop=auth`` when offered,
``auth-int`` only when it is all that is offered, and the RFC 2069 form when no qop is.

*Server (UAS, registrar).* :func:`challenge_value` builds a challenge around a nonce from
:class:`NonceSource`; :func:`parse_authorization` reads the reply; :meth:`NonceSource.check`
says whether the nonce is ours and fresh (``"stale"``: challenge again with ``stale=true`` and
the client retries without asking anyone for a password, RFC 7616 3.3); :func:`verify`
recomputes the response. Nonces are stateless -- the issue time and an HMAC of it -- so any
node holding the secret checks them without a table; the price is that a response can be
replayed while its nonce is fresh (no ``nc`` is tracked).

The response (RFC 7616 3.4.1) is ``H(A1:nonce:nc:cnonce:qop:H(A2))``, or ``H(A1:nonce:H(A2))``
without qop, where ``H(A1) = H(username:realm:password)`` (``-sess``: ``H(H(A1):nonce:cnonce)``)
and ``A2 = method:uri`` (``auth-int``: ``method:uri:H(body)``).
"""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Final, Literal

from voxgate.errors import SipParseError

# upper-case name -> (name as RFC 7616 spells it, hashlib name, session variant)
_ALGORITHMS: Final = {
    "MD5": ("MD5", "md5", False),
    "MD5-SESS": ("MD5-sess", "md5", True),
    "SHA-256": ("SHA-256", "sha256", False),
    "SHA-256-SESS": ("SHA-256-sess", "sha256", True),
}
_QOPS: Final = ("auth", "auth-int")
_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")  # RFC 7230 3.2.6 tchar
_BARE = re.compile(r"[^\s,\"]+")  # an unquoted value: a token, leniently
_SPACE = re.compile(r"[ \t]*")
_COMMA = re.compile(",")
_CONTROL = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")
_NC = re.compile(r"[0-9a-fA-F]{8}")
_HEX = re.compile(r"[0-9a-fA-F]{1,128}")
_STAMP = re.compile(r"[0-9a-f]{1,16}")
_MAC = re.compile(r"[0-9a-f]{32}")
_CLOCK_SKEW: Final = 5.0  # seconds a nonce may come from the future (another node's clock)


@dataclass(frozen=True, slots=True)
class Challenge:
    realm: str
    nonce: str
    algorithm: str = "MD5"
    qop: tuple[str, ...] = ()
    opaque: str | None = None
    stale: bool = False


@dataclass(frozen=True, slots=True)
class Credentials:
    username: str
    password: str = field(repr=False)


@dataclass(frozen=True, slots=True)
class DigestResponse:
    """The parameters of an ``Authorization`` / ``Proxy-Authorization`` digest."""

    username: str
    realm: str
    nonce: str
    uri: str
    response: str
    algorithm: str
    qop: str | None
    nc: str | None
    cnonce: str | None
    opaque: str | None


# --- header syntax (RFC 7235 2.1, RFC 3261 25.1) ------------------------------------------


class _Scanner:
    """``<scheme> name=value, name="quoted \\" string", ...`` -> scheme and parameters."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.at = 0

    def skip(self, pattern: re.Pattern[str] = _SPACE) -> str:
        match = pattern.match(self.text, self.at)
        if match is None:
            return ""
        self.at = match.end()
        return match.group()

    def quoted(self) -> str:
        chars: list[str] = []
        self.at += 1  # the opening quote
        while self.at < len(self.text):
            char = self.text[self.at]
            self.at += 1
            if char == '"':
                return "".join(chars)
            if char == "\\":
                if self.at == len(self.text):
                    break
                char = self.text[self.at]
                self.at += 1
            chars.append(char)
        raise SipParseError("unterminated quoted string in a digest header")

    def value(self) -> str:
        if self.text.startswith('"', self.at):
            return self.quoted()
        bare = self.skip(_BARE)
        if not bare:
            raise SipParseError("a digest parameter has no value")
        return bare

    def parameters(self) -> dict[str, str]:
        found: dict[str, str] = {}
        while True:
            while self.skip() or self.skip(_COMMA):
                pass  # RFC 7230 7: empty list elements are allowed
            if self.at == len(self.text):
                return found
            name = self.skip(_TOKEN).lower()
            self.skip()
            if not name or not self.text.startswith("=", self.at):
                raise SipParseError("a digest parameter is not name=value")
            self.at += 1
            self.skip()
            if name in found:
                raise SipParseError(f"digest parameter {name!r} given twice")
            found[name] = self.value()
            self.skip()
            if self.at != len(self.text) and self.text[self.at] != ",":
                raise SipParseError("digest parameters are not separated by commas")


def _digest_parameters(value: str) -> dict[str, str]:
    if _CONTROL.search(value):
        raise SipParseError("control character in a digest header")
    scanner = _Scanner(value.strip())
    scheme = scanner.skip(_TOKEN)
    if scheme.lower() != "digest" or not scanner.skip():
        raise SipParseError("not a Digest header")
    return scanner.parameters()


def _quote(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _canonical(algorithm: str) -> str:
    spec = _ALGORITHMS.get(algorithm.upper())
    return spec[0] if spec else algorithm.upper()


# --- client side ----------------------------------------------------------------------------


def parse_challenge(value: str) -> Challenge:
    """Read a challenge; :class:`SipParseError` too when voxgate could not answer it."""
    params = _digest_parameters(value)
    if "realm" not in params or "nonce" not in params:
        raise SipParseError("a digest challenge needs realm and nonce")
    algorithm = _canonical(params.get("algorithm", "MD5"))
    if algorithm.upper() not in _ALGORITHMS:
        raise SipParseError(f"unsupported digest algorithm {algorithm[:40]!r}")
    qop = tuple(q.strip().lower() for q in params.get("qop", "").split(",") if q.strip())
    if qop and not set(qop) & set(_QOPS):
        raise SipParseError(f"unsupported qop {params['qop'][:40]!r}")
    return Challenge(
        realm=params["realm"],
        nonce=params["nonce"],
        algorithm=algorithm,
        qop=qop,
        opaque=params.get("opaque"),
        stale=params.get("stale", "").lower() == "true",
    )


def choose_challenge(values: Sequence[str]) -> Challenge | None:
    """The first SHA-256 challenge, else the first MD5 one (RFC 8760 2.4); unusable ones skipped."""
    usable: list[Challenge] = []
    for value in values:
        try:
            usable.append(parse_challenge(value))
        except SipParseError:
            continue
    return min(usable, key=lambda c: not c.algorithm.startswith("SHA-256"), default=None)


def _hash(algorithm: str, data: str | bytes) -> str:
    name = _ALGORITHMS[algorithm.upper()][1]
    return hashlib.new(name, data.encode() if isinstance(data, str) else data).hexdigest()


def _expected(digest: DigestResponse, *, password: str, method: str, body: bytes) -> str:
    """The response ``digest`` should carry (RFC 7616 3.4.1-3.4.3)."""
    algorithm = digest.algorithm

    def h(data: str | bytes) -> str:
        return _hash(algorithm, data)

    ha1 = h(f"{digest.username}:{digest.realm}:{password}")
    if _ALGORITHMS[algorithm.upper()][2]:
        ha1 = h(f"{ha1}:{digest.nonce}:{digest.cnonce or ''}")
    a2 = f"{method}:{digest.uri}" + (f":{h(body)}" if digest.qop == "auth-int" else "")
    if digest.qop is None:  # RFC 2069 compatibility
        return h(f"{ha1}:{digest.nonce}:{h(a2)}")
    return h(f"{ha1}:{digest.nonce}:{digest.nc}:{digest.cnonce}:{digest.qop}:{h(a2)}")


def _client_qop(offered: tuple[str, ...]) -> str | None:
    if "auth" in offered:
        return "auth"
    if "auth-int" in offered:
        return "auth-int"
    if offered:
        raise SipParseError(f"unsupported qop {offered!r}")
    return None


def authorization(
    challenge: Challenge,
    credentials: Credentials,
    *,
    method: str,
    uri: str,
    cnonce: str,
    nc: int = 1,
    body: bytes = b"",
) -> str:
    """The ``Authorization`` / ``Proxy-Authorization`` value answering ``challenge``."""
    if challenge.algorithm.upper() not in _ALGORITHMS:
        raise SipParseError(f"unsupported digest algorithm {challenge.algorithm[:40]!r}")
    if not 0 < nc <= 0xFFFFFFFF:
        raise ValueError(f"nc must be from 1 to 0xffffffff, got {nc}")
    qop = _client_qop(challenge.qop)
    sess = _ALGORITHMS[challenge.algorithm.upper()][2]
    digest = DigestResponse(
        username=credentials.username,
        realm=challenge.realm,
        nonce=challenge.nonce,
        uri=uri,
        response="",
        algorithm=challenge.algorithm,
        qop=qop,
        nc=f"{nc:08x}" if qop else None,
        cnonce=cnonce if qop or sess else None,
        opaque=challenge.opaque,
    )
    response = _expected(digest, password=credentials.password, method=method, body=body)
    parts = [
        f"username={_quote(digest.username)}",
        f"realm={_quote(digest.realm)}",
        f"nonce={_quote(digest.nonce)}",
        f"uri={_quote(digest.uri)}",
        f"response={_quote(response)}",
        f"algorithm={digest.algorithm}",
    ]
    if qop:
        parts += [f"qop={qop}", f"nc={digest.nc}"]
    if digest.cnonce is not None:
        parts.append(f"cnonce={_quote(digest.cnonce)}")
    if digest.opaque is not None:
        parts.append(f"opaque={_quote(digest.opaque)}")
    return "Digest " + ", ".join(parts)


# --- server side ----------------------------------------------------------------------------


def challenge_value(
    *,
    realm: str,
    nonce: str,
    algorithm: str = "MD5",
    qop: str = "auth",
    opaque: str | None = None,
    stale: bool = False,
) -> str:
    """A ``WWW-Authenticate`` / ``Proxy-Authenticate`` value (an empty qop leaves it out)."""
    if algorithm.upper() not in _ALGORITHMS:
        raise ValueError(f"unsupported digest algorithm {algorithm!r}")
    parts = [
        f"realm={_quote(realm)}",
        f"nonce={_quote(nonce)}",
        f"algorithm={_canonical(algorithm)}",
    ]
    if qop:
        parts.append(f"qop={_quote(qop)}")
    if opaque is not None:
        parts.append(f"opaque={_quote(opaque)}")
    if stale:
        parts.append("stale=TRUE")
    return "Digest " + ", ".join(parts)


def parse_authorization(value: str) -> DigestResponse:
    """Read an ``Authorization`` / ``Proxy-Authorization`` digest; :class:`SipParseError`."""
    params = _digest_parameters(value)
    missing = [n for n in ("username", "realm", "nonce", "uri", "response") if n not in params]
    if missing:
        raise SipParseError(f"digest authorization without {', '.join(missing)}")
    qop, nc, cnonce = params.get("qop"), params.get("nc"), params.get("cnonce")
    if qop is not None and (cnonce is None or nc is None or not _NC.fullmatch(nc)):
        raise SipParseError("digest authorization with qop needs nc (8 hex digits) and cnonce")
    return DigestResponse(
        username=params["username"],
        realm=params["realm"],
        nonce=params["nonce"],
        uri=params["uri"],
        response=params["response"],
        algorithm=_canonical(params.get("algorithm", "MD5")),
        qop=qop,
        nc=nc,
        cnonce=cnonce,
        opaque=params.get("opaque"),
    )


def verify(
    response: DigestResponse, *, password: str, method: str, realm: str, body: bytes = b""
) -> bool:
    """Whether ``response`` was made with ``password`` for this request in our ``realm``.

    The nonce's freshness (:meth:`NonceSource.check`) and that ``response.uri`` names the
    request's URI are the caller's to check.
    """
    if response.realm != realm or response.algorithm.upper() not in _ALGORITHMS:
        return False
    if response.qop not in (None, *_QOPS) or not _HEX.fullmatch(response.response):
        return False
    try:
        expected = _expected(response, password=password, method=method, body=body)
    except UnicodeEncodeError:  # a lone surrogate: no client hashed that
        return False
    return hmac.compare_digest(expected.encode(), response.response.lower().encode())


class NonceSource:
    """Stateless nonces: ``<issue time in ms, hex>.<HMAC-SHA256(secret, time), 128 bits>``.

    Every node sharing the secret recognises the nonces of the others; a nonce is fresh from
    its issue time until ``max_age`` later (and up to a few seconds before, for clock skew).
    """

    __slots__ = ("_secret",)

    def __init__(self, secret: bytes) -> None:
        if not secret:
            raise ValueError("the nonce secret must not be empty")
        self._secret = secret

    def _mac(self, stamp: str) -> str:
        return hmac.new(self._secret, b"voxgate-nonce:" + stamp.encode(), "sha256").hexdigest()[:32]

    def issue(self, now: float) -> str:
        stamp = f"{max(0, int(now * 1000)):x}"
        return f"{stamp}.{self._mac(stamp)}"

    def check(
        self, nonce: str, now: float, max_age: float = 300.0
    ) -> Literal["ok", "stale", "bad"]:
        stamp, _, mac = nonce.partition(".")
        if not (_STAMP.fullmatch(stamp) and _MAC.fullmatch(mac)):
            return "bad"
        if not hmac.compare_digest(self._mac(stamp).encode(), mac.encode()):
            return "bad"
        age = now - int(stamp, 16) / 1000
        return "ok" if -_CLOCK_SKEW <= age <= max_age else "stale"
