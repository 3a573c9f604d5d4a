"""The call core, driven as the asyncio adapter drives it, with time stepped by hand."""

from __future__ import annotations

import numpy as np
import pytest

from voxgate.bridge.call import Call
from voxgate.bridge.call_api import (
    CallEnded,
    CallOutput,
    CallPolicy,
    CallState,
    CarrierHangup,
    CarrierTransfer,
    CloseBot,
    CloseCarrier,
    ConnectBot,
    ToBot,
    ToCarrier,
)
from voxgate.bridge.events import (
    AudioSent,
    ClearRequested,
    DtmfReceived,
    DtmfSendRequested,
    ErrorReported,
    HangupRequested,
    HoldChanged,
    MarkPlayed,
    MarkRequested,
    MediaReceived,
    StreamConnected,
    StreamStarted,
    StreamStopped,
    TranscriptReceived,
    TransferRequested,
)
from voxgate.codecs.dtmf import DtmfDetector
from voxgate.codecs.formats import PCMU_8K, AudioFormat, Encoding, decode
from voxgate.errors import ProtocolError

PCM16_16K = AudioFormat(Encoding.PCM16, 16000)
STARTED = StreamStarted(
    stream_id="MZ1",
    call_id="CA1",
    from_number="+15550001111",
    to_number="+15550002222",
    custom_parameters={"wss_url": "wss://bot", "wss_header": "Authorization: x", "lang": "en"},
)


class Driver:
    """Feeds a call and runs its clock the way the adapter does; reports come from the
    latest bot attempt unless one is named."""

    def __init__(self, policy: CallPolicy | None = None, bot_format: AudioFormat = PCMU_8K):
        self.now = 0.0
        self.attempt = 0
        self.call = Call("vx-1", STARTED, bot_format, policy or CallPolicy(), self.now)
        self.log: list[tuple[float, CallOutput]] = []
        self.collect()

    def collect(self) -> list[CallOutput]:
        outputs = self.call.drain()
        self.log += [(self.now, output) for output in outputs]
        for output in outputs:
            if isinstance(output, ConnectBot):
                self.attempt = output.attempt
        return outputs

    def run(self, until: float) -> list[CallOutput]:
        outputs = []
        while (due := self.call.next_due()) is not None and due <= until:
            self.now = max(self.now, due)
            self.call.tick(self.now)
            outputs += self.collect()
        self.now = max(self.now, until)
        return outputs

    def connect(self, attempt: int | None = None) -> list[CallOutput]:
        self.call.bot_connected(self.now, attempt=attempt or self.attempt)
        return self.collect()

    def fail_connect(
        self, reason: str = "refused", *, refused: bool = False, attempt: int | None = None
    ) -> list[CallOutput]:
        attempt = attempt or self.attempt
        self.call.bot_connect_failed(reason, self.now, attempt=attempt, refused=refused)
        return self.collect()

    def drop(
        self, reason: str = "socket dropped", code: int | None = None, attempt: int | None = None
    ) -> list[CallOutput]:
        self.call.bot_disconnected(reason, self.now, attempt=attempt or self.attempt, code=code)
        return self.collect()

    def carrier(self, event: object) -> list[CallOutput]:
        self.call.carrier_event(event, self.now)  # type: ignore[arg-type]
        return self.collect()

    def bot(self, event: object, attempt: int | None = None) -> list[CallOutput]:
        self.call.bot_event(event, self.now, attempt=attempt or self.attempt)  # type: ignore[arg-type]
        return self.collect()

    def bot_error(self, error: ProtocolError, attempt: int | None = None) -> list[CallOutput]:
        self.call.bot_protocol_error(error, self.now, attempt=attempt or self.attempt)
        return self.collect()

    def sent_to(
        self, kind: type[ToBot | ToCarrier], outputs: list[CallOutput] | None = None
    ) -> list[object]:
        seen = [o for _, o in self.log] if outputs is None else outputs
        return [o.event for o in seen if isinstance(o, ToBot | ToCarrier) and isinstance(o, kind)]

    def of(self, kind: type[object], outputs: list[CallOutput] | None = None) -> list[object]:
        seen = [o for _, o in self.log] if outputs is None else outputs
        return [o for o in seen if isinstance(o, kind)]

    def state(self) -> CallState:
        return self.call.state


