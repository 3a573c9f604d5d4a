"""The call core's inputs from the control plane (the REST API's live-call actions)."""

from __future__ import annotations

from dataclasses import replace

from test_call import Driver

from voxgate.bridge.call_api import (
    CallEnded,
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
    DtmfSendRequested,
    MediaReceived,
    StreamStarted,
    StreamStopped,
)
from voxgate.codecs.formats import PCMU_8K, AudioFormat, Encoding

PCM16_16K = AudioFormat(Encoding.PCM16, 16000)


def _active(policy: CallPolicy | None = None) -> Driver:
    driver = Driver(policy)
    driver.connect()
    return driver


def test_api_hangup_ends_at_once_with_its_own_reason_even_with_audio_queued() -> None:
    driver = _active(CallPolicy(carrier_rest=True))
    driver.bot(AudioSent(b"\xff" * 8000))  # a second of audio waiting
    driver.call.api_hangup(driver.now)
    outputs = driver.collect()
    assert StreamStopped("api_hangup") in driver.sent_to(ToBot, outputs)
    assert CarrierHangup() in outputs
    assert CloseCarrier(1000, "api_hangup") in outputs
    ended = driver.of(CallEnded, outputs)
    assert [e.reason for e in ended] == ["api_hangup"]  # type: ignore[attr-defined]
    assert driver.state() is CallState.ENDED
    assert not driver.call.live
    driver.call.api_hangup(driver.now)  # twice: nothing more
    assert driver.collect() == []


def test_api_transfer_needs_a_carrier_that_can_and_goes_after_queued_audio() -> None:
    refused = _active()
    assert refused.call.api_transfer("+15550009999", refused.now) is not None
    driver = _active(CallPolicy(carrier_rest=True, carrier_marks=False))
    driver.bot(AudioSent(b"\xff" * 320))  # two frames queued
    assert driver.call.api_transfer("+15550009999", driver.now) is None
    assert driver.call.api_transfer("+15550009999", driver.now) == "a transfer is already under way"
    assert driver.of(CarrierTransfer, driver.collect()) == []
    outputs = driver.run(driver.now + 0.1)
    assert driver.of(CarrierTransfer, outputs) == [CarrierTransfer("+15550009999")]


def test_api_dtmf_as_events_on_a_leg_that_sends_them_else_as_tones() -> None:
    events = _active(CallPolicy(carrier_dtmf_events=True))
    events.call.api_dtmf("12#", events.now)
    assert events.sent_to(ToCarrier, events.collect()) == [DtmfSendRequested("12#")]
    tones = _active()
    tones.call.api_dtmf("5", tones.now)
    frames = [e for e in tones.sent_to(ToCarrier, tones.run(1.0)) if isinstance(e, AudioSent)]
    assert len(frames) >= 5  # 100 ms of tone and a 60 ms gap, 20 ms frames


def test_api_play_queues_audio_and_barge_in_clears_what_was_queued() -> None:
    driver = _active()
    driver.bot(AudioSent(b"\x00" * 8000))  # the bot's second of audio
    assert driver.call.api_play(b"\x7f" * 160, driver.now, barge_in=True)
    frames = [
        e.payload for e in driver.sent_to(ToCarrier, driver.run(0.5)) if isinstance(e, AudioSent)
    ]
    assert frames[0] == b"\x7f" * 160  # the played audio first: the bot's was cleared
    assert all(frame != b"\x00" * 160 for frame in frames)
    bounded = _active(CallPolicy(max_queued_audio=1.0))
    assert not bounded.call.api_play(b"\x7f" * 16000, bounded.now, barge_in=False)


def test_replace_bot_closes_the_old_socket_and_connects_the_new_with_its_format() -> None:
    driver = _active()
    first = driver.attempt
    driver.bot(AudioSent(b"\x00" * 1600))
    driver.call.replace_bot(PCM16_16K, driver.now)
    outputs = driver.collect()
    assert CloseBot(first, 1000, "bot_replaced") in outputs
    assert ConnectBot(first + 1, 5.0) in outputs
    assert driver.state() is CallState.CONNECTING
    assert driver.call.bot_format == PCM16_16K
    start = [e for e in driver.sent_to(ToBot, driver.connect()) if isinstance(e, StreamStarted)]
    assert start[0].media_format == PCM16_16K
    assert driver.state() is CallState.ACTIVE
    sent = driver.sent_to(ToBot, driver.carrier(MediaReceived(b"\xff" * 160)))
    to_bot = [e for e in sent if isinstance(e, MediaReceived)]
    assert [len(e.payload) for e in to_bot] == [640]  # 20 ms of PCM16 at 16 kHz
    stale = driver.call.state
    driver.drop("late close of the old socket", attempt=first)  # ignored: not the current one
    assert driver.call.state is stale


def test_replace_bot_on_an_ended_call_does_nothing() -> None:
    driver = _active()
    driver.call.api_hangup(driver.now)
    driver.collect()
    driver.call.replace_bot(replace(PCM16_16K), driver.now)
    assert driver.collect() == []
    assert driver.call.bot_format == PCMU_8K
