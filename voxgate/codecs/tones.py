"""Call-progress tones voxgate plays itself."""

from __future__ import annotations

from typing import Final

import numpy as np

from voxgate.codecs.pcm import Pcm

SIT_FREQUENCIES_HZ: Final = (913.8, 1370.6, 1776.7)
"""The special information tone (ITU-T E.180 section 7): three rising tones that tell
a caller, and any machine listening, that the call could not be completed."""

SIT_TONE_SECONDS: Final = 0.330


def special_information_tone(sample_rate: int, amplitude: float = 8000.0) -> Pcm:
    """The three tones of the special information tone, back to back (about 1 s)."""
    t = np.arange(round(SIT_TONE_SECONDS * sample_rate)) / sample_rate
    tones = [amplitude * np.sin(2 * np.pi * frequency * t) for frequency in SIT_FREQUENCIES_HZ]
    return np.round(np.concatenate(tones)).astype(np.int16)
