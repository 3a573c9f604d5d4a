"""The OpenAI Realtime API's WebSocket events, translated to and from a call's, without I/O.

Theory of operation
-------------------
A :class:`Translator` serves one call. It takes what the call says (the SDK's events) and
what the model's API says (its JSON events, as text), and answers each with a list of
*outputs* for the glue (:mod:`voxgate.bots.relay.relay`) to carry out, in order:
:class:`ToApi` (a client event to send), :class:`PlayAudio`, :class:`ClearAudio`,
:class:`PlaceMark`, :class:`Transcript` (actions on the call) and :class:`Notice` (a log
line). It never waits and never reads a clock: the glue passes ``now`` (monotonic seconds).

Wire format (OpenAI's Realtime API reference, client and server events; the beta
interface, with ``OpenAI-Beta: realtime=v1``, and the GA one, without)::

    call                               translator                          model API
    start            --> session.update {instructions, voice, audio formats, server VAD,
                         input transcription}; response.create {instructions} to say
                         start.opening_text
    Audio (20 ms)    --> input_audio_buffer.append {audio: base64}, in the API's format
    Dtmf "5"         --> conversation.item.create (user text "The caller pressed 5"),
                         response.create
    PlayAudio        <-- response.audio.delta {response_id, item_id, delta}
                         (GA: response.output_audio.delta)
    PlaceMark        <-- response.audio.done (GA: response.output_audio.done)
    ClearAudio       <-- input_audio_buffer.speech_started: barge-in, which also sends
                         response.cancel and conversation.item.truncate {audio_end_ms}
    Transcript bot   <-- response.audio_transcript.done (GA: response.output_audio_transcript.done)
    Transcript caller<-- conversation.item.input_audio_transcription.completed
    Notice           <-- error {error: {type, code, message}}, session.updated

Audio formats: the API takes ``pcm16`` (16-bit little-endian mono at 24 kHz),
``g711_ulaw`` or ``g711_alaw`` (8 kHz). ``auto`` picks G.711 when the call already is
(no conversion at all) and ``pcm16`` otherwise; caller audio is converted here with a
streaming :class:`~voxgate.codecs.Transcoder` and sent in batches of at least 20 ms
(voxgate's 20 ms chunks pass straight through). The model's audio goes out as
:class:`PlayAudio` in the API's format; the glue has the SDK convert it.

What the caller has heard, for barge-in. The model sends audio faster than real time, so
at barge-in part of it is still queued at voxgate and the carrier. A *playout clock*
models that queue: each piece of audio plays in real time from when it is sent, or from
when the audio sent before it ends (``queue_end``), whichever is later; a gap means the
caller's queue ran dry. So at ``speech_started`` the caller has heard, of each response
item, the part of its pieces the clock has played. After each item's audio, a mark
confirms it fully played: confirmed items are done with. At barge-in the translator clears
the call's queue, cancels the response still being generated (and drops any of its audio
that arrives later), and truncates every unconfirmed item to what the clock says was heard
(the API may hold more of the item than reached the relay, so an item heard to the end of
what was sent is truncated too). The estimate ignores network latency (tens of
milliseconds): good enough for the model to know where it was cut off.
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Final, Literal

from voxgate.bots.sdk.events import Audio, Dtmf, Error, Event, Hold, Mark, Start
from voxgate.codecs.formats import PCMA_8K, PCMU_8K, AudioFormat, Encoding, Transcoder

JsonObject = dict[str, Any]
Dialect = Literal["beta", "ga"]
"""``beta``: the interface behind ``OpenAI-Beta: realtime=v1``; ``ga``: the current one."""

AUDIO_CHOICES: Final = ("auto", "pcm16", "g711_ulaw", "g711_alaw")
API_FORMATS: Final = {
    "pcm16": AudioFormat(Encoding.PCM16, 24000),
    "g711_ulaw": PCMU_8K,
    "g711_alaw": PCMA_8K,
}
GA_FORMATS: Final[dict[str, JsonObject]] = {
    "pcm16": {"type": "audio/pcm", "rate": 24000},
    "g711_ulaw": {"type": "audio/pcmu"},
    "g711_alaw": {"type": "audio/pcma"},
}
TRANSCRIPTION_MODEL: Final = "whisper-1"
BATCH_MS: Final = 20
"""Caller audio goes to the API in pieces of at least this length."""
MARK_PREFIX: Final = "relay-"


# --- outputs: what the glue does ----------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ToApi:
    """Send this client event; ``audio`` ones may be dropped when the API is slow."""

    event: JsonObject
    audio: bool = False


@dataclass(frozen=True, slots=True)
class PlayAudio:
    """Queue the model's audio for the caller (bytes in the API's format)."""

    data: bytes


@dataclass(frozen=True, slots=True)
class ClearAudio:
    """Barge-in: drop the audio queued for the caller."""


@dataclass(frozen=True, slots=True)
class PlaceMark:
    """Ask voxgate to report ``name`` once the audio sent so far has played."""

    name: str


@dataclass(frozen=True, slots=True)
class Transcript:
    """Tell voxgate what was said."""

    role: Literal["caller", "bot"]
    text: str


@dataclass(frozen=True, slots=True)
class Notice:
    """A line for the call's log."""

    level: int
    text: str