def _frames(outputs: list[object]) -> list[bytes]:
    return [e.payload for e in outputs if isinstance(e, AudioSent)]


def test_start_connects_the_bot_and_sends_it_a_start_without_control_parameters() -> None:
    driver = Driver()
    assert [o for _, o in driver.log] == [ConnectBot(1, 5.0)]
    connected, start = driver.sent_to(ToBot, driver.connect())
    assert connected == StreamConnected()
    assert isinstance(start, StreamStarted)
    assert start.session_id == "vx-1"
    assert start.call_id == "CA1"
    assert dict(start.custom_parameters) == {"lang": "en"}
    assert not start.reconnected
    assert driver.call.state is CallState.ACTIVE


def test_caller_audio_passes_through_untouched_and_in_order() -> None:
    driver = Driver()
    driver.connect()
    payloads = [bytes([n]) * 160 for n in range(1, 6)]
    for chunk in (1, 3, 2, 4, 5):  # 3 arrives before 2
        driver.carrier(MediaReceived(payloads[chunk - 1], chunk=chunk))
    sent = driver.sent_to(ToBot)[1:]
    assert [e.payload for e in sent if isinstance(e, MediaReceived)] == payloads


def test_caller_audio_before_the_bot_answers_is_kept_for_it() -> None:
    driver = Driver()
    for chunk in range(1, 4):
        driver.carrier(MediaReceived(bytes([chunk]) * 160, chunk=chunk))
    assert driver.sent_to(ToBot) == []
    sent = driver.sent_to(ToBot, driver.connect())[2:]
    assert [e.payload[0] for e in sent if isinstance(e, MediaReceived)] == [1, 2, 3]


def test_transcodes_both_ways_when_the_bot_wants_pcm16_16k() -> None:
    driver = Driver(bot_format=PCM16_16K)
    driver.connect()
    driver.carrier(MediaReceived(b"\xff" * 160, chunk=1))
    (media,) = [e for e in driver.sent_to(ToBot) if isinstance(e, MediaReceived)]
    assert len(media.payload) == 640
    driver.bot(AudioSent(b"\x00\x00" * 3200))  # 200 ms at 16 kHz
    driver.run(1.0)
    frames = _frames(driver.sent_to(ToCarrier))
    assert [len(f) for f in frames] == [160] * 10


def test_bot_burst_is_paced_and_the_first_frame_leaves_at_once() -> None:
    driver = Driver()
    driver.connect()
    driver.now = 0.5
    driver.bot(AudioSent(b"\x01" * 8000 * 10))  # 10 s in one message
    driver.run(20.0)
    times = [
        t for t, o in driver.log if isinstance(o, ToCarrier) and isinstance(o.event, AudioSent)
    ]
    assert len(times) == 500
    assert times[0] == 0.5
    gaps = np.diff(times)
    assert np.allclose(gaps, 0.020)


def test_marks_are_reported_after_the_carrier_played_the_audio() -> None:
    driver = Driver()
    driver.connect()
    driver.bot(AudioSent(b"\x01" * 1600))  # 200 ms
    driver.bot(MarkRequested("said-hello"))
    driver.run(1.0)
    carrier_marks = [e for e in driver.sent_to(ToCarrier) if isinstance(e, MarkRequested)]
    assert len(carrier_marks) == 1
    assert not any(isinstance(e, MarkPlayed) for e in driver.sent_to(ToBot))
    out = driver.carrier(MarkPlayed(carrier_marks[0].name))
    assert driver.sent_to(ToBot, out) == [MarkPlayed("said-hello")]


