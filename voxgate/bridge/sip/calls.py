"""What the SIP user agent tells its adapter, and the state it keeps per call.

The agent (:mod:`voxgate.bridge.sip.agent`) turns datagrams into these
events; the asyncio adapter turns them into call sessions, RTP sockets and
answers. Events are small frozen values named in the past tense.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field

from voxgate.bridge.sip.auth import Credentials
from voxgate.bridge.sip.dialog import Dialog
from voxgate.bridge.sip.message import Request
from voxgate.bridge.sip.sdp import Negotiated, SessionDescription
from voxgate.bridge.sip.timers import Address


class Direction(enum.StrEnum):
    INBOUND = "inbound"
    OUTBOUND = "outbound"


class Phase(enum.Enum):
    OFFERED = "offered"  # an INVITE came (inbound) or went (outbound); nothing final yet
    ANSWERED = "answered"  # a 2xx was sent (inbound), not yet acknowledged
    CONFIRMED = "confirmed"  # the 2xx was acknowledged: the call is up
    ENDED = "ended"


@dataclass(slots=True, eq=False)
class SipCall:
    """One call's signalling state, the adapter's handle on it."""

    key: str  # voxgate's own id for the call's signalling (logs, metrics)
    direction: Direction
    invite: Request  # the INVITE that began the call (the latest one sent, for outbound)
    source: Address  # where the peer's requests come from
    caller: str
    called: str
    local_tag: str
    phase: Phase = Phase.OFFERED
    dialog: Dialog | None = None
    negotiated: Negotiated | None = None
    offer: SessionDescription | None = None  # voxgate's offer (outbound calls)
    remote_offer: SessionDescription | None = None  # the peer's latest offer (inbound)
    media_address: Address | None = None  # voxgate's RTP address, once the adapter has one
    sdp_version: int = 1
    final_status: int | None = None  # the final response to the initial INVITE
    early_media: bool = False  # outbound: a 18x carried an answer
    auth_tries: int = 0  # outbound: digest challenges answered
    cancel_wanted: bool = False  # outbound: the adapter cancelled before any 1xx came
    provisional: bool = False  # outbound: a 1xx came
    refer_pending: bool = False
    credentials: Credentials | None = field(default=None, repr=False)  # outbound: the trunk's

    @property
    def live(self) -> bool:
        return self.phase is not Phase.ENDED


# --- events ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class IncomingCall:
    """An INVITE that passed every check: the adapter rings, answers or rejects it."""

    call: SipCall


@dataclass(frozen=True, slots=True)
class CallConfirmed:
    """Inbound: the ACK for voxgate's 2xx came. Outbound: the callee answered."""

    call: SipCall


@dataclass(frozen=True, slots=True)
class EarlyMedia:
    """Outbound: a provisional response carried the callee's SDP (ringback, announcements)."""

    call: SipCall


@dataclass(frozen=True, slots=True)
class Ringing:
    """Outbound: the callee is alerted (180/183)."""

    call: SipCall
    status: int


@dataclass(frozen=True, slots=True)
class CallEnded:
    """The call's signalling is over. ``reason``: see :data:`END_REASONS`."""

    call: SipCall
    reason: str
    status: int | None = None


END_REASONS = (
    "bye",  # the peer sent BYE
    "cancel",  # the caller cancelled before the answer
    "no_ack",  # voxgate's 2xx was never acknowledged (RFC 3261 13.3.1.4)
    "local",  # voxgate ended it (the bot hung up, drain, rejection)
    "busy",  # outbound: 486, 600
    "no_answer",  # outbound: 408, 480, or voxgate's own ring timeout
    "rejected",  # outbound: any other final failure
    "unreachable",  # outbound: no response at all (timer B)
)


@dataclass(frozen=True, slots=True)
class MediaUpdated:
    """A re-INVITE or UPDATE changed the media (hold, resume, a new address or codec)."""

    call: SipCall
    negotiated: Negotiated


@dataclass(frozen=True, slots=True)
class DtmfInfo:
    """SIP INFO ``application/dtmf-relay`` (or ``application/dtmf``) carried a key press."""

    call: SipCall
    digit: str
    duration_ms: int | None


@dataclass(frozen=True, slots=True)
class TransferDone:
    """What became of voxgate's REFER: ``ok`` when the transferee reported a 2xx
    (NOTIFY sipfrag, RFC 3515 2.4.5), else ``reason`` says why not."""

    call: SipCall
    ok: bool
    reason: str = ""


AgentEvent = (
    IncomingCall
    | CallConfirmed
    | EarlyMedia
    | Ringing
    | CallEnded
    | MediaUpdated
    | DtmfInfo
    | TransferDone
)
