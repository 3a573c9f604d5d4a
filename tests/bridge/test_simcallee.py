"""The simulated callee in stepped time: its frames, digits and hangup, what it hears, and
its script's schema (good and bad inputs, each error naming its field)."""

from __future__ import annotations

import base64
from typing import Any

import numpy as np
import pytest

from voxgate.bridge.events import (
    AudioSent,
    ClearRequested,
    DtmfReceived,
    DtmfSendRequested,
    MarkRequested,
    MediaReceived,
    StreamStopped,
    UpstreamEvent,
)
from voxgate.bridge.simcallee import (
    AudioMeter,
    CalleeScript,
    SimulatedCallee,
    prompt_audio,
)
from voxgate.codecs.dtmf import dtmf_sequence
from voxgate.codecs.formats import PCMA_8K, PCMU_8K, AudioFormat, Encoding, decode, encode

T0 = 12345.678  # an origin far from 0: due instants must stay exact all the same


def _run(callee: SimulatedCallee, until: float) -> list[tuple[float, UpstreamEvent]]:
    """Wake the callee at each instant it asks for, up to ``until``; events with their instant."""
    out: list[tuple[float, UpstreamEvent]] = []
    while (due := callee.next_due()) is not None and due <= until:
        out += [(due, event) for event in callee.tick(due)]
    return out


def _frames(events: list[tuple[float, UpstreamEvent]]) -> list[tuple[float, MediaReceived]]:
    return [(at, e) for at, e in events if isinstance(e, MediaReceived)]


# --- the clock --------------------------------------------------------------------------------


def test_frames_come_at_50_per_second_without_drift_over_60_seconds() -> None:
    callee = SimulatedCallee(CalleeScript(hangup_after=None), PCMU_8K, T0)
    frames = _frames(_run(callee, T0 + 60.0))
    assert len(frames) == 3001  # 0 s to 60 s inclusive
    for n, (at, frame) in enumerate(frames):
        assert at == T0 + n / 50
        assert frame.sequence == n + 1
        assert frame.timestamp_ms == 20 * n
        assert len(frame.payload) == 160
    assert callee.next_due() == T0 + 3001 / 50


def test_uneven_wake_ups_and_stalls_catch_up_on_the_same_grid() -> None:
    callee = SimulatedCallee(CalleeScript(hangup_after=None), PCMU_8K, T0)
    steps = np.random.default_rng(3).choice([0.001, 0.007, 0.019, 0.02, 0.031, 0.3], 4000)
    now, sequences = T0, []
    for step in steps:
        now += float(step)
        sequences += [e.sequence for e in callee.tick(now) if isinstance(e, MediaReceived)]
        assert T0 + (callee.frames_sent - 1) / 50 <= now < T0 + callee.frames_sent / 50
    assert sequences == list(range(1, len(sequences) + 1))
    assert now - T0 > 60


def test_digits_are_pressed_at_their_instants_in_time_order() -> None:
    script = CalleeScript(digits=((1.013, "#"), (0.25, "1"), (1.0, "A")), digit_ms=80)
    callee = SimulatedCallee(script, PCMU_8K, T0)
    events = _run(callee, T0 + 2.0)
    digits = [(round(at - T0, 6), e) for at, e in events if isinstance(e, DtmfReceived)]
    assert digits == [
        (0.25, DtmfReceived("1", 80, "simulated")),
        (1.0, DtmfReceived("A", 80, "simulated")),
        (1.013, DtmfReceived("#", 80, "simulated")),
    ]
    instants = [at for at, _ in events]
    assert instants == sorted(instants)
    before_a = next(
        i for i, (_, e) in enumerate(events) if isinstance(e, DtmfReceived) and e.digit == "A"
    )
    assert sum(isinstance(e, MediaReceived) for _, e in events[:before_a]) == 51  # 0 .. 1.0 s


