"""The simulated callee of test-mode calls: a phone that follows a script.

Calls placed with a test API key reach this callee, not a trunk, so a bot can
be exercised end to end in CI: it says its prompt, presses digits on cue and
hangs up, and listens to what the call sends it.

Theory of operation
-------------------
Sans-I/O: the adapter (:mod:`voxgate.bridge.aio.simleg`) passes time in.
Ringing and the outcome are the adapter's business (:attr:`CalleeScript.ring`,
:attr:`CalleeScript.answer`); a :class:`SimulatedCallee` is made at the
answer, whose instant is its time origin. States::

    TALKING --hangup_after reached--> ENDED (by "callee": StreamStopped)
       |------ close() --------------> ENDED (by "bridge": the call hung up)
       '------ transferred() --------> ENDED (by "transfer")

- TALKING: :meth:`~SimulatedCallee.tick` returns every event due by ``now``
  in time order: frame ``n`` (:class:`MediaReceived`, 20 ms, ``sequence``
  from 1, ``timestamp_ms`` from 0) at ``origin + n/50``, computed from ``n``
  so that nothing drifts; a :class:`DtmfReceived` at each scripted instant;
  :class:`StreamStopped` at ``hangup_after`` (no frame due at or after it).
  Frames carry the prompt from frame ``round(prompt_at * 50)`` (its last one
  padded with silence), else seeded comfort noise or silence.
- What the call sends (:meth:`~SimulatedCallee.deliver`) is heard: audio is
  metered (:class:`AudioMeter`: 20 ms frames at :data:`VOICED_DBFS` or above
  are voice) and listened to for DTMF tones (a media stream carries the
  bot's digits in-band); marks, clears and DTMF events are counted
  (:attr:`~SimulatedCallee.heard`).
- ENDED: nothing more is sent or heard.

Script schema (:meth:`CalleeScript.from_dict`, e.g. the REST API's
``simulated_callee`` object; every field optional)::

    ring            seconds of ringing, 0..60 (1.0)
    answer          true | false (= "no-answer") | "answer" | "busy" | "no-answer" | "fail"
    outcome         the same as a string (the REST field's name); not both, unless equal
    prompt          "tones" (three tones, 1 s) | "speech" (speech-like, 1.1 s) | "silence"
    prompt_audio    base64 G.711 mu-law at 8 kHz, at most 30 s: said instead of prompt
    prompt_at       seconds after the answer the prompt starts (0.0)
    digits          "1#": one digit each digit_interval seconds from digits_at (1.0, 1.0)
                    or [{"at": 2.5, "digit": "1"}, ...]; 0-9 * # A-D, at most 64
    digit_ms        how long each press is reported to last, 20..5000 (100)
    hangup_after    seconds after the answer the callee hangs up, or null: it waits
                    for the call to end it (5.0; at most 3600)
    comfort_noise   low noise (-66 dBFS) rather than digital silence between words (true)
    seed            the comfort noise generator's seed, 0..2**32-1 (0)

Errors are :class:`ValueError`, their message led by the field (``"digits[1].at: ..."``).
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final, Literal, get_args

import numpy as np

from voxgate.bridge.events import (
    AudioSent,
    ClearRequested,
    DownstreamEvent,
    DtmfReceived,
    DtmfSendRequested,
    MarkRequested,
    MediaReceived,
    StreamStopped,
    UpstreamEvent,
)
from voxgate.codecs.dtmf import DETECTOR_SAMPLE_RATES, DTMF_DIGITS, DtmfDetector
from voxgate.codecs.formats import PCMU_8K, AudioFormat, Transcoder, decode, encode
from voxgate.codecs.pcm import Pcm

Outcome = Literal["answer", "busy", "no-answer", "fail"]
PromptName = Literal["tones", "speech", "silence"]
OUTCOMES: Final[tuple[Outcome, ...]] = get_args(Outcome)
PROMPTS: Final[tuple[PromptName, ...]] = get_args(PromptName)

FRAMES_PER_SECOND: Final = 50  # 20 ms frames
MAX_RING: Final = 60.0
MAX_SECONDS: Final = 3600.0  # the latest scripted instant, and the longest call
MAX_PRESSES: Final = 64
MAX_PROMPT_BYTES: Final = 30 * 8000  # 30 s of mu-law at 8 kHz
MAX_HEARD_DIGITS: Final = 256  # digits the call may send the callee that are kept
VOICED_DBFS: Final = -45.0  # a heard frame this loud or louder is voice, not noise
COMFORT_DBFS: Final = -66.0
PROMPT_PEAK: Final = 8000.0  # about -12 dBFS
TONES_HZ: Final = (440.0, 554.37, 659.25)  # an A major chord, one note at a time
VOWELS_HZ: Final = ((730, 1090), (270, 2290), (570, 840), (530, 1840))  # F1, F2 of four vowels


Press = tuple[float, str]  # (seconds after the answer, digit)


@dataclass(frozen=True, slots=True)
class CalleeScript:
    """What the simulated callee does; see the module docstring. Checked when made."""

    ring: float = 1.0
    answer: Outcome = "answer"
    prompt: PromptName = "tones"
    prompt_audio: bytes | None = field(default=None, repr=False)  # mu-law 8 kHz; wins
    prompt_at: float = 0.0
    digits: tuple[Press, ...] = ()  # sorted when made
    digit_ms: int = 100
    hangup_after: float | None = 5.0
    comfort_noise: bool = True
    seed: int = 0

    def __post_init__(self) -> None:
        _seconds("ring", self.ring, MAX_RING)
        if self.answer not in OUTCOMES:
            raise ValueError(f"answer: must be one of {', '.join(OUTCOMES)}, not {self.answer!r}")
        if self.prompt not in PROMPTS:
            raise ValueError(f"prompt: must be one of {', '.join(PROMPTS)}, not {self.prompt!r}")
        if self.prompt_audio is not None and not 0 < len(self.prompt_audio) <= MAX_PROMPT_BYTES:
            raise ValueError(f"prompt_audio: must hold 1 to {MAX_PROMPT_BYTES} bytes (30 s)")
        _seconds("prompt_at", self.prompt_at, MAX_SECONDS)
        _integer("digit_ms", self.digit_ms, 20, 5000)
        _integer("seed", self.seed, 0, 2**32 - 1)
        if not isinstance(self.comfort_noise, bool):
            raise ValueError(f"comfort_noise: must be true or false, not {self.comfort_noise!r}")
        end = self.hangup_after
        if end is not None:
            _seconds("hangup_after", end, MAX_SECONDS, positive=True)
            if self.prompt_at >= end:
                raise ValueError(f"prompt_at: {self.prompt_at} s is not before hangup_after")
        if len(self.digits) > MAX_PRESSES:
            raise ValueError(f"digits: at most {MAX_PRESSES} presses, not {len(self.digits)}")
        for i, (at, digit) in enumerate(self.digits):
            _seconds(f"digits[{i}].at", at, MAX_SECONDS)
            _digit(f"digits[{i}].digit", digit)
            if end is not None and at >= end:
                raise ValueError(f"digits[{i}].at: {at} s is not before hangup_after")
        object.__setattr__(self, "digits", tuple(sorted(self.digits)))

    @classmethod
    def from_dict(cls, data: Mapping[str, Any] | None) -> CalleeScript:
        """The script a JSON object describes (None: the defaults); see the module docstring."""
        if data is None:
            return cls()
        if not isinstance(data, Mapping):
            raise ValueError("simulated_callee: must be an object")
        for name in data:
            if name not in FIELDS:
                raise ValueError(f"{name}: unknown field (known: {', '.join(FIELDS)})")
        names = ("ring", "prompt", "prompt_at", "digit_ms", "hangup_after", "comfort_noise", "seed")
        given: dict[str, Any] = {name: data[name] for name in names if name in data}
        given["answer"] = _outcome(data)
        if "prompt" in data and "prompt_audio" in data:
            raise ValueError("prompt_audio: give prompt or prompt_audio, not both")
        if "prompt_audio" in data:
            given["prompt_audio"] = _base64("prompt_audio", data["prompt_audio"])
        given["digits"] = _presses(data)
        return cls(**given)


# --- checking a script ----------------------------------------------------------------------

EXTRA_FIELDS: Final = ("outcome", "digits_at", "digit_interval")
FIELDS: Final = (*(f.name for f in dataclasses.fields(CalleeScript)), *EXTRA_FIELDS)


def _seconds(name: str, value: object, high: float, *, positive: bool = False) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ValueError(f"{name}: must be a number, not {value!r}")
    if value < 0 or value > high or (positive and value == 0):
        low = "more than 0" if positive else "from 0"
        raise ValueError(f"{name}: must be {low} to {high:g} seconds, not {value:g}")
    return float(value)


def _integer(name: str, value: object, low: int, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise ValueError(f"{name}: must be a whole number from {low} to {high}, not {value!r}")
    return value


def _digit(name: str, value: object) -> str:
    if not isinstance(value, str) or len(value) != 1 or value.upper() not in DTMF_DIGITS:
        raise ValueError(f"{name}: must be one of 0-9 * # A-D, not {value!r}")
    return value.upper()


def _outcome(data: Mapping[str, Any]) -> Outcome:
    """``answer`` (true, false or an outcome) and ``outcome``, agreeing; "answer" if neither."""
    answer = data.get("answer", "answer")
    answer = "answer" if answer is True else "no-answer" if answer is False else answer
    if answer not in OUTCOMES:
        raise ValueError(f"answer: must be true, false or one of {', '.join(OUTCOMES)}")
    outcome = data.get("outcome", answer)
    if outcome not in OUTCOMES or ("answer" in data and outcome != answer):
        raise ValueError(f"outcome: must be one of {', '.join(OUTCOMES)}, agreeing with answer")
    result: Outcome = outcome
    return result


def _base64(name: str, value: object) -> bytes:
    if not isinstance(value, str) or len(value) > MAX_PROMPT_BYTES * 4 // 3 + 4:
        raise ValueError(f"{name}: must be base64 text of at most {MAX_PROMPT_BYTES} bytes")
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise ValueError(f"{name}: is not valid base64") from None


def _presses(data: Mapping[str, Any]) -> tuple[Press, ...]:
    digits = data.get("digits", "")
    if isinstance(digits, str):
        start = _seconds("digits_at", data.get("digits_at", 1.0), MAX_SECONDS)
        step = _seconds("digit_interval", data.get("digit_interval", 1.0), 60.0, positive=True)
        if len(digits) > MAX_PRESSES:
            raise ValueError(f"digits: at most {MAX_PRESSES} digits, not {len(digits)}")
        return tuple((start + i * step, _digit(f"digits[{i}]", d)) for i, d in enumerate(digits))
    if not isinstance(digits, list):
        raise ValueError("digits: must be a string or a list of {at, digit} objects")
    if len(digits) > MAX_PRESSES:
        raise ValueError(f"digits: at most {MAX_PRESSES} presses, not {len(digits)}")
    presses: list[Press] = []
    for i, item in enumerate(digits):
        if not isinstance(item, Mapping) or set(item) != {"at", "digit"}:
            raise ValueError(f"digits[{i}]: must be an object with 'at' and 'digit' only")
        at = _seconds(f"digits[{i}].at", item["at"], MAX_SECONDS)
        presses.append((at, _digit(f"digits[{i}].digit", item["digit"])))
    return tuple(presses)


# --- what the callee says -------------------------------------------------------------------


def prompt_audio(script: CalleeScript, fmt: AudioFormat) -> bytes:
    """The script's prompt in ``fmt``, padded with silence to whole 20 ms frames (audio
    given in ``fmt`` is used as it is)."""
    if script.prompt_audio is not None:
        audio = Transcoder(PCMU_8K, fmt).convert(script.prompt_audio)
    elif script.prompt == "tones":
        audio = encode(_tones(fmt.sample_rate), fmt)
    elif script.prompt == "speech":
        audio = encode(_speech(fmt.sample_rate), fmt)
    else:
        audio = b""
    frame = fmt.samples_per(20)
    missing = -(len(audio) // fmt.bytes_per_sample) % frame
    return audio + encode(np.zeros(missing, np.int16), fmt)


def _tones(rate: int) -> Pcm:
    """Three 300 ms tones with 50 ms between them: 1 s."""
    t = np.arange(round(0.3 * rate)) / rate
    ramp = np.minimum(1.0, np.minimum(t, 0.3 - t) / 0.005)  # 5 ms ramps: no clicks
    tones = [ramp * np.sin(2 * np.pi * hz * t) for hz in TONES_HZ]
    gap = np.zeros(round(0.05 * rate))
    return _scaled(np.concatenate([tones[0], gap, tones[1], gap, tones[2]]))


def _speech(rate: int) -> Pcm:
    """Four voiced syllables of 220 ms, 80 ms apart: a pitch-gliding harmonic source
    shaped by two formants, under a syllable envelope (1.12 s)."""
    n = round(0.22 * rate)
    t = np.arange(n) / rate
    envelope = np.sin(np.pi * t / 0.22) ** 2
    pause, parts = np.zeros(round(0.08 * rate)), []
    for i, formants in enumerate(VOWELS_HZ):
        f0 = 130.0 - 8 * i
        phase = 2 * np.pi * np.cumsum(f0 * (1 + 0.08 * np.sin(np.pi * t / 0.22))) / rate
        voice = np.zeros(n)
        for k in range(1, int(min(3400.0, rate / 2 - 200) // (f0 * 1.08)) + 1):
            gain = sum(np.exp(-(((k * f0 - f) / 150.0) ** 2)) for f in formants) + 0.05
            voice += gain / math.sqrt(k) * np.sin(k * phase)
        parts += [voice * envelope, pause]
    return _scaled(np.concatenate(parts[:-1]))


def _scaled(signal: np.ndarray[Any, np.dtype[np.float64]]) -> Pcm:
    peak = float(np.abs(signal).max()) or 1.0
    return np.round(signal * (PROMPT_PEAK / peak)).astype(np.int16)


def _background(script: CalleeScript, fmt: AudioFormat) -> list[bytes]:
    """The frames said between words: one second of comfort noise, or one silent frame."""
    frame = fmt.samples_per(20)
    if not script.comfort_noise:
        return [encode(np.zeros(frame, np.int16), fmt)]
    sigma = 32768 * 10 ** (COMFORT_DBFS / 20)
    noise = np.random.default_rng(script.seed).normal(0.0, sigma, frame * FRAMES_PER_SECOND)
    samples = np.round(noise).astype(np.int16)
    return [encode(samples[i : i + frame], fmt) for i in range(0, samples.size, frame)]


# --- what the callee hears ------------------------------------------------------------------


class AudioMeter:
    """Loudness of audio in 20 ms frames: how much of it is voice, and how loud that is."""

    def __init__(self, fmt: AudioFormat) -> None:
        self.fmt = fmt
        self.samples = 0
        self.voiced_samples = 0
        self.peak = 0
        self.frame_samples = fmt.samples_per(20)
        self._energy = 0.0  # of the voiced frames
        self._floor = (32768 * 10 ** (VOICED_DBFS / 20)) ** 2  # mean square of a voiced frame

    def feed(self, payload: bytes) -> Pcm:
        """Measure ``payload`` (in the meter's format); returns its samples."""
        samples = decode(payload, self.fmt)
        self.samples += samples.size
        if samples.size:
            self.peak = max(self.peak, int(np.abs(samples.astype(np.int32)).max()))
        wide = samples.astype(np.float64)
        for start in range(0, wide.size, self.frame_samples):
            chunk = wide[start : start + self.frame_samples]
            energy = float(np.dot(chunk, chunk))
            if energy >= self._floor * chunk.size:
                self.voiced_samples += chunk.size
                self._energy += energy
        return samples

    @property
    def seconds(self) -> float:
        return self.samples / self.fmt.sample_rate

    @property
    def voiced_seconds(self) -> float:
        return self.voiced_samples / self.fmt.sample_rate

    @property
    def rms(self) -> float:
        """RMS of the voiced frames, in int16 units (0.0 when none was voiced)."""
        return math.sqrt(self._energy / self.voiced_samples) if self.voiced_samples else 0.0

    @property
    def rms_dbfs(self) -> float | None:
        return 20 * math.log10(self.rms / 32768) if self.voiced_samples else None


@dataclass(frozen=True, slots=True)
class Heard:
    """What the callee heard; times in seconds after the answer."""

    frames: int  # 20 ms of audio each
    seconds: float
    voiced_seconds: float
    rms: float  # of the voiced audio, int16 units
    rms_dbfs: float | None
    peak: int
    first_voice_after: float | None  # when voiced audio first arrived
    digits: str  # DTMF heard: tones in the audio, or events
    marks: int
    clears: int
    transfer_to: str | None
    ended_by: str | None  # "callee", "bridge", "transfer"; None while talking

    def as_dict(self) -> dict[str, object]:
        fields = dataclasses.asdict(self).items()
        return {k: round(v, 3) if isinstance(v, float) else v for k, v in fields}


class SimulatedCallee:
    """A callee answering at ``now``, following ``script``; see the module docstring."""

    def __init__(self, script: CalleeScript, fmt: AudioFormat, now: float) -> None:
        self.script = script
        self.fmt = fmt
        self.answered_at = now
        self.prompt = prompt_audio(script, fmt)
        self.ended_at: float | None = None
        self.ended_by: str | None = None
        self.transfer_to: str | None = None
        self.frames_sent = 0
        self.digits_sent = 0
        self._frame_bytes = fmt.bytes_per(20)
        self._prompt_first = round(script.prompt_at * FRAMES_PER_SECOND)
        self._prompt_frames = len(self.prompt) // self._frame_bytes
        self._background = _background(script, fmt)
        end = script.hangup_after
        self._hangup = math.inf if end is None else now + end
        self._last_frame = math.inf if end is None else math.ceil(round(end * 50, 6))  # not sent
        self._ear = AudioMeter(fmt)
        usable = fmt.sample_rate in DETECTOR_SAMPLE_RATES
        self._detector = DtmfDetector(fmt.sample_rate) if usable else None
        self._first_voice: float | None = None
        self._heard_digits: list[str] = []
        self._marks = 0
        self._clears = 0

    @property
    def ended(self) -> bool:
        return self.ended_by is not None

    # --- the clock ------------------------------------------------------------------------

    def next_due(self) -> float | None:
        if self.ended:
            return None
        return min(self._frame_due(), self._press_due(), self._hangup)

    def tick(self, now: float) -> list[UpstreamEvent]:
        """Everything due by ``now``, in time order (a frame first on a tie, the hangup last)."""
        events: list[UpstreamEvent] = []
        digits, hangup = self.script.digits, self._hangup
        while not self.ended:
            frame, press = self._frame_due(), self._press_due()
            if frame <= min(press, hangup, now):
                events.append(self._frame())
            elif press <= min(hangup, now):
                digit = digits[self.digits_sent][1]
                self.digits_sent += 1
                events.append(DtmfReceived(digit, self.script.digit_ms, method="simulated"))
            elif hangup <= now:
                self._end("callee", hangup)
                events.append(StreamStopped("caller_hangup"))
            else:
                break
        return events

    def _press_due(self) -> float:
        digits = self.script.digits
        if self.digits_sent < len(digits):
            return self.answered_at + digits[self.digits_sent][0]
        return math.inf

    def _frame_due(self) -> float:
        n = self.frames_sent
        return math.inf if n >= self._last_frame else self.answered_at + n / FRAMES_PER_SECOND

    def _frame(self) -> MediaReceived:
        n = self.frames_sent
        self.frames_sent += 1
        index, size = n - self._prompt_first, self._frame_bytes
        payload = self._background[n % len(self._background)]
        if 0 <= index < self._prompt_frames:
            payload = self.prompt[index * size : (index + 1) * size]
        return MediaReceived(payload, sequence=n + 1, timestamp_ms=n * 20)

    # --- what the call does to the callee -------------------------------------------------

    def deliver(self, event: DownstreamEvent, now: float) -> None:
        """What the call sends the callee (ignored once it has hung up)."""
        if self.ended:
            return
        if isinstance(event, AudioSent):
            voiced = self._ear.voiced_samples
            samples = self._ear.feed(event.payload)
            if self._first_voice is None and self._ear.voiced_samples > voiced:
                self._first_voice = now - self.answered_at
            if self._detector is not None:
                self._note_digits(d.digit for d in self._detector.feed(samples))
        elif isinstance(event, DtmfSendRequested):
            self._note_digits(event.digits)
        elif isinstance(event, MarkRequested):
            self._marks += 1
        elif isinstance(event, ClearRequested):
            self._clears += 1

    def close(self, now: float) -> None:
        """The call hung up on the callee."""
        self._end("bridge", now)

    def transferred(self, target: str, now: float) -> None:
        """The call was moved to ``target``: the callee is no longer in it."""
        if not self.ended:
            self.transfer_to = target[:256]
            self._end("transfer", now)

    def _end(self, by: str, now: float) -> None:
        if self.ended:
            return
        self.ended_by, self.ended_at = by, now
        if self._detector is not None:
            self._note_digits(d.digit for d in self._detector.flush())

    def _note_digits(self, digits: Iterable[str]) -> None:
        self._heard_digits += list(digits)[: MAX_HEARD_DIGITS - len(self._heard_digits)]

    @property
    def heard(self) -> Heard:
        ear = self._ear
        return Heard(
            frames=ear.samples // ear.frame_samples,
            seconds=ear.seconds,
            voiced_seconds=ear.voiced_seconds,
            rms=ear.rms,
            rms_dbfs=ear.rms_dbfs,
            peak=ear.peak,
            first_voice_after=self._first_voice,
            digits="".join(self._heard_digits),
            marks=self._marks,
            clears=self._clears,
            transfer_to=self.transfer_to,
            ended_by=self.ended_by,
        )
