"""Registration to a trunk (RFC 3261 section 10), sans-I/O, time passed in.

Theory of operation
-------------------
Some trunks only send calls to a user agent that registered its Contact with
them. :class:`Registration` keeps voxgate registered:

- ``REGISTER`` with the address of record ``sip:<user>@<trunk host>``, voxgate's
  Contact and ``Expires``; one Call-ID for the registration's life, the CSeq
  counting up (10.2);
- 401/407 with a digest challenge: the request is sent again with credentials
  (RFC 7616 through :mod:`voxgate.bridge.sip.auth`); a second challenge in a row
  means the credentials are wrong: ``failed``, retried later;
- 2xx: ``registered`` for the expiry the registrar granted (the Contact's
  ``expires`` parameter, else the Expires header, else what was asked), and
  refreshed at 90 % of it (at least 30 s ahead of its end is not needed: the
  registrar's floor is honoured by asking again later);
- any other final response, or none (timer F): ``failed``, retried after
  :data:`RETRY_AFTER` seconds.

The owner sends what :meth:`due` returns (a request with its destination) and
hands back the responses; :attr:`state` says where it stands.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from typing import Final, Literal

from voxgate.bridge.sip import auth
from voxgate.bridge.sip.dialog import new_call_id, new_tag
from voxgate.bridge.sip.message import (
    Headers,
    Request,
    Response,
    parse_name_addr,
)
from voxgate.bridge.sip.timers import Address
from voxgate.bridge.sip.transaction import new_branch, new_via
from voxgate.errors import SipParseError

RETRY_AFTER: Final = 60.0  # seconds after a failure before trying again
REFRESH_SHARE: Final = 0.9  # refresh at this share of the granted expiry
MIN_EXPIRES: Final = 60

State = Literal["unregistered", "registering", "registered", "failed"]


@dataclass(frozen=True, slots=True)
class RegistrationTarget:
    registrar: Address  # where REGISTER is sent (the trunk)
    domain: str  # the trunk's host: the address of record's domain and the Request-URI
    username: str
    contact: str  # voxgate's Contact (name-addr text)
    via: tuple[str, int]  # voxgate's sent-by
    expires: int = 3600


class Registration:
    """See the module docstring."""

    def __init__(self, target: RegistrationTarget, credentials: auth.Credentials | None) -> None:
        self.target = target
        self.state: State = "unregistered"
        self.granted: int | None = None
        self.last_status: int | None = None
        self._credentials = credentials
        self._call_id = new_call_id(target.via[0])
        self._tag = new_tag()
        self._cseq = secrets.randbelow(2**16) + 1
        self._next_at: float | None = 0.0  # send the first REGISTER at once
        self._challenged = False
        self._branch: str | None = None  # of the REGISTER in flight

    def next_due(self) -> float | None:
        return self._next_at

    def due(self, now: float) -> Request | None:
        """The REGISTER to send now, if one is due."""
        if self._next_at is None or now < self._next_at:
            return None
        self._next_at = None
        self._challenged = False
        return self._request(None)

    def owns(self, branch: str) -> bool:
        return branch == self._branch

    def response(self, response: Response, now: float) -> Request | None:
        """Take the registrar's answer; a REGISTER to send again at once (with credentials)."""
        status = response.status
        if status < 200:
            return None
        self.last_status = status
        if 200 <= status < 300:
            self.state = "registered"
            self.granted = self._granted(response)
            self._next_at = now + max(MIN_EXPIRES, self.granted) * REFRESH_SHARE
            return None
        if status in (401, 407) and not self._challenged and self._credentials is not None:
            proxy = status == 407
            values = response.headers.get_all("Proxy-Authenticate" if proxy else "WWW-Authenticate")
            challenge = auth.choose_challenge(values)
            if challenge is not None:
                self._challenged = True
                uri = f"sip:{self.target.domain}"
                value = auth.authorization(
                    challenge,
                    self._credentials,
                    method="REGISTER",
                    uri=uri,
                    cnonce=secrets.token_hex(8),
                )
                name = "Proxy-Authorization" if proxy else "Authorization"
                return self._request((name, value))
        self.failed(now)
        return None

    def failed(self, now: float) -> None:
        """No usable answer (a refusal, or timer F): try again later."""
        self.state = "failed"
        self._next_at = now + RETRY_AFTER

    def _request(self, credentials: tuple[str, str] | None) -> Request:
        target = self.target
        self._cseq += 1
        self._branch = new_branch()
        aor = f"<sip:{target.username}@{target.domain}>"
        headers = Headers()
        headers.add("Via", new_via(*target.via, branch=self._branch))
        headers.add("Max-Forwards", "70")
        headers.add("From", f"{aor};tag={self._tag}")
        headers.add("To", aor)
        headers.add("Call-ID", self._call_id)
        headers.add("CSeq", f"{self._cseq} REGISTER")
        headers.add("Contact", target.contact)
        headers.add("Expires", str(target.expires))
        if credentials is not None:
            headers.add(*credentials)
        self.state = "registering"
        return Request("REGISTER", f"sip:{target.domain}", headers)

    def _granted(self, response: Response) -> int:
        """The expiry the registrar granted our Contact (RFC 3261 10.2.4)."""
        ours = parse_name_addr(self.target.contact).uri
        for value in response.headers.get_all("Contact"):
            try:
                contact = parse_name_addr(value)
            except SipParseError:
                continue
            expires = contact.params.get("expires")
            if contact.uri == ours and expires is not None and expires.isdigit():
                return int(expires)
        header = response.headers.get("Expires") or ""
        return int(header) if header.isdigit() else self.target.expires
