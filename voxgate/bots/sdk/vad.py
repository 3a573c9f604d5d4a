"""Voice activity over the caller's audio: when speech starts and when it ends.

Theory of operation
-------------------
The caller's samples are cut into frames of ``frame_ms`` (10, 20 or 30 ms) and WebRTC's
voice-activity detector (``webrtcvad``: a Gaussian mixture over six sub-band energies)
judges each frame voiced or not; ``aggressiveness`` 0 to 3 trades missed speech for
fewer false alarms (3 is the strictest). webrtcvad takes 8, 16, 32 and 48 kHz; 24 kHz
audio is resampled to 16 kHz first. Two states::

    SILENT --voiced frames for start_ms--> SPEAKING --unvoiced frames for hangover_ms--> SILENT
            (SpeechStarted at the first of them)     (SpeechEnded at the end of the last voiced)

``start_ms`` guards against clicks (one frame is enough for barge-in: a prompt should stop
as soon as the caller talks); ``hangover_ms`` bridges the pauses between words, so a
sentence is one utterance. Times are milliseconds of the caller's audio since the first
sample fed: the detector is sans-I/O and keeps no clock of its own.
"""

from __future__ import annotations

from typing import Final

import numpy as np
import webrtcvad

from voxgate.bots.sdk.events import SpeechEnded, SpeechStarted
from voxgate.codecs.pcm import Pcm
from voxgate.codecs.resample import Resampler

VAD_RATES: Final = (8000, 16000, 32000, 48000)
FRAME_MS: Final = (10, 20, 30)


class VoiceActivity:
    """Speech start and end events from a stream of int16 samples at ``sample_rate``."""

    def __init__(
        self,
        sample_rate: int,
        *,
        aggressiveness: int = 2,
        start_ms: int = 20,
        hangover_ms: int = 300,
        frame_ms: int = 20,
    ) -> None:
        if not 0 <= aggressiveness <= 3:
            raise ValueError(f"aggressiveness must be 0 to 3, not {aggressiveness}")
        if frame_ms not in FRAME_MS:
            raise ValueError(f"frame_ms must be 10, 20 or 30, not {frame_ms}")
        if start_ms < frame_ms or hangover_ms < frame_ms:
            raise ValueError(f"start_ms and hangover_ms must be at least one frame ({frame_ms} ms)")
        self._resampler = None if sample_rate in VAD_RATES else Resampler(sample_rate, 16000)
        self.rate = sample_rate if self._resampler is None else 16000
        self.frame_ms = frame_ms
        self._frame = self.rate * frame_ms // 1000
        self._vad = webrtcvad.Vad(aggressiveness)
        self._start_frames = -(-start_ms // frame_ms)
        self._hangover_frames = -(-hangover_ms // frame_ms)
        self._pending = np.zeros(0, dtype=np.int16)
        self._frames_seen = 0
        self._run = 0  # frames in a row that disagree with the state
        self.speaking = False

    def feed(self, samples: Pcm) -> list[SpeechStarted | SpeechEnded]:
        """Judge the whole frames ``samples`` completes; the changes of state they make."""
        if self._resampler is not None:
            samples = self._resampler.process(samples)
        audio = np.concatenate([self._pending, samples]) if self._pending.size else samples
        whole = len(audio) - len(audio) % self._frame
        self._pending = audio[whole:].copy()
        changes: list[SpeechStarted | SpeechEnded] = []
        frames = audio[:whole].astype("<i2", copy=False)
        for offset in range(0, whole, self._frame):
            voiced = self._vad.is_speech(frames[offset : offset + self._frame].tobytes(), self.rate)
            change = self._step(voiced)
            if change is not None:
                changes.append(change)
        return changes

    def _step(self, voiced: bool) -> SpeechStarted | SpeechEnded | None:
        self._frames_seen += 1
        self._run = self._run + 1 if voiced != self.speaking else 0
        if not self.speaking and self._run >= self._start_frames:
            self.speaking, self._run = True, 0
            return SpeechStarted(self._ms(self._frames_seen - self._start_frames))
        if self.speaking and self._run >= self._hangover_frames:
            self.speaking, self._run = False, 0
            return SpeechEnded(self._ms(self._frames_seen - self._hangover_frames))
        return None

    def _ms(self, frames: int) -> int:
        return frames * self.frame_ms
