"""Audio for ``POST /v1/calls/{id}/play``: a WAV file or raw G.711/PCM16, made into the
call's carrier format (sans-I/O: bytes in, bytes out)."""

from __future__ import annotations

import io
import wave

import numpy as np

from voxgate.codecs.formats import AudioFormat, Encoding, Transcoder
from voxgate.errors import ApiError, VoxgateError

RAW_ENCODINGS = {"mulaw": Encoding.PCMU, "alaw": Encoding.PCMA, "pcm16": Encoding.PCM16}


def audio_for_call(data: bytes, kind: str, sample_rate: int, target: AudioFormat) -> bytes:
    """``data`` (``kind``: wav, mulaw, alaw or pcm16 at ``sample_rate``) in ``target``'s
    format; ApiError 422 naming the problem when it cannot be read."""
    if kind == "wav":
        source, payload = _wav(data)
    else:
        source, payload = AudioFormat(RAW_ENCODINGS[kind], sample_rate), data
    if len(payload) % source.bytes_per_sample:
        payload = payload[: len(payload) - len(payload) % source.bytes_per_sample]
    if not payload:
        raise ApiError(422, "invalid_audio", "the audio holds no samples", field="audio")
    try:
        return Transcoder(source, target).convert(payload)
    except VoxgateError as error:
        raise ApiError(422, "invalid_audio", f"cannot convert the audio: {error}") from None


def _wav(data: bytes) -> tuple[AudioFormat, bytes]:
    try:
        with wave.open(io.BytesIO(data), "rb") as reader:
            channels, width, rate = (
                reader.getnchannels(),
                reader.getsampwidth(),
                reader.getframerate(),
            )
            frames = reader.readframes(reader.getnframes())
    except (wave.Error, EOFError) as error:
        raise ApiError(
            422,
            "invalid_audio",
            f"not a PCM WAV file this API reads: {error or 'it ends too soon'}",
            field="audio",
        ) from None
    if width != 2:
        raise ApiError(422, "invalid_audio", "WAV audio must be 16-bit PCM", field="audio")
    if rate not in (8000, 16000, 24000):
        raise ApiError(
            422, "invalid_audio", f"WAV rate {rate} Hz: use 8000, 16000 or 24000", field="audio"
        )
    if channels > 1:
        samples = np.frombuffer(frames[: len(frames) - len(frames) % (2 * channels)], "<i2")
        mono = samples.reshape(-1, channels).mean(axis=1).astype("<i2")
        frames = mono.tobytes()
    return AudioFormat(Encoding.PCM16, rate), frames
