"""VoiceActivity: speech start and end from int16 samples (sans-I/O, over webrtcvad).

The voice is synthetic: a 150 Hz sawtooth (rich in harmonics, as a voice is) at -20 dBFS,
which webrtcvad judges voiced, between stretches of digital silence. webrtcvad lingers a
little after a voice stops (its own hangover), so the precise tests of ``start_ms`` and
``hangover_ms`` first measure webrtcvad's own frame decisions for the signal, then check that
VoiceActivity's events fall where those decisions and the two parameters put them.
"""

from __future__ import annotations

import random
from typing import Any

import numpy as np
import numpy.typing as npt
import pytest
import webrtcvad

from voxgate.bots.sdk import SpeechEnded, SpeechStarted, VoiceActivity

Pcm = npt.NDArray[np.int16]
FRAME_MS = 20
RATES = [8000, 16000, 24000, 32000, 48000]  # 24 kHz is resampled to 16 kHz for webrtcvad


def voiced(milliseconds: int, rate: int) -> Pcm:
    t = np.arange(rate * milliseconds // 1000) / rate
    sawtooth = 2 * ((150 * t) % 1.0) - 1  # RMS 1/sqrt(3)
    samples: Pcm = np.rint(sawtooth * 32767 * 10 ** (-20 / 20) * np.sqrt(3)).astype(np.int16)
    return samples


def silence(milliseconds: int, rate: int) -> Pcm:
    return np.zeros(rate * milliseconds // 1000, dtype=np.int16)


def signal(rate: int, *parts: tuple[str, int]) -> Pcm:
    """``("voice", 300), ("silence", 200)``... joined."""
    return np.concatenate(
        [voiced(ms, rate) if kind == "voice" else silence(ms, rate) for kind, ms in parts]
    )


def decisions(samples: Pcm, rate: int, aggressiveness: int = 2) -> list[bool]:
    """webrtcvad's own verdict on each 20 ms frame (a rate it takes)."""
    vad = webrtcvad.Vad(aggressiveness)
    frame = rate * FRAME_MS // 1000
    return [
        vad.is_speech(samples[i : i + frame].astype("<i2").tobytes(), rate)
        for i in range(0, len(samples) - frame + 1, frame)
    ]


def runs(verdicts: list[bool]) -> list[tuple[bool, int, int]]:
    """(voiced, first frame, length) of each run of equal verdicts."""
    found: list[tuple[bool, int, int]] = []
    for index, verdict in enumerate(verdicts):
        if found and found[-1][0] == verdict:
            kind, first, length = found[-1]
            found[-1] = (kind, first, length + 1)
        else:
            found.append((verdict, index, 1))
    return found


def test_the_synthetic_voice_is_voiced_and_silence_is_not() -> None:
    for rate in (8000, 16000, 32000, 48000):
        assert all(decisions(voiced(1000, rate), rate))
        assert not any(decisions(silence(1000, rate), rate))


@pytest.mark.parametrize("rate", RATES)
def test_one_utterance_gives_one_start_and_one_end(rate: int) -> None:
    audio = signal(rate, ("silence", 500), ("voice", 600), ("silence", 1000))
    events = VoiceActivity(rate).feed(audio)
    assert len(events) == 2
    started, ended = events
    assert started == SpeechStarted(500)
    assert isinstance(ended, SpeechEnded)
    assert 1100 <= ended.at_ms <= 1400  # the voice stops at 1100; webrtcvad lingers a little
    assert ended.at_ms % FRAME_MS == 0


@pytest.mark.parametrize("rate", RATES)
def test_partial_frames_are_carried_over_between_feeds(rate: int) -> None:
    audio = signal(
        rate, ("silence", 310), ("voice", 430), ("silence", 500), ("voice", 200), ("silence", 900)
    )
    whole = VoiceActivity(rate).feed(audio)
    pieces = random.Random(rate)
    detector = VoiceActivity(rate)
    fed: list[SpeechStarted | SpeechEnded] = []
    position = 0
    while position < len(audio):
        size = pieces.choice([1, 7, 100, 159, 161, 333, rate // 50])
        fed += detector.feed(audio[position : position + size])
        position += size
    assert fed == whole
    assert [type(e) for e in whole] == [SpeechStarted, SpeechEnded] * 2
    assert VoiceActivity(rate).feed(audio[:0]) == []


def test_start_ms_asks_for_that_much_voice_and_dates_the_start_at_its_first_frame() -> None:
    rate = 8000
    audio = signal(rate, ("silence", 400), ("voice", 60), ("silence", 1000))
    (_, _, _), (voiced_run, first, length), *_ = runs(decisions(audio, rate))
    assert voiced_run and length >= 3  # the 60 ms burst, and webrtcvad lingering after it

    just_enough = VoiceActivity(rate, start_ms=length * FRAME_MS).feed(audio)
    assert just_enough[0] == SpeechStarted(first * FRAME_MS)
    too_short = VoiceActivity(rate, start_ms=(length + 1) * FRAME_MS).feed(audio)
    assert too_short == []
    rounded_up = VoiceActivity(rate, start_ms=length * FRAME_MS - 5).feed(audio)
    assert rounded_up[0] == SpeechStarted(first * FRAME_MS)


def test_speech_started_comes_with_the_frame_that_completes_start_ms() -> None:
    rate, start_ms = 16000, 100
    audio = signal(rate, ("silence", 200), ("voice", 500), ("silence", 600))
    detector = VoiceActivity(rate, start_ms=start_ms)
    frame = rate * FRAME_MS // 1000
    when: list[tuple[int, SpeechStarted | SpeechEnded]] = []
    for index in range(0, len(audio) // frame):
        for event in detector.feed(audio[index * frame : (index + 1) * frame]):
            when.append((index, event))
    (started_at, started), (ended_at, ended) = when
    assert started == SpeechStarted(200)
    assert started_at * FRAME_MS == 200 + start_ms - FRAME_MS  # the 5th voiced frame
    assert isinstance(ended, SpeechEnded)
    assert ended_at * FRAME_MS == ended.at_ms + 300 - FRAME_MS  # after the 300 ms hangover


def test_hangover_ms_bridges_pauses_shorter_than_itself() -> None:
    rate = 8000
    audio = signal(
        rate, ("silence", 400), ("voice", 300), ("silence", 500), ("voice", 300), ("silence", 1200)
    )
    found = runs(decisions(audio, rate))
    assert [voiced for voiced, _, _ in found] == [False, True, False, True, False]
    _, (_, _, _), (_, pause_first, pause), (_, second_first, _), _ = found

    split = VoiceActivity(rate, hangover_ms=pause * FRAME_MS).feed(audio)
    assert [type(e) for e in split] == [SpeechStarted, SpeechEnded, SpeechStarted, SpeechEnded]
    assert split[1] == SpeechEnded(pause_first * FRAME_MS)  # the end of the last voiced frame
    assert split[2] == SpeechStarted(second_first * FRAME_MS)

    bridged = VoiceActivity(rate, hangover_ms=(pause + 1) * FRAME_MS).feed(audio)
    assert [type(e) for e in bridged] == [SpeechStarted, SpeechEnded]
    assert bridged[0] == split[0]


@pytest.mark.parametrize("frame_ms", [10, 20, 30])
def test_other_frame_lengths_date_events_in_their_own_steps(frame_ms: int) -> None:
    rate = 16000
    audio = signal(rate, ("silence", 600), ("voice", 600), ("silence", 1200))
    events = VoiceActivity(rate, frame_ms=frame_ms, start_ms=frame_ms).feed(audio)
    assert [type(e) for e in events] == [SpeechStarted, SpeechEnded]
    assert events[0] == SpeechStarted(600)
    assert all(e.at_ms % frame_ms == 0 for e in events)


def test_the_state_is_exposed_while_speaking() -> None:
    rate = 8000
    detector = VoiceActivity(rate)
    states = [detector.speaking]
    detector.feed(voiced(200, rate))
    states.append(detector.speaking)
    detector.feed(silence(1000, rate))
    states.append(detector.speaking)
    assert states == [False, True, False]


BAD_PARAMETERS: list[Any] = [
    pytest.param({"aggressiveness": -1}, "aggressiveness", id="aggressiveness--1"),
    pytest.param({"aggressiveness": 4}, "aggressiveness", id="aggressiveness-4"),
    pytest.param({"frame_ms": 15}, "frame_ms", id="frame-15ms"),
    pytest.param({"frame_ms": 0}, "frame_ms", id="frame-0ms"),
    pytest.param({"start_ms": 10}, "one frame", id="start-under-a-frame"),
    pytest.param({"hangover_ms": 0}, "one frame", id="hangover-0"),
    pytest.param({"frame_ms": 30, "start_ms": 20}, "one frame", id="start-under-a-30ms-frame"),
    pytest.param({"sample_rate": 11025}, "11025", id="unsupported-rate"),
]


@pytest.mark.parametrize(("parameters", "named"), BAD_PARAMETERS)
def test_bad_parameters_are_refused(parameters: dict[str, Any], named: str) -> None:
    arguments = {"sample_rate": 8000, **parameters}
    with pytest.raises(ValueError, match=named):
        VoiceActivity(**arguments)
