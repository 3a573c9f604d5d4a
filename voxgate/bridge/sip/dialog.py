"""SIP dialogs: what two user agents share for the length of a call (RFC 3261 section 12).

Theory of operation
-------------------
A dialog is made by a 2xx to an INVITE. voxgate makes dialogs in both roles:

- as the UAS (an inbound call), from the INVITE it answers (12.1.1): the
  route set is the INVITE's Record-Route values *in order*, the remote target
  the INVITE's Contact, the remote sequence number the INVITE's CSeq, and the
  local tag the one voxgate puts on its To;
- as the UAC (an outbound call), from the 2xx it receives (12.1.2): the
  route set is the 2xx's Record-Route values *reversed*, the remote target
  the 2xx's Contact.

Requests within the dialog (12.2.1.1) go to the remote target with the route
set as Route headers (loose routing, RFC 3261 16.12: every proxy that
recorded a route marks it ``lr``; strict routers are not supported). Their
CSeq numbers count up from the local sequence number; a request from the peer
with a CSeq lower than the last one seen is answered 500 (12.2.2).

Where the packets go (:attr:`Dialog.next_hop`): the first route's host and
port when there is a route set, else the remote target's; a host that is not
an IP address (voxgate does not resolve names on the media path) falls back
to the address the peer's requests come from, which is also what a peer
behind NAT needs (RFC 3581's symmetric response routing, carried over to the
dialog).
"""

from __future__ import annotations

import ipaddress
import secrets
from dataclasses import dataclass, field

from voxgate.bridge.sip.message import (
    Headers,
    Request,
    Response,
    parse_cseq,
    parse_name_addr,
    parse_uri,
)
from voxgate.bridge.sip.server_transaction import SIP_PORT
from voxgate.bridge.sip.timers import Address
from voxgate.bridge.sip.transaction import new_via
from voxgate.bridge.sip.uri import bracketed
from voxgate.errors import SipParseError


def new_tag() -> str:
    return secrets.token_hex(6)


def new_call_id(host: str) -> str:
    return f"{secrets.token_hex(12)}@{bracketed(host)}"


@dataclass(slots=True)
class Dialog:
    """One dialog's state; see the module docstring."""

    call_id: str
    local_tag: str
    remote_tag: str | None
    local_uri: str  # the From voxgate sends, without its tag (name-addr text)
    remote_uri: str  # the To voxgate sends, without the peer's tag
    remote_target: str  # the peer's Contact URI
    route_set: list[str] = field(default_factory=list)
    local_cseq: int = 0
    remote_cseq: int | None = None
    peer: Address = ("127.0.0.1", SIP_PORT)  # where the peer's requests came from

    @classmethod
    def as_uas(cls, invite: Request, local_tag: str, source: Address) -> Dialog:
        """The dialog an inbound INVITE makes once answered (RFC 3261 12.1.1)."""
        headers = invite.headers
        contact = headers.get("Contact")
        remote = parse_name_addr(headers.get("From") or "")
        local = parse_name_addr(headers.get("To") or "")
        cseq, _ = parse_cseq(headers.get("CSeq") or "")
        return cls(
            call_id=headers.get("Call-ID") or "",
            local_tag=local_tag,
            remote_tag=remote.tag,
            local_uri=_without_tag(local.uri, local.display_name),
            remote_uri=_without_tag(remote.uri, remote.display_name),
            remote_target=parse_name_addr(contact).uri if contact else remote.uri,
            route_set=headers.get_all("Record-Route"),
            local_cseq=secrets.randbelow(2**16) + 1,
            remote_cseq=cseq,
            peer=source,
        )

    @classmethod
    def as_uac(cls, invite: Request, response: Response, source: Address) -> Dialog:
        """The dialog a 2xx to voxgate's INVITE makes (RFC 3261 12.1.2)."""
        local = parse_name_addr(invite.headers.get("From") or "")
        remote = parse_name_addr(response.headers.get("To") or "")
        contact = response.headers.get("Contact")
        cseq, _ = parse_cseq(invite.headers.get("CSeq") or "")
        return cls(
            call_id=invite.headers.get("Call-ID") or "",
            local_tag=local.tag or "",
            remote_tag=remote.tag,
            local_uri=_without_tag(local.uri, local.display_name),
            remote_uri=_without_tag(remote.uri, remote.display_name),
            remote_target=parse_name_addr(contact).uri if contact else invite.uri,
            route_set=list(reversed(response.headers.get_all("Record-Route"))),
            local_cseq=cseq,
            peer=source,
        )

    def request(self, method: str, via_host: str, via_port: int, contact: str) -> Request:
        """A new request within the dialog (RFC 3261 12.2.1.1); ACK and CANCEL use the
        CSeq number of the request they belong to, so the caller sets it for those."""
        if method not in ("ACK", "CANCEL"):
            self.local_cseq += 1
        headers = Headers()
        headers.add("Via", new_via(via_host, via_port))
        headers.add("Max-Forwards", "70")
        for route in self.route_set:
            headers.add("Route", route)
        headers.add("From", f"{self.local_uri};tag={self.local_tag}")
        to = self.remote_uri + (f";tag={self.remote_tag}" if self.remote_tag else "")
        headers.add("To", to)
        headers.add("Call-ID", self.call_id)
        headers.add("CSeq", f"{self.local_cseq} {method}")
        headers.add("Contact", contact)
        return Request(method, self.remote_target, headers)

    def accepts_cseq(self, request: Request) -> bool:
        """Whether the peer's request is in order (RFC 3261 12.2.2); records its number."""
        number, _ = parse_cseq(request.headers.get("CSeq") or "")
        if request.method in {"ACK", "CANCEL"}:
            return True
        if self.remote_cseq is not None and number <= self.remote_cseq:
            return False
        self.remote_cseq = number
        return True

    @property
    def next_hop(self) -> Address:
        """Where requests within the dialog are sent; see the module docstring."""
        target = parse_name_addr(self.route_set[0]).uri if self.route_set else self.remote_target
        return hop(target, self.peer)


def hop(uri_text: str, fallback: Address) -> Address:
    """The IP address and port of ``uri_text``, or ``fallback`` for a name or a bad URI."""
    try:
        uri = parse_uri(uri_text)
    except SipParseError:
        return fallback
    maddr = uri.params.get("maddr")
    host = maddr or uri.host
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return fallback
    return host, uri.port or SIP_PORT


def _without_tag(uri: str, display_name: str | None) -> str:
    name = f'"{display_name}" ' if display_name else ""
    return f"{name}<{uri}>"
