"""Codec speed, side by side with CPython's audioop in one run.

    .venv/bin/python -m bench.codecs            # full run, Markdown table
    .venv/bin/python -m bench.codecs --quick    # fewer repetitions
    .venv/bin/python -m bench.codecs --check    # exit 1 when a target is missed

Targets (issue 2): the 1,000-frame batch G.711 paths at least as fast as
audioop's C loop (ratio >= 1.0), and every per-frame operation under 5 us.
Each figure is the best of several repetitions (the least disturbed by other
load on a shared machine); voxgate and audioop are measured alternately.
"""

from __future__ import annotations

import argparse
import importlib
import platform
import sys
import timeit
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from types import ModuleType

import numpy as np

from voxgate.codecs import g711
from voxgate.codecs.dtmf import DtmfDetector
from voxgate.codecs.formats import PCMU_8K, AudioFormat, Encoding, Transcoder
from voxgate.codecs.resample import Resampler

FRAME = 160  # 20 ms at 8 kHz
BATCH_FRAMES = 1000
PER_FRAME_TARGET_US = 5.0
RESAMPLER_PAIRS = [
    (8000, 16000),
    (16000, 8000),
    (8000, 24000),
    (24000, 8000),
    (16000, 24000),
    (24000, 16000),
    (8000, 48000),
    (48000, 8000),
]


@dataclass
class Row:
    name: str
    scope: str  # "frame", "batch", or "info" (per frame, no target)
    voxgate_us: float
    audioop_us: float | None = None

    @property
    def ratio(self) -> float | None:
        return None if self.audioop_us is None else self.audioop_us / self.voxgate_us

    def missed(self) -> str | None:
        if self.scope == "batch" and self.ratio is not None and self.ratio < 1.0:
            return f"{self.name}: batch ratio {self.ratio:.2f} < 1.0"
        if self.scope == "frame" and self.voxgate_us > PER_FRAME_TARGET_US:
            return f"{self.name}: {self.voxgate_us:.2f} us per frame > {PER_FRAME_TARGET_US} us"
        return None


def _load_audioop() -> ModuleType:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        return importlib.import_module("audioop")


def _best_us(work: Callable[[], object], number: int, repeat: int) -> float:
    return min(timeit.repeat(work, number=number, repeat=repeat)) / number * 1e6


def _pair(
    name: str,
    scope: str,
    ours: Callable[[], object],
    theirs: Callable[[], object] | None,
    repeat: int,
) -> Row:
    number = 20 if scope == "batch" else 2000
    mine, others = [], []
    for _ in range(3):  # alternate, so both see the same machine
        mine.append(_best_us(ours, number, repeat))
        if theirs is not None:
            others.append(_best_us(theirs, number, repeat))
    return Row(name, scope, min(mine), min(others) if others else None)


def _decode_to_bytes(decode: Callable[[bytes], np.ndarray], codes: bytes) -> bytes:
    return decode(codes).tobytes()


def g711_rows(audioop: ModuleType, repeat: int) -> list[Row]:
    rng = np.random.default_rng(1)
    laws = (
        ("mu-law", g711.ulaw_encode, g711.ulaw_decode, audioop.lin2ulaw, audioop.ulaw2lin),
        ("A-law", g711.alaw_encode, g711.alaw_decode, audioop.lin2alaw, audioop.alaw2lin),
    )
    rows = []
    for frames, scope in ((1, "frame"), (BATCH_FRAMES, "batch")):
        samples = rng.normal(0, 6000, frames * FRAME).clip(-32768, 32767).astype(np.int16)
        linear = samples.tobytes()
        for law, encode, decode, lin2law, law2lin in laws:
            codes = encode(samples).tobytes()
            theirs_encode = partial(lin2law, linear, 2)
            theirs_decode = partial(law2lin, codes, 2)
            to_bytes = partial(_decode_to_bytes, decode, codes)
            rows += [
                _pair(
                    f"{law} encode, int16 -> codes",
                    scope,
                    partial(encode, samples),
                    theirs_encode,
                    repeat,
                ),
                _pair(
                    f"{law} decode, bytes -> int16",
                    scope,
                    partial(decode, codes),
                    theirs_decode,
                    repeat,
                ),
                _pair(f"{law} decode, bytes -> bytes", scope, to_bytes, theirs_decode, repeat),
            ]
    return rows


def per_frame_rows(repeat: int) -> list[Row]:
    rows = []
    for rate_in, rate_out in RESAMPLER_PAIRS:
        frame = np.zeros(rate_in // 50, dtype=np.int16)
        work = partial(Resampler(rate_in, rate_out).process, frame)
        rows.append(_pair(f"resample {rate_in} -> {rate_out}", "frame", work, None, repeat))
    carrier = bytes(FRAME)
    to_bot = partial(Transcoder(PCMU_8K, AudioFormat(Encoding.PCM16, 24000)).convert, carrier)
    rows.append(_pair("transcode PCMU 8k -> PCM16 24k", "frame", to_bot, None, repeat))
    same = partial(Transcoder(PCMU_8K, PCMU_8K).convert, carrier)
    rows.append(_pair("transcode PCMU 8k passthrough", "frame", same, None, repeat))
    return rows


def dtmf_rows(repeat: int) -> list[Row]:
    """In-band DTMF detection per frame: reported, not held to the 5 us codec target."""
    speechlike = np.random.default_rng(3).normal(0, 3000, FRAME).astype(np.int16)
    detect = partial(DtmfDetector().feed, speechlike)
    return [_pair("DTMF detector (information)", "info", detect, None, repeat)]


def _format(rows: list[Row]) -> str:
    lines = [
        "| operation | scope | voxgate (us) | audioop (us) | audioop / voxgate |",
        "|---|---|---:|---:|---:|",
    ]
    for row in rows:
        theirs = "" if row.audioop_us is None else f"{row.audioop_us:.2f}"
        ratio = "" if row.ratio is None else f"{row.ratio:.2f}"
        scope = f"{BATCH_FRAMES} frames" if row.scope == "batch" else "1 frame"
        lines.append(f"| {row.name} | {scope} | {row.voxgate_us:.2f} | {theirs} | {ratio} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.codecs", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="fewer repetitions")
    parser.add_argument("--check", action="store_true", help="exit 1 if a target is missed")
    args = parser.parse_args(argv)
    repeat = 3 if args.quick else 7
    rows = g711_rows(_load_audioop(), repeat) + per_frame_rows(repeat) + dtmf_rows(repeat)
    print(f"python {platform.python_version()}, numpy {np.__version__}, {platform.machine()}")
    print(_format(rows))
    missed = [m for row in rows if (m := row.missed()) is not None]
    for line in missed:
        print(f"target missed: {line}", file=sys.stderr)
    return 1 if args.check and missed else 0


if __name__ == "__main__":
    raise SystemExit(main())