Output = ToApi | PlayAudio | ClearAudio | PlaceMark | Transcript | Notice


# --- choices and client events --------------------------------------------------------------


def choose_audio(choice: str, call_format: AudioFormat) -> str:
    """The API's audio format name for ``--audio`` on a call in ``call_format``."""
    if choice != "auto":
        if choice not in API_FORMATS:
            raise ValueError(f"audio must be one of {', '.join(AUDIO_CHOICES)}, not {choice!r}")
        return choice
    if call_format == PCMU_8K:
        return "g711_ulaw"
    if call_format == PCMA_8K:
        return "g711_alaw"
    return "pcm16"


def session_update(dialect: Dialect, *, instructions: str, voice: str, audio: str) -> JsonObject:
    """``session.update``: instructions, voice, audio formats, server VAD, transcription."""
    transcription = {"model": TRANSCRIPTION_MODEL}
    turn_detection = {"type": "server_vad"}
    if dialect == "beta":
        session: JsonObject = {
            "modalities": ["audio", "text"],
            "instructions": instructions,
            "voice": voice,
            "input_audio_format": audio,
            "output_audio_format": audio,
            "input_audio_transcription": transcription,
            "turn_detection": turn_detection,
        }
    else:
        session = {
            "type": "realtime",
            "output_modalities": ["audio"],
            "instructions": instructions,
            "audio": {
                "input": {
                    "format": GA_FORMATS[audio],
                    "transcription": transcription,
                    "turn_detection": turn_detection,
                },
                "output": {"format": GA_FORMATS[audio], "voice": voice},
            },
        }
    return {"type": "session.update", "session": session}


def say_exactly(text: str) -> JsonObject:
    """``response.create`` asking the model to say ``text`` and nothing else."""
    instructions = f"Say exactly the following to the caller, word for word, then stop: {text}"
    return {"type": "response.create", "response": {"instructions": instructions}}


def user_text(text: str) -> JsonObject:
    """``conversation.item.create``: a user message holding ``text``."""
    content = [{"type": "input_text", "text": text}]
    return {
        "type": "conversation.item.create",
        "item": {"type": "message", "role": "user", "content": content},
    }


def append_audio(data: bytes) -> JsonObject:
    return {"type": "input_audio_buffer.append", "audio": base64.b64encode(data).decode("ascii")}


def truncate(item_id: str, audio_end_ms: int) -> JsonObject:
    return {
        "type": "conversation.item.truncate",
        "item_id": item_id,
        "content_index": 0,
        "audio_end_ms": audio_end_ms,
    }


