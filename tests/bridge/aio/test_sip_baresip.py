"""SIP calls into ``voxgate serve`` from baresip, a real softphone, end to end.

baresip (Debian's baresip-core 1.0, installed by scripts/setup-sip-peers) runs
headless, driven through its ``ctrl_tcp`` control port (tests/support/baresip.py).
Its microphone is a WAV file the test generates (``aufile``), and its
``sndfile`` filter saves the decoded audio of what it hears to a WAV file.
Each test runs ``voxgate serve`` with SIP on a free UDP port and its own RTP
port range, and baresip dials ``sip:+15557770000@127.0.0.1:<port>``.

- Echo: with the built-in echo bot, what baresip hears is what it said: the
  normalised cross-correlation of its recording with the source peaks above
  0.7 at some lag, and over the matched span the level is within 1 dB of the
  source's. The source ends with silence so that the echo's tail is heard
  before ``aufile`` reaches the end of the file, which ends baresip's call.
- Digits: keys sent with baresip's ``sndcode`` command travel as RFC 4733
  telephone-events and reach a scripted bot as ``dtmf`` messages, in order.
- Hold: baresip's ``hold`` and ``resume`` send re-INVITEs (``a=sendonly``,
  then ``a=sendrecv``); voxgate answers each with 200 OK (``a=recvonly``,
  then ``a=sendrecv``, read from baresip's SIP trace), logs the change, tells
  the bot, and the call stays up until baresip hangs up.
"""

from __future__ import annotations

import os
import wave
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Final

import numpy as np
import numpy.typing as npt
import pytest
from baresip import BARESIP, Baresip
from scenario import run
from scripted_bot import ScriptedBot
from sipp_peer import sip_node

RATE: Final = 8000
CALLEE: Final = "+15557770000"
KEYS: Final = "0123456789*#"

pytestmark = pytest.mark.skipif(BARESIP is None, reason="scripts/setup-sip-peers installs baresip")

Samples = npt.NDArray[np.float64]


def baresip_rtp_ports() -> tuple[int, int]:
    """20 port pairs below any of voxgate's ranges."""
    low = 30000 + (os.getpid() % 50) * 40
    return low, low + 39


def phone(tmp: Path, source: Path, *, record: bool = False) -> Baresip:
    home = tmp / "baresip"
    home.mkdir()
    return Baresip(
        home, source=source, rtp_ports=baresip_rtp_ports(), record=record, sip_trace=True
    )


def callee(port: int) -> str:
    return f"sip:{CALLEE}@127.0.0.1:{port}"


@contextmanager
def logs_shown_on_failure(tmp: Path) -> Iterator[None]:
    """On any failure, print voxgate's and baresip's logs (pytest shows them)."""
    try:
        yield
    except BaseException:
        for name in ("serve.log", "baresip/baresip.log"):
            path = tmp / name
            text = path.read_text(errors="replace") if path.exists() else "(none)"
            print(f"--- {name}\n{text[-12000:]}")
        raise


# --- audio ----------------------------------------------------------------------------------


def speech_like(seconds: float) -> Samples:
    """Voiced syllables: a gliding fundamental's harmonics, shaped by formant-like weights,
    under an envelope of syllables of different loudness with short gaps between them."""
    t = np.arange(int(RATE * seconds)) / RATE
    f0 = 120 + 40 * np.sin(2 * np.pi * 0.7 * t)
    phase = 2 * np.pi * np.cumsum(f0) / RATE
    weights = {1: 1.0, 2: 0.8, 3: 0.6, 5: 0.5, 8: 0.3, 13: 0.2, 19: 0.1}
    voice = sum(w * np.sin(k * phase) for k, w in weights.items())
    syllable = np.floor(t * 4).astype(int)
    loudness = np.random.default_rng(7).uniform(0.25, 1.0, syllable.max() + 1)[syllable]
    envelope = loudness * np.clip(np.sin(np.pi * (t * 4 % 1)) * 1.5, 0, 1)
    signal: Samples = voice * envelope
    scaled: Samples = signal / np.abs(signal).max() * 12000
    return scaled


def write_wav(path: Path, samples: Samples) -> None:
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(RATE)
        out.writeframes(np.round(samples).astype("<i2").tobytes())


def read_wav(path: Path) -> Samples:
    with wave.open(str(path), "rb") as wav:
        assert (wav.getnchannels(), wav.getsampwidth(), wav.getframerate()) == (1, 2, RATE)
        frames = wav.readframes(wav.getnframes())
    return np.frombuffer(frames, "<i2").astype(np.float64)


def best_match(source: Samples, heard: Samples) -> tuple[int, float]:
    """The lag of ``source`` in ``heard`` where their normalised cross-correlation peaks,
    and that peak: <s, h[k:k+n]> / (|s| |h[k:k+n]|), 1.0 for a perfect copy at any level."""
    n = len(source)
    assert len(heard) >= n, f"heard {len(heard) / RATE:.2f} s, less than the source"
    size = 1 << (len(heard) + n).bit_length()
    spectrum = np.fft.rfft(heard, size) * np.conj(np.fft.rfft(source, size))
    products = np.fft.irfft(spectrum, size)[: len(heard) - n + 1]
    energy = np.concatenate([[0.0], np.cumsum(heard**2)])
    norms = np.sqrt(np.maximum(energy[n:] - energy[:-n], 1e-9)) * np.linalg.norm(source)
    scores = products / norms
    lag = int(np.argmax(scores))
    return lag, float(scores[lag])