def test_clear_stops_audio_within_a_frame_and_returns_pending_marks() -> None:
    driver = Driver()
    driver.connect()
    driver.bot(AudioSent(b"\x01" * 8000 * 5))
    driver.bot(MarkRequested("end-of-answer"))
    driver.run(0.1)
    before = len(_frames(driver.sent_to(ToCarrier)))
    out = driver.bot(ClearRequested())
    assert ClearRequested() in driver.sent_to(ToCarrier, out)
    assert driver.sent_to(ToBot, out) == [MarkPlayed("end-of-answer")]
    driver.run(1.0)
    assert len(_frames(driver.sent_to(ToCarrier))) == before


def test_dtmf_both_ways() -> None:
    driver = Driver()
    driver.connect()
    out = driver.carrier(DtmfReceived("7"))
    assert driver.sent_to(ToBot, out) == [DtmfReceived("7")]
    driver.bot(DtmfSendRequested("19#"))
    driver.run(2.0)
    audio = b"".join(_frames(driver.sent_to(ToCarrier)))
    detector = DtmfDetector()
    found = detector.feed(decode(audio, PCMU_8K)) + detector.flush()
    assert "".join(d.digit for d in found) == "19#"


def test_dtmf_to_a_leg_that_sends_events_goes_as_an_event_not_tones() -> None:
    driver = Driver(CallPolicy(carrier_dtmf_events=True))
    driver.connect()
    out = driver.bot(DtmfSendRequested("42", duration_ms=80))
    assert driver.sent_to(ToCarrier, out) == [DtmfSendRequested("42", duration_ms=80)]
    driver.run(1.0)
    assert _frames(driver.sent_to(ToCarrier)) == []  # no tones queued


def test_hold_is_reported_to_the_bot() -> None:
    driver = Driver()
    driver.connect()
    assert driver.sent_to(ToBot, driver.carrier(HoldChanged(True))) == [HoldChanged(True)]
    assert driver.sent_to(ToBot, driver.carrier(HoldChanged(False))) == [HoldChanged(False)]


def test_transfer_without_carrier_credentials_is_an_error_and_the_call_goes_on() -> None:
    driver = Driver()
    driver.connect()
    out = driver.bot(TransferRequested("+15550003333"))
    (error,) = driver.sent_to(ToBot, out)
    assert isinstance(error, ErrorReported) and error.code == "transfer_unavailable"
    assert driver.call.state is CallState.ACTIVE


def test_transfer_with_carrier_rest_then_the_carrier_stops_the_stream() -> None:
    driver = Driver(CallPolicy(carrier_rest=True))
    driver.connect()
    assert CarrierTransfer("+15550003333") in driver.bot(TransferRequested("+15550003333"))
    out = driver.carrier(StreamStopped())
    assert StreamStopped("transferred") in driver.sent_to(ToBot, out)
    assert CallEnded("transferred") in out


def test_caller_hangup_stops_and_closes_the_bot_at_once() -> None:
    driver = Driver()
    driver.connect()
    driver.bot(AudioSent(b"\x01" * 8000))
    out = driver.carrier(StreamStopped())
    assert driver.sent_to(ToBot, out) == [StreamStopped("caller_hangup")]
    assert any(isinstance(o, CloseBot) for o in out)
    assert CallEnded("caller_hangup") in out
    assert driver.call.next_due() is None


def test_bot_hangup_waits_for_the_queued_audio_to_be_played() -> None:
    driver = Driver(CallPolicy(carrier_rest=True))
    driver.connect()
    driver.bot(AudioSent(b"\x01" * 1600))
    assert driver.bot(HangupRequested("done")) == []
    driver.run(1.0)
    assert len(_frames(driver.sent_to(ToCarrier))) == 10
    (final_mark,) = [e for e in driver.sent_to(ToCarrier) if isinstance(e, MarkRequested)]
    assert not any(isinstance(o, CallEnded) for _, o in driver.log)
    driver.drop("bot closed after hanging up")
    out = driver.carrier(MarkPlayed(final_mark.name))
    assert CarrierHangup() in out
    assert CloseCarrier(1000, "bot_hangup") in out
    assert CallEnded("bot_hangup") in out
    assert driver.call.summary(driver.now)["bot_hangup_text"] == "done"