def cancel(response_id: str) -> JsonObject:
    return {"type": "response.cancel", "response_id": response_id}


# --- the model's audio in play ----------------------------------------------------------------


@dataclass(slots=True)
class _Item:
    """One response item's audio: when each stretch of it plays on the playout clock."""

    item_id: str
    response_id: str
    stretches: list[tuple[float, float]] = field(default_factory=list)  # (begins, seconds)
    mark: str | None = None

    @property
    def sent_ms(self) -> float:
        return 1000 * sum(seconds for _, seconds in self.stretches)

    def add(self, begins: float, seconds: float) -> None:
        if self.stretches:
            first, length = self.stretches[-1]
            if abs(first + length - begins) < 1e-9:  # right after the last stretch
                self.stretches[-1] = (first, length + seconds)
                return
        self.stretches.append((begins, seconds))  # the first, or after a gap (a dry queue)

    def heard_ms(self, now: float) -> int:
        heard = sum(min(max(0.0, now - begins), seconds) for begins, seconds in self.stretches)
        return int(heard * 1000 + 1e-6)  # whole milliseconds, not cut short by rounding errors


@dataclass(slots=True)
class Stats:
    """What one call's relay did (for its last log line)."""

    caller_ms: float = 0.0
    model_ms: float = 0.0
    barge_ins: int = 0
    responses: int = 0
    late_audio_dropped: int = 0  # deltas of a cancelled response


@dataclass(slots=True)
class _Playout:
    """The playout clock and the items not yet confirmed played (oldest first)."""

    queue_end: float = 0.0
    items: deque[_Item] = field(default_factory=deque)

    def add(self, item_id: str, response_id: str, seconds: float, now: float) -> None:
        begins = max(now, self.queue_end)
        item = self.items[-1] if self.items and self.items[-1].item_id == item_id else None
        if item is None or item.mark is not None:
            item = _Item(item_id, response_id)
            self.items.append(item)
        item.add(begins, seconds)
        self.queue_end = begins + seconds

    def confirm(self, mark: str) -> bool:
        """Forget the items up to the one ``mark`` follows; False if no item has it."""
        if all(item.mark != mark for item in self.items):
            return False
        while self.items:
            if self.items.popleft().mark == mark:
                break
        return True

    def cut(self, now: float) -> list[tuple[str, int]]:
        """Empty the queue: each unconfirmed item, with how much of it was heard."""
        cut = [(item.item_id, item.heard_ms(now)) for item in self.items]
        self.items.clear()
        self.queue_end = now
        return cut


# --- the translator -----------------------------------------------------------------------------


