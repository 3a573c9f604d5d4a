"""Carrier media-stream dialects (Twilio, Telnyx) and their REST calls, all sans-I/O.

Each dialect translates one stream's JSON messages to and from the events of
:mod:`voxgate.bridge.events`, as the application side (facing the carrier) or
as the telephony side (facing a bot that speaks the carrier's dialect);
:mod:`.rest` describes the hangup and transfer requests and checks Twilio's
request signature.
"""

from voxgate.bridge.carriers.rest import HttpRequest
from voxgate.bridge.carriers.telnyx import TelnyxDialect
from voxgate.bridge.carriers.twilio import TwilioDialect

__all__ = ["HttpRequest", "TelnyxDialect", "TwilioDialect"]