def rms_db(samples: Samples) -> float:
    return float(10 * np.log10(np.mean(samples**2)))


# --- tests ----------------------------------------------------------------------------------


def test_the_echo_bot_repeats_what_baresip_says(tmp_path: Path) -> None:
    source = speech_like(3.0)
    write_wav(tmp_path / "source.wav", np.concatenate([source, np.zeros(int(RATE * 1.5))]))

    async def scenario() -> None:
        with logs_shown_on_failure(tmp_path):
            async with (
                sip_node(tmp_path) as port,
                phone(tmp_path, tmp_path / "source.wav", record=True) as ua,
            ):
                await ua.command("dial", callee(port))
                await ua.event("CALL_ESTABLISHED")
                closed = await ua.event("CALL_CLOSED", timeout=20)
            assert closed["param"] == "end of file"
            recordings = ua.recordings("dec")
            assert len(recordings) == 1, recordings
            heard = read_wav(recordings[0])
            lag, peak = best_match(source, heard)
            assert peak > 0.7, f"best match {peak:.3f} at {lag / RATE:.3f} s"
            matched = heard[lag : lag + len(source)]
            assert abs(rms_db(matched) - rms_db(source)) < 1.0
            assert "call ended: caller_hangup" in (tmp_path / "serve.log").read_text()

    run(scenario(), timeout=60)


def test_digits_sent_by_baresip_reach_the_bot_in_order(tmp_path: Path) -> None:
    write_wav(tmp_path / "source.wav", speech_like(30.0) / 10)

    async def scenario() -> None:
        with logs_shown_on_failure(tmp_path):
            async with (
                ScriptedBot() as bot,
                sip_node(tmp_path, VOXGATE_BOT_URL=bot.url) as port,
                phone(tmp_path, tmp_path / "source.wav") as ua,
            ):
                await ua.command("dial", callee(port))
                await ua.event("CALL_ESTABLISHED")
                connection = await bot.connection()
                for count, key in enumerate(KEYS, 1):
                    await ua.command("sndcode", key)
                    await connection.wait_for_type("dtmf", count)
                await ua.command("hangup")
                await ua.event("CALL_CLOSED")
                stop = await connection.wait_for_type("stop")
            dtmf = connection.of_type("dtmf")
            assert "".join(d["digit"] for d in dtmf) == KEYS
            assert {d.get("method") for d in dtmf} == {"rfc4733"}
            assert stop[0]["reason"] == "caller_hangup"

    run(scenario(), timeout=60)


def reinvites(messages: list[str]) -> list[tuple[str, str]]:
    """The SDP direction of each re-INVITE baresip sent and of voxgate's 200 OK to it."""
    pairs = []
    invites = [m for m in messages if m.startswith("INVITE ")]
    for invite in invites[1:]:
        cseq = next(line for line in invite.splitlines() if line.startswith("CSeq:"))
        answers = [m for m in messages if m.startswith("SIP/2.0 200") and cseq in m]
        assert answers, f"no 200 OK to the re-INVITE {cseq}"
        pairs.append((direction(invite), direction(answers[0])))
    return pairs


def direction(message: str) -> str:
    kinds = ("a=sendrecv", "a=sendonly", "a=recvonly", "a=inactive")
    found = [line for line in message.splitlines() if line.strip() in kinds]
    return found[-1].strip()[2:] if found else "sendrecv"


def test_hold_and_resume_re_invites_are_answered_and_the_call_stays_up(tmp_path: Path) -> None:
    write_wav(tmp_path / "source.wav", speech_like(30.0) / 10)

    async def scenario() -> None:
        with logs_shown_on_failure(tmp_path):
            async with (
                ScriptedBot() as bot,
                sip_node(tmp_path, VOXGATE_BOT_URL=bot.url) as port,
                phone(tmp_path, tmp_path / "source.wav") as ua,
            ):
                await ua.command("dial", callee(port))
                await ua.event("CALL_ESTABLISHED")
                connection = await bot.connection()
                await ua.command("hold")
                await ua.event("CALL_REMOTE_SDP", count=2)  # voxgate's answer to the re-INVITE
                await connection.wait_for_type("hold")
                held = (await ua.command("listcalls"))["data"]
                await ua.command("resume")
                await ua.event("CALL_REMOTE_SDP", count=3)
                await connection.wait_for_type("hold", count=2)
                resumed = (await ua.command("listcalls"))["data"]
                assert not ua.of_type("CALL_CLOSED")
                await ua.command("hangup")
                await ua.event("CALL_CLOSED")
                stop = await connection.wait_for_type("stop")
            assert "ESTABLISHED  (on hold)" in held
            assert "ESTABLISHED" in resumed
            assert "on hold" not in resumed
            assert reinvites(ua.sip_messages()) == [
                ("sendonly", "recvonly"),
                ("sendrecv", "sendrecv"),
            ]
            assert [m["on_hold"] for m in connection.of_type("hold")] == [True, False]
            assert stop[0]["reason"] == "caller_hangup"
            log = (tmp_path / "serve.log").read_text()
            held_at = log.index("call on hold by the peer")
            assert log.index("call resumed by the peer") > held_at

    run(scenario(), timeout=60)