def test_the_callee_hangs_up_at_hangup_after_and_says_nothing_more() -> None:
    callee = SimulatedCallee(CalleeScript(hangup_after=2.5), PCMU_8K, T0)
    events = _run(callee, T0 + 10)
    assert events[-1] == (T0 + 2.5, StreamStopped("caller_hangup"))
    assert len(_frames(events)) == 125  # frames due before the hangup
    assert callee.ended_by == "callee"
    assert callee.ended_at == T0 + 2.5
    assert callee.next_due() is None
    assert callee.tick(T0 + 20) == []


def test_one_late_tick_gives_everything_in_order_and_the_hangup_last() -> None:
    script = CalleeScript(digits=((0.01, "5"),), hangup_after=0.03)
    events = SimulatedCallee(script, PCMU_8K, T0).tick(T0 + 100)
    assert [type(e).__name__ for e in events] == [
        "MediaReceived",
        "DtmfReceived",
        "MediaReceived",
        "StreamStopped",
    ]


def test_a_closed_callee_is_silent() -> None:
    callee = SimulatedCallee(CalleeScript(), PCMU_8K, T0)
    callee.tick(T0 + 0.1)
    callee.close(T0 + 0.11)
    assert callee.ended_by == "bridge"
    assert callee.next_due() is None
    assert callee.tick(T0 + 1) == []


# --- what the callee says ----------------------------------------------------------------------


def _said(callee: SimulatedCallee, seconds: float) -> list[bytes]:
    return [f.payload for _, f in _frames(_run(callee, T0 + seconds))]


def test_the_prompt_is_what_is_sent_then_quiet_comfort_noise() -> None:
    callee = SimulatedCallee(CalleeScript(prompt_at=0.5), PCMU_8K, T0)
    payloads = _said(callee, 3.0)
    assert len(callee.prompt) == 8000  # the three tones: 1 s
    assert callee.prompt == prompt_audio(callee.script, PCMU_8K)
    samples = decode(callee.prompt, PCMU_8K).astype(np.float64)
    for start, hz in ((0, 440.0), (2800, 554.37), (5600, 659.25)):  # 300 ms, 50 ms apart
        spectrum = np.abs(np.fft.rfft(samples[start : start + 2400]))
        assert abs(np.argmax(spectrum) * 8000 / 2400 - hz) < 4  # bins of 3.3 Hz
    assert b"".join(payloads[25:75]) == callee.prompt
    before, after = AudioMeter(PCMU_8K), AudioMeter(PCMU_8K)
    for payload in payloads[:25]:
        before.feed(payload)
    for payload in payloads[75:]:
        after.feed(payload)
    assert before.voiced_seconds == after.voiced_seconds == 0.0
    assert len(set(payloads[75:])) > 1  # noise, not a constant


def test_prompt_audio_is_sent_byte_for_byte_padded_with_silence() -> None:
    audio = bytes(range(256)) * 2 + b"\x7f" * 10  # 522 bytes: 3.26 frames
    callee = SimulatedCallee(CalleeScript(prompt_audio=audio), PCMU_8K, T0)
    payloads = _said(callee, 1.0)
    assert b"".join(payloads[:4]) == audio + b"\xff" * (640 - 522)


def test_without_comfort_noise_the_background_is_digital_silence() -> None:
    script = CalleeScript(prompt="silence", comfort_noise=False)
    assert set(_said(SimulatedCallee(script, PCMU_8K, T0), 1.0)) == {b"\xff" * 160}
    assert set(_said(SimulatedCallee(script, PCMA_8K, T0), 1.0)) == {b"\xd5" * 160}


def test_comfort_noise_follows_its_seed() -> None:
    def noise(seed: int) -> list[bytes]:
        return _said(SimulatedCallee(CalleeScript(prompt="silence", seed=seed), PCMU_8K, T0), 1)

    assert noise(1) == noise(1)
    assert noise(1) != noise(2)