class Translator:
    """One call's translation between the SDK's events and the Realtime API's."""

    def __init__(
        self,
        *,
        call_format: AudioFormat,
        audio: str = "auto",
        dialect: Dialect = "beta",
        voice: str = "alloy",
        instructions: str = "",
    ) -> None:
        self.call_format = call_format
        self.audio = choose_audio(audio, call_format)
        self.api_format = API_FORMATS[self.audio]
        self.dialect: Dialect = dialect
        self.voice = voice
        self.instructions = instructions
        self.stats = Stats()
        self._to_api = Transcoder(call_format, self.api_format)
        self._batch = bytearray()
        self._batch_bytes = self.api_format.bytes_per(BATCH_MS)
        self._carry = b""  # half a sample of the model's pcm16 audio
        self._playout = _Playout()
        self._responding: str | None = None  # the response being generated
        self._cancelled: set[str] = set()
        self._marks = 0
        self._handlers: dict[str, Callable[[JsonObject, float], list[Output]]] = {
            "session.created": self._on_session_created,
            "session.updated": self._on_session_updated,
            "response.created": self._on_response_created,
            "response.audio.delta": self._on_audio_delta,
            "response.output_audio.delta": self._on_audio_delta,
            "response.audio.done": self._on_audio_done,
            "response.output_audio.done": self._on_audio_done,
            "response.audio_transcript.done": self._on_bot_transcript,
            "response.output_audio_transcript.done": self._on_bot_transcript,
            "conversation.item.input_audio_transcription.completed": self._on_caller_transcript,
            "input_audio_buffer.speech_started": self._on_speech_started,
            "response.done": self._on_response_done,
            "error": self._on_error,
        }

    # --- the call's side -------------------------------------------------------------------

    def on_start(self, start: Start) -> list[Output]:
        """The first events: configure the session, then say the opening text if any."""
        instructions = start.system_prompt or self.instructions
        outputs: list[Output] = [
            ToApi(
                session_update(
                    self.dialect, instructions=instructions, voice=self.voice, audio=self.audio
                )
            )
        ]
        if start.opening_text:
            outputs.append(ToApi(say_exactly(start.opening_text)))
        return outputs

    def on_call_event(self, event: Event, now: float) -> list[Output]:
        match event:
            case Audio(data=data):
                return self._caller_audio(data)
            case Dtmf(digit=digit):
                return [ToApi(user_text(f"The caller pressed {digit}")), ToApi(_respond())]
            case Mark(name=name):
                self._playout.confirm(name)
            case Hold(on_hold=on_hold):
                return [Notice(logging.INFO, f"the caller is {'on' if on_hold else 'off'} hold")]
            case Error(code=code, message=message):
                return [Notice(logging.WARNING, f"voxgate reports {code}: {message}")]
        return []

    def _caller_audio(self, data: bytes) -> list[Output]:
        self.stats.caller_ms += 1000 * len(data) / self.call_format.bytes_per(1000)
        self._batch += self._to_api.convert(data)
        if len(self._batch) < self._batch_bytes:
            return []
        batch, self._batch = bytes(self._batch), bytearray()
        return [ToApi(append_audio(batch), audio=True)]

    # --- the API's side --------------------------------------------------------------------

    def on_api_message(self, message: str | bytes, now: float) -> list[Output]:
        """One WebSocket message from the API."""
        if isinstance(message, bytes):
            return [Notice(logging.WARNING, "ignoring a binary message from the API")]
        try:
            event = json.loads(message)
        except json.JSONDecodeError:
            return [Notice(logging.WARNING, "ignoring a message from the API that is not JSON")]
        if not isinstance(event, dict) or not isinstance(event.get("type"), str):
            return [Notice(logging.WARNING, "ignoring a JSON message from the API without a type")]
        handler = self._handlers.get(event["type"])
        if handler is None:
            return []  # the many events a relay has no use for
        try:
            return handler(event, now)
        except (KeyError, TypeError, ValueError, binascii.Error) as error:
            problem = f"{type(error).__name__}: {error}"
            return [Notice(logging.WARNING, f"ignoring a malformed {event['type']} ({problem})")]

    def _on_session_created(self, event: JsonObject, now: float) -> list[Output]:
        return [Notice(logging.DEBUG, "the API opened the session")]

    def _on_session_updated(self, event: JsonObject, now: float) -> list[Output]:
        heard, spoken = session_formats(event.get("session"))
        if (heard, spoken) != (self.audio, self.audio):
            text = f"the API set audio in {heard} / out {spoken}, not {self.audio} as asked"
            return [Notice(logging.WARNING, text)]
        return [Notice(logging.INFO, f"the model's session is ready ({self.audio} audio)")]

    def _on_response_created(self, event: JsonObject, now: float) -> list[Output]:
        self._responding = str(event["response"]["id"])
        self.stats.responses += 1
        return []

    def _on_audio_delta(self, event: JsonObject, now: float) -> list[Output]:
        response_id = str(event["response_id"])
        if response_id in self._cancelled:
            self.stats.late_audio_dropped += 1
            return []
        if self._responding is None:  # no response.created seen: the delta tells
            self._responding = response_id
        data = self._carry + base64.b64decode(event["delta"], validate=True)
        whole = len(data) - len(data) % self.api_format.bytes_per_sample
        data, self._carry = data[:whole], data[whole:]
        if not data:
            return []
        seconds = len(data) / self.api_format.bytes_per(1000)
        self._playout.add(str(event["item_id"]), response_id, seconds, now)
        self.stats.model_ms += seconds * 1000
        return [PlayAudio(data)]

    def _on_audio_done(self, event: JsonObject, now: float) -> list[Output]:
        return self._mark_item(str(event["item_id"]))

    def _mark_item(self, item_id: str) -> list[Output]:
        for item in self._playout.items:
            if item.item_id == item_id and item.mark is None:
                self._marks += 1
                item.mark = f"{MARK_PREFIX}{self._marks}"
                return [PlaceMark(item.mark)]
        return []

    def _on_response_done(self, event: JsonObject, now: float) -> list[Output]:
        response = event["response"]
        response_id = str(response["id"])
        if response_id == self._responding:
            self._responding = None
        outputs: list[Output] = []
        for item in list(self._playout.items):
            if item.response_id == response_id and item.mark is None:  # no audio.done came
                outputs += self._mark_item(item.item_id)
        status = response.get("status")
        if status not in (None, "completed", "cancelled"):
            details = response.get("status_details")
            outputs.append(Notice(logging.WARNING, f"a response ended {status}: {details}"))
        return outputs

    def _on_speech_started(self, event: JsonObject, now: float) -> list[Output]:
        """Barge-in: the caller talks over the model."""
        outputs: list[Output] = []
        done = []
        if self._playout.items:
            outputs.append(ClearAudio())
            done.append("playback cleared")
        if self._responding is not None:
            outputs.append(ToApi(cancel(self._responding)))
            done.append(f"response {self._responding} cancelled")
            self._cancelled.add(self._responding)
            self._responding = None
        for item_id, heard in self._playout.cut(now):
            outputs.append(ToApi(truncate(item_id, heard)))
            done.append(f"item {item_id} cut at {heard} ms")
        if not outputs:
            return []
        self.stats.barge_ins += 1
        text = f"barge-in: the caller spoke over the model; {', '.join(done)}"
        return [*outputs, Notice(logging.INFO, text)]

    def _on_bot_transcript(self, event: JsonObject, now: float) -> list[Output]:
        text = str(event["transcript"]).strip()
        return [Transcript("bot", text)] if text else []

    def _on_caller_transcript(self, event: JsonObject, now: float) -> list[Output]:
        text = str(event["transcript"]).strip()
        return [Transcript("caller", text)] if text else []

    def _on_error(self, event: JsonObject, now: float) -> list[Output]:
        error = event.get("error")
        error = error if isinstance(error, dict) else {}
        kind, code = error.get("type") or "error", error.get("code") or "-"
        message = error.get("message") or "(no message)"
        return [Notice(logging.WARNING, f"the API reports {kind} ({code}): {message}")]


def _respond() -> JsonObject:
    return {"type": "response.create"}


def session_formats(session: object) -> tuple[str | None, str | None]:
    """The input and output audio format names a ``session`` object (beta or GA) holds."""
    if not isinstance(session, dict):
        return None, None
    if "input_audio_format" in session or "output_audio_format" in session:
        return session.get("input_audio_format"), session.get("output_audio_format")
    audio = session.get("audio")
    if not isinstance(audio, dict):
        return None, None
    return _ga_format_name(audio.get("input")), _ga_format_name(audio.get("output"))


def _ga_format_name(side: object) -> str | None:
    if not isinstance(side, dict) or not isinstance(side.get("format"), dict):
        return None
    kind = side["format"].get("type")
    return next((name for name, fmt in GA_FORMATS.items() if fmt["type"] == kind), None)
