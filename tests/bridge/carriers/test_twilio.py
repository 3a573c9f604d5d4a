"""What only the Twilio Media Streams dialect does; what it shares with Telnyx is tested on
both wires in test_carrier_common.py, over the vectors in carrier_vectors.py."""

from __future__ import annotations

import json

import pytest
from carrier_vectors import CA, MZ, TWILIO, TWILIO_START_EVENT, TWILIO_START_WIRE, wire

from voxgate.bridge.carriers.twilio import TwilioDialect
from voxgate.bridge.events import ErrorReported, StreamStarted
from voxgate.errors import ProtocolError


def test_start_naming_another_stream_at_top_level_is_fatal() -> None:
    with pytest.raises(ProtocolError) as caught:
        TwilioDialect().parse_upstream(json.dumps({**TWILIO_START_WIRE, "streamSid": "MZother"}))
    assert (caught.value.code, caught.value.fatal) == ("wrong_stream", True)


def test_telephony_start_has_what_pipecat_reads() -> None:
    # pipecat recognises Twilio by start.streamSid + start.callSid and reads customParameters
    start = wire(TwilioDialect().format_upstream(TWILIO_START_EVENT))["start"]
    keys = {"streamSid", "callSid", "accountSid", "tracks", "customParameters", "mediaFormat"}
    assert set(start) == keys


def test_telephony_start_without_account_sends_null() -> None:
    message = wire(TwilioDialect().format_upstream(StreamStarted(stream_id=MZ, call_id=CA)))
    assert message["start"]["accountSid"] is None
    assert TwilioDialect().parse_upstream(json.dumps(message)) == StreamStarted(MZ, CA)


def test_errors_have_no_twilio_message() -> None:
    assert TWILIO.started_telephony().format_upstream(ErrorReported("bad_audio", "x")) is None