@pytest.mark.parametrize(
    ("prompt", "seconds", "dbfs"), [("tones", 1.0, (-17, -14)), ("speech", 1.12, (-30, -20))]
)
@pytest.mark.parametrize("fmt", [PCMU_8K, PCMA_8K, AudioFormat(Encoding.PCM16, 16000)], ids=str)
def test_the_named_prompts_are_about_a_second_of_voice(
    prompt: Any, seconds: float, dbfs: tuple[float, float], fmt: AudioFormat
) -> None:
    callee = SimulatedCallee(CalleeScript(prompt=prompt), fmt, T0)
    meter = AudioMeter(fmt)
    meter.feed(callee.prompt)
    assert meter.seconds == pytest.approx(seconds, abs=0.02)
    assert 0.6 * seconds <= meter.voiced_seconds <= seconds
    assert meter.rms_dbfs is not None
    assert dbfs[0] <= meter.rms_dbfs <= dbfs[1]
    payloads = _said(callee, 2.0)
    assert {len(p) for p in payloads} == {fmt.bytes_per(20)}


# --- what the callee hears ---------------------------------------------------------------------


def test_what_the_callee_hears_is_measured() -> None:
    callee = SimulatedCallee(CalleeScript(), PCMU_8K, T0)
    prompt = callee.prompt
    for i in range(0, len(prompt), 160):
        callee.deliver(AudioSent(prompt[i : i + 160]), T0 + 0.3 + i / 8000)
    callee.deliver(AudioSent(b"\xff" * 160 * 25), T0 + 1.5)
    callee.deliver(MarkRequested("m"), T0 + 1.6)
    callee.deliver(ClearRequested(), T0 + 1.7)
    heard = callee.heard
    meter = AudioMeter(PCMU_8K)
    meter.feed(prompt)
    assert heard.frames == 75
    assert heard.seconds == 1.5
    assert heard.voiced_seconds == meter.voiced_seconds
    assert heard.rms == pytest.approx(meter.rms)
    assert heard.first_voice_after == pytest.approx(0.3)
    assert (heard.marks, heard.clears, heard.digits, heard.ended_by) == (1, 1, "", None)


def test_dtmf_heard_as_tones_or_as_events_is_kept() -> None:
    callee = SimulatedCallee(CalleeScript(), PCMU_8K, T0)
    tones = encode(np.concatenate([dtmf_sequence("12#"), np.zeros(800, np.int16)]), PCMU_8K)
    for i in range(0, len(tones) - 160, 160):
        callee.deliver(AudioSent(tones[i : i + 160]), T0 + 1)
    callee.deliver(DtmfSendRequested("45"), T0 + 2)
    assert callee.heard.digits == "12#45"


def test_the_end_is_recorded_and_nothing_is_heard_after_it() -> None:
    callee = SimulatedCallee(CalleeScript(), PCMU_8K, T0)
    callee.transferred("+15550100000", T0 + 2)
    callee.deliver(AudioSent(callee.prompt), T0 + 3)
    callee.close(T0 + 4)  # a transferred callee stays transferred
    heard = callee.heard
    assert (heard.frames, heard.transfer_to, heard.ended_by) == (0, "+15550100000", "transfer")
    assert callee.ended_at == T0 + 2
    assert heard.as_dict()["transfer_to"] == "+15550100000"


# --- the script's schema -----------------------------------------------------------------------

