"""Carrier media-stream dialects (Twilio, Telnyx, Plivo) and their REST calls, all sans-I/O.

Each dialect translates one stream's JSON messages to and from the events of
:mod:`voxgate.bridge.events`, as the application side (facing the carrier) or
as the telephony side (facing a bot that speaks the carrier's dialect);
:mod:`.rest` describes the hangup and transfer requests and checks the
carriers' request signatures; :mod:`.registry` holds one entry per carrier
(dialect, signature, REST requests, policy flags), the only place that
lists them.
"""

from voxgate.bridge.carriers.plivo import PlivoDialect
from voxgate.bridge.carriers.rest import HttpRequest
from voxgate.bridge.carriers.telnyx import TelnyxDialect
from voxgate.bridge.carriers.twilio import TwilioDialect

__all__ = ["HttpRequest", "PlivoDialect", "TelnyxDialect", "TwilioDialect"]
