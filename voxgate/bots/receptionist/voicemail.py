"""Voicemail: the caller's message as it is recorded, and how it is kept.

A :class:`Recording` gathers the caller's audio (int16 at the call's rate) up to a
maximum length, and whether the caller spoke at all; the call flow
(:mod:`voxgate.bots.receptionist.ivr`) decides when it ends. :func:`save_message` keeps
it as two files in the voicemail directory::

    20250102T150405Z-<call id>.wav    16-bit PCM WAV at the call's rate
    20250102T150405Z-<call id>.json   {"call_id", "from", "to", "started_at",
                                       "duration_s", "ended_by", "wav"}

The names come from the time and voxgate's call id (reduced to letters, digits, ``-``
and ``_``), never from anything the caller sent. The JSON record is written last, and
whole (renamed into place): its presence says the message is complete.
"""

from __future__ import annotations

import json
import os
import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Final

import numpy as np

from voxgate.bots.sdk import Start, save_wav
from voxgate.codecs.pcm import Pcm

_UNSAFE: Final = re.compile(r"[^A-Za-z0-9_-]")
CALL_ID_CHARS: Final = 64
"""At most this much of the call id goes into a file name."""


class Recording:
    """One message: the caller's audio since the beep, at most ``max_seconds`` of it."""

    def __init__(self, sample_rate: int, max_seconds: float) -> None:
        self.sample_rate = sample_rate
        self.started_at = datetime.now(UTC)
        self.speech_heard = False
        self.ended_by = ""  # "silence", "length", "no speech" or "hangup" once over
        self._limit = round(max_seconds * sample_rate)
        self._chunks: list[Pcm] = []
        self._length = 0

    def add(self, samples: Pcm) -> None:
        """Keep ``samples`` (what goes beyond the maximum length is dropped)."""
        kept = samples[: self._limit - self._length]
        self._chunks.append(kept)
        self._length += len(kept)

    @property
    def full(self) -> bool:
        return self._length >= self._limit

    @property
    def duration_s(self) -> float:
        return self._length / self.sample_rate

    def samples(self) -> Pcm:
        return np.concatenate(self._chunks) if self._chunks else np.zeros(0, dtype=np.int16)


def save_message(recording: Recording, directory: Path, start: Start) -> Path:
    """Write the message's WAV and then its JSON record in ``directory`` (made if
    missing); the record's path."""
    directory.mkdir(parents=True, exist_ok=True)
    call_id = _UNSAFE.sub("_", start.call_id)[:CALL_ID_CHARS]
    stem = f"{recording.started_at:%Y%m%dT%H%M%SZ}-{call_id}"
    wav = directory / f"{stem}.wav"
    save_wav(wav, recording.samples(), recording.sample_rate)
    record = {
        "call_id": start.call_id,
        "from": start.from_number,
        "to": start.to_number,
        "started_at": recording.started_at.isoformat(timespec="milliseconds"),
        "duration_s": round(recording.duration_s, 3),
        "ended_by": recording.ended_by,
        "wav": wav.name,
    }
    path = directory / f"{stem}.json"
    partial = path.with_suffix(".json.partial")
    partial.write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
    os.replace(partial, path)
    return path