AUDIO = base64.b64encode(b"\x00\x80" * 100).decode()


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (None, CalleeScript()),
        ({}, CalleeScript()),
        (
            {"ring": 0.5, "digits": "1#", "hangup_after": 3},
            CalleeScript(ring=0.5, digits=((1.0, "1"), (2.0, "#")), hangup_after=3.0),
        ),
        (
            {"digits": "12", "digits_at": 0.5, "digit_interval": 0.25},
            CalleeScript(digits=((0.5, "1"), (0.75, "2"))),
        ),
        (
            {"digits": [{"at": 2, "digit": "9"}, {"at": 0.5, "digit": "a"}]},
            CalleeScript(digits=((0.5, "A"), (2.0, "9"))),
        ),
        ({"answer": True}, CalleeScript(answer="answer")),
        ({"answer": False}, CalleeScript(answer="no-answer")),
        ({"answer": "busy"}, CalleeScript(answer="busy")),
        ({"outcome": "fail"}, CalleeScript(answer="fail")),
        ({"answer": "busy", "outcome": "busy"}, CalleeScript(answer="busy")),
        ({"hangup_after": None}, CalleeScript(hangup_after=None)),
        (  # what the REST API's model gives when nothing was set
            {"outcome": "answer", "ring": 1.0, "digits": "", "digits_at": 1.0, "hangup_after": 5.0},
            CalleeScript(),
        ),
        ({"prompt": "speech", "prompt_at": 0.2}, CalleeScript(prompt="speech", prompt_at=0.2)),
        ({"prompt_audio": AUDIO}, CalleeScript(prompt_audio=b"\x00\x80" * 100)),
        (
            {"comfort_noise": False, "seed": 7, "digit_ms": 250},
            CalleeScript(comfort_noise=False, seed=7, digit_ms=250),
        ),
    ],
)
def test_good_scripts(data: dict[str, Any] | None, expected: CalleeScript) -> None:
    assert CalleeScript.from_dict(data) == expected


@pytest.mark.parametrize(
    ("data", "field"),
    [
        ({"rign": 1}, "rign"),
        ({"ring": -1}, "ring"),
        ({"ring": 61}, "ring"),
        ({"ring": "1"}, "ring"),
        ({"ring": True}, "ring"),
        ({"ring": float("nan")}, "ring"),
        ({"answer": "maybe"}, "answer"),
        ({"answer": 1}, "answer"),
        ({"outcome": "hangup"}, "outcome"),
        ({"answer": True, "outcome": "busy"}, "outcome"),
        ({"prompt": "music"}, "prompt"),
        ({"prompt_audio": "***"}, "prompt_audio"),
        ({"prompt_audio": ""}, "prompt_audio"),
        ({"prompt_audio": 5}, "prompt_audio"),
        ({"prompt": "tones", "prompt_audio": AUDIO}, "prompt_audio"),
        ({"prompt_at": 6}, "prompt_at"),
        ({"digits": "1x"}, "digits[1]"),
        ({"digits": 5}, "digits"),
        ({"digits": "1" * 65}, "digits"),
        ({"digits": [{"at": 1}]}, "digits[0]"),
        ({"digits": [{"at": 1, "digit": "1", "for": 2}]}, "digits[0]"),
        ({"digits": [{"at": "soon", "digit": "1"}]}, "digits[0].at"),
        ({"digits": [{"at": 1, "digit": "12"}]}, "digits[0].digit"),
        ({"digits": "123456", "hangup_after": 3}, "digits[2].at"),
        ({"digits": "1", "digits_at": -1}, "digits_at"),
        ({"digits": "1", "digit_interval": 0}, "digit_interval"),
        ({"digit_ms": 10}, "digit_ms"),
        ({"digit_ms": 1.5}, "digit_ms"),
        ({"hangup_after": 0}, "hangup_after"),
        ({"hangup_after": 3601}, "hangup_after"),
        ({"comfort_noise": "yes"}, "comfort_noise"),
        ({"seed": -1}, "seed"),
        ([1, 2], "simulated_callee"),
    ],
)
def test_bad_scripts_name_their_field(data: Any, field: str) -> None:
    with pytest.raises(ValueError, match=r".") as caught:
        CalleeScript.from_dict(data)
    assert str(caught.value).startswith(f"{field}: "), str(caught.value)


def test_a_script_made_directly_is_checked_too() -> None:
    with pytest.raises(ValueError, match=r"^digits\[0\]\.digit: "):
        CalleeScript(digits=((1.0, "x"),))
    with pytest.raises(ValueError, match=r"^ring: "):
        CalleeScript(ring=-0.5)