def test_bot_hangup_gives_up_waiting_after_max_hangup_wait() -> None:
    driver = Driver(CallPolicy(max_hangup_wait=2.0))
    driver.connect()
    driver.bot(AudioSent(b"\x01" * 160))
    driver.bot(HangupRequested())
    out = driver.run(5.0)  # the carrier never echoes the final mark
    assert CallEnded("bot_hangup") in out
    (end,) = [t for t, o in driver.log if isinstance(o, CallEnded)]
    assert end == pytest.approx(2.0)


def test_bot_drop_reconnects_with_a_reconnected_start() -> None:
    driver = Driver()
    driver.connect()
    driver.now = 1.0
    driver.drop()
    driver.carrier(MediaReceived(b"\x00" * 160, chunk=1))  # the caller talks meanwhile
    out = driver.run(1.5)
    assert ConnectBot(2, 5.0) in out
    _, start = driver.sent_to(ToBot, driver.connect())
    assert isinstance(start, StreamStarted)
    assert start.reconnected
    assert driver.call.stats.dropped_while_disconnected == 1


def test_bot_that_stays_away_gets_the_fallback_after_reconnect_for() -> None:
    driver = Driver(CallPolicy(reconnect_for=3.0))
    driver.connect()
    driver.drop()
    attempts = 0
    while driver.call.state is CallState.RECONNECTING and driver.now < 10:
        for output in driver.run(driver.now + 0.5):
            if isinstance(output, ConnectBot):
                attempts += 1
                driver.fail_connect()
    assert driver.call.state is CallState.ENDED
    assert driver.call.end_reason == "bot_unreachable"
    assert 3 <= attempts <= 10
    assert driver.now <= 3.5


def test_unreachable_bot_at_start_with_hangup_fallback() -> None:
    driver = Driver(CallPolicy(carrier_rest=True))
    out = driver.fail_connect("HTTP 403", refused=True)
    assert CarrierHangup() in out
    assert CloseCarrier(1000, "bot_unreachable") in out
    assert CallEnded("bot_unreachable") in out


def test_unreachable_bot_at_start_with_apology_fallback() -> None:
    driver = Driver(CallPolicy(fallback="apology", carrier_marks=False))
    driver.fail_connect("HTTP 403", refused=True)
    driver.run(5.0)
    frames = _frames(driver.sent_to(ToCarrier))
    assert len(frames) == 75  # three 330 ms tones and 500 ms of silence
    assert driver.call.end_reason == "bot_unreachable"
    assert any(isinstance(o, CloseCarrier) for _, o in driver.log)


def test_bot_protocol_errors_are_reported_and_counted() -> None:
    driver = Driver()
    driver.connect()
    (error,) = driver.sent_to(ToBot, driver.bot_error(ProtocolError("bad_audio", "not base64")))
    assert error == ErrorReported("bad_audio", "not base64")
    assert driver.state() is CallState.ACTIVE
    assert CloseBot(1, 1008, "x") in driver.bot_error(ProtocolError("x", "y", fatal=True))
    assert driver.state() is CallState.RECONNECTING
    assert driver.call.stats.protocol_errors == 2


def test_odd_pcm16_from_the_bot_is_a_bad_audio_error() -> None:
    driver = Driver(bot_format=PCM16_16K)
    driver.connect()
    out = driver.bot(AudioSent(b"\x00" * 3))
    (error,) = driver.sent_to(ToBot, out)
    assert isinstance(error, ErrorReported) and error.code == "bad_audio"


def test_transcripts_are_kept() -> None:
    driver = Driver()
    driver.connect()
    driver.bot(TranscriptReceived("caller", "hello"))
    assert driver.call.transcripts == [TranscriptReceived("caller", "hello")]


