"""The receptionist bot's committed voice prompts, and the script that makes them.

The WAV files are checked as data (names, format, length, level, size); the
script ``scripts/make-prompts`` is run for real, with the project's Python,
against the real espeak-ng (installed by ``scripts/setup-tts``, which the test
command runs first: a missing espeak-ng fails the regeneration test).
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import numpy as np
import pytest
import soundfile

ROOT = Path(__file__).resolve().parents[2]
PROMPTS = ROOT / "voxgate" / "bots" / "receptionist" / "prompts"
MAKE_PROMPTS = ROOT / "scripts" / "make-prompts"
TIMEOUT = 120.0
MAX_DIRECTORY_BYTES = 400 * 1024


def _names() -> list[str]:
    with (PROMPTS / "prompts.toml").open("rb") as file:
        return list(tomllib.load(file))


def _make_prompts(*args: str, path: str | None = None) -> subprocess.CompletedProcess[str]:
    env = None if path is None else {"PATH": path}
    return subprocess.run(
        [sys.executable, str(MAKE_PROMPTS), *args],
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        check=False,
        env=env,
    )


def _telephone_duration(path: Path) -> float:
    """The duration of ``path``, checked to be an 8000 Hz mono mu-law WAV."""
    info = soundfile.info(str(path))
    assert (info.format, info.subtype) == ("WAV", "ULAW"), path.name
    assert (info.samplerate, info.channels) == (8000, 1), path.name
    return float(info.duration)


def test_every_prompt_has_its_wav_and_every_wav_its_prompt() -> None:
    names = _names()
    assert names
    assert sorted(names) == sorted(path.stem for path in PROMPTS.glob("*.wav"))


@pytest.mark.parametrize("name", _names())
def test_prompt_is_telephone_audio_of_sensible_length_and_level(name: str) -> None:
    path = PROMPTS / f"{name}.wav"
    assert 0.5 <= _telephone_duration(path) <= 15.0
    samples, _ = soundfile.read(str(path), dtype="float64")
    peak_dbfs = 20 * np.log10(max(float(np.abs(samples).max()), 1e-12))
    assert -6.0 <= peak_dbfs <= 0.0
    rms_dbfs = 10 * np.log10(max(float(np.mean(samples**2)), 1e-12))
    assert rms_dbfs > -40.0  # speech, not silence


def test_prompt_directory_stays_small() -> None:
    size = sum(path.stat().st_size for path in PROMPTS.iterdir() if path.is_file())
    assert size < MAX_DIRECTORY_BYTES


def test_regenerated_prompt_matches_the_committed_one(tmp_path: Path) -> None:
    if shutil.which("espeak-ng") is None:
        pytest.fail("espeak-ng is not installed: run scripts/setup-tts")
    done = _make_prompts("--out", str(tmp_path), "--only", "greeting")
    assert done.returncode == 0, done.stderr
    assert [path.name for path in tmp_path.iterdir()] == ["greeting.wav"]
    fresh = _telephone_duration(tmp_path / "greeting.wav")
    assert fresh == pytest.approx(_telephone_duration(PROMPTS / "greeting.wav"), rel=0.10)


def test_missing_espeak_named_by_option_exits_2_pointing_to_setup(tmp_path: Path) -> None:
    done = _make_prompts("--out", str(tmp_path), "--espeak", str(tmp_path / "no-espeak-ng"))
    assert done.returncode == 2
    assert "scripts/setup-tts" in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1
    assert list(tmp_path.iterdir()) == []


def test_espeak_missing_from_path_exits_2_pointing_to_setup(tmp_path: Path) -> None:
    empty = tmp_path / "bin"
    empty.mkdir()
    done = _make_prompts("--out", str(tmp_path / "out"), path=str(empty))
    assert done.returncode == 2
    assert "scripts/setup-tts" in done.stderr
    assert not (tmp_path / "out").exists()