def test_transfer_waits_for_the_audio_queued_before_it() -> None:
    driver = Driver(CallPolicy(carrier_rest=True, carrier_marks=False))
    driver.connect()
    driver.bot(AudioSent(b"\x01" * 1600))  # "let me transfer you", 200 ms
    driver.bot(TransferRequested("+15550003333"))
    assert not any(isinstance(o, CarrierTransfer) for _, o in driver.log)
    driver.run(1.0)
    (when,) = [t for t, o in driver.log if isinstance(o, CarrierTransfer)]
    assert when == pytest.approx(0.200, abs=0.002)


def test_a_drop_silences_the_caller_and_forgets_pending_marks() -> None:
    driver = Driver()
    driver.connect()
    driver.bot(AudioSent(b"\x01" * 8000))
    driver.bot(MarkRequested("never"))
    driver.run(0.1)
    out = driver.drop()
    assert ClearRequested() in driver.sent_to(ToCarrier, out)
    assert driver.sent_to(ToBot, out) == []
    sent_before = len(_frames(driver.sent_to(ToCarrier)))
    driver.run(0.5)
    assert len(_frames(driver.sent_to(ToCarrier))) == sent_before


def test_bot_closing_with_1000_is_a_hangup_and_1008_ends_the_call() -> None:
    driver = Driver()
    driver.connect()
    driver.bot(AudioSent(b"\x01" * 800))
    driver.drop("bot closed", code=1000)
    assert driver.state() is CallState.ENDING
    driver.run(12.0)
    assert driver.call.end_reason == "bot_hangup"
    assert len(_frames(driver.sent_to(ToCarrier))) == 5  # what it said first was played

    other = Driver()
    other.connect()
    assert CallEnded("bot_error") in other.drop("bot refused us", code=1008)


def test_a_bot_that_refuses_the_reconnection_is_not_retried() -> None:
    driver = Driver()
    driver.connect()
    driver.drop()
    driver.run(0.5)
    assert CallEnded("bot_unreachable") in driver.fail_connect("HTTP 403", refused=True)


def test_too_many_protocol_errors_end_the_call() -> None:
    driver = Driver(CallPolicy(max_bot_errors=3))
    driver.connect()
    for _ in range(4):
        out = driver.bot_error(ProtocolError("bad_audio", "nope"))
    assert CallEnded("bot_error") in out
    assert StreamStopped("bot_error") in driver.sent_to(ToBot, out)
    assert CloseBot(1, 1008, "bot_error") in out


def test_shutdown_stops_the_bot_with_1001_and_each_socket_gets_its_own_stream_id() -> None:
    driver = Driver()
    _, first = driver.sent_to(ToBot, driver.connect())
    driver.drop()
    driver.run(0.5)
    _, second = driver.sent_to(ToBot, driver.connect())
    assert isinstance(first, StreamStarted)
    assert isinstance(second, StreamStarted)
    assert first.session_id == second.session_id == "vx-1"
    assert first.stream_id != second.stream_id
    driver.call.shutdown(driver.now)
    out = driver.collect()
    assert driver.sent_to(ToBot, out) == [StreamStopped("shutdown")]
    assert CloseBot(2, 1001, "shutdown") in out
    assert CloseCarrier(1001, "shutdown") in out


def test_the_bot_sees_the_carriers_clock_so_a_gap_shows() -> None:
    driver = Driver()
    driver.connect()
    driver.carrier(MediaReceived(b"\x01" * 160, chunk=1, timestamp_ms=0))
    driver.carrier(MediaReceived(b"\x01" * 160, chunk=2, timestamp_ms=20))
    driver.drop()
    driver.carrier(MediaReceived(b"\x01" * 160, chunk=3, timestamp_ms=40))  # nobody to hear it
    driver.run(0.5)
    driver.connect()
    driver.carrier(MediaReceived(b"\x01" * 160, chunk=4, timestamp_ms=60))
    stamps = [e.timestamp_ms for e in driver.sent_to(ToBot) if isinstance(e, MediaReceived)]
    assert stamps == [0, 20, 60]
