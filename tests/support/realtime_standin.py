"""A stand-in for a speech-to-speech model API of the OpenAI Realtime kind, over loopback.

Written from OpenAI's Realtime API reference (client and server events, the beta session
object and its GA successor), independently of the relay bot, so the relay's tests compare
it with the documented wire format rather than with itself:

- Connection: ``GET /v1/realtime?model=<model>`` upgraded to a WebSocket, with
  ``Authorization: Bearer <key>``; a wrong key is refused with HTTP 401 before the upgrade,
  an unknown model with 400. ``OpenAI-Beta: realtime=v1`` selects the beta interface (flat
  ``input_audio_format``/``output_audio_format`` ``pcm16``/``g711_ulaw``/``g711_alaw``,
  events ``response.audio.delta``...); without it the GA one (``session.type: realtime``,
  ``session.audio.input.format {type: audio/pcm|audio/pcmu|audio/pcma}``, events
  ``response.output_audio.delta``...).
- The server speaks first: ``session.created``. Each ``session.update`` is applied field by
  field and answered with ``session.updated`` holding the whole session.
- ``input_audio_buffer.append {audio}`` adds audio in the session's input format (pcm16 is
  24 kHz mono little-endian). With ``turn_detection`` ``server_vad`` (the default), a chunk
  louder than ``loud_dbfs`` starts speech (``input_audio_buffer.speech_started
  {audio_start_ms, item_id}``); after ``speech_ms`` of loud audio the turn ends
  (``speech_stopped``, ``conversation.item.input_audio_transcription.completed
  {item_id, content_index, transcript}``) and a response starts, as after
  ``response.create``: ``response.created``, then ``response.audio.delta {response_id,
  item_id, output_index, content_index, delta}`` chunks of a ``tone_hz`` sine in the
  session's output format (one every ``chunk_interval`` s) with transcript deltas, then
  ``response.audio.done``, ``response.audio_transcript.done {transcript}`` and
  ``response.done {response: {id, status}}``.
- ``response.cancel`` and ``conversation.item.truncate {item_id, content_index,
  audio_end_ms}`` stop the response's deltas (``response.done`` says ``cancelled``); a
  truncation past the audio sent, or a cancel with no response active, is an ``error``
  event, as the reference says. A ``response.create`` while a response is active is too.
- :meth:`StandInSession.send_error` and :meth:`StandInSession.close` play an API that
  fails; :meth:`StandInSession.speech_started` one whose VAD hears the caller.

Everything a client sends is recorded per connection (:attr:`StandInSession.received`),
with the upgrade's headers. The stand-in's own WebSocket library logs to a logger kept
at WARNING, so the keys it checks never reach a test's captured log.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import itertools
import json
import logging
import math
from collections.abc import Callable
from types import TracebackType
from typing import Any, Final, Self
from urllib.parse import parse_qs, urlsplit

import numpy as np
from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response

from voxgate.bots.sdk import to_format, tone
from voxgate.codecs.formats import PCMA_8K, PCMU_8K, AudioFormat, Encoding, decode

JsonObject = dict[str, Any]

API_KEY: Final = "sk-standin-0123456789abcdef"
MODEL: Final = "gpt-4o-realtime-preview"
TIMEOUT: Final = 5.0

FORMATS: Final = {
    "pcm16": AudioFormat(Encoding.PCM16, 24000),
    "g711_ulaw": PCMU_8K,
    "g711_alaw": PCMA_8K,
}
GA_TYPES: Final = {"audio/pcm": "pcm16", "audio/pcmu": "g711_ulaw", "audio/pcma": "g711_alaw"}
BETA_EVENTS: Final = {
    "audio.delta": "response.audio.delta",
    "audio.done": "response.audio.done",
    "transcript.delta": "response.audio_transcript.delta",
    "transcript.done": "response.audio_transcript.done",
}
GA_EVENTS: Final = {
    "audio.delta": "response.output_audio.delta",
    "audio.done": "response.output_audio.done",
    "transcript.delta": "response.output_audio_transcript.delta",
    "transcript.done": "response.output_audio_transcript.done",
}

QUIET_LOG = logging.getLogger("realtime_standin")
QUIET_LOG.setLevel(logging.WARNING)  # the library logs request headers (keys) at DEBUG

_ids = itertools.count(1)


def _id(prefix: str) -> str:
    return f"{prefix}_{next(_ids):06d}"


class _Response:
    """One response being generated."""

    def __init__(self, response_id: str, item_id: str, instructions: str | None) -> None:
        self.response_id = response_id
        self.item_id = item_id
        self.instructions = instructions
        self.sent_ms = 0.0
        self.status = "in_progress"
        self.stopped = asyncio.Event()


class StandInSession:
    """One client connection: what it sent, and the session it configured."""

    def __init__(self, standin: RealtimeStandIn, connection: ServerConnection) -> None:
        self.standin = standin
        self.connection = connection
        request = connection.request
        assert request is not None
        self.headers = {key.lower(): value for key, value in request.headers.raw_items()}
        self.dialect = "beta" if self.headers.get("openai-beta") == "realtime=v1" else "ga"
        self.received: list[JsonObject] = []
        self.session: JsonObject = {
            "id": _id("sess"),
            "instructions": "",
            "voice": "alloy",
            "input_audio_format": "pcm16",
            "output_audio_format": "pcm16",
            "input_audio_transcription": None,
            "turn_detection": {"type": "server_vad"},
        }
        self.audio_in = bytearray()
        self.audio_in_ms = 0.0
        self.responses: list[_Response] = []
        self.close_code: int | None = None
        self.closed = asyncio.Event()
        self._speaking = False
        self._loud_ms = 0.0
        self._user_item = ""
        self._response: _Response | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._changed = asyncio.Condition()

    # --- what the test reads --------------------------------------------------------------

    @property
    def input_format(self) -> AudioFormat:
        return FORMATS[self.session["input_audio_format"]]

    @property
    def output_format(self) -> AudioFormat:
        return FORMATS[self.session["output_audio_format"]]

    def of_type(self, kind: str) -> list[JsonObject]:
        return [event for event in self.received if event.get("type") == kind]

    async def wait_for(self, predicate: Callable[[], bool], timeout: float = TIMEOUT) -> None:
        async with self._changed:
            await asyncio.wait_for(self._changed.wait_for(predicate), timeout)

    async def wait_for_type(
        self, kind: str, count: int = 1, timeout: float = TIMEOUT
    ) -> list[JsonObject]:
        await self.wait_for(lambda: len(self.of_type(kind)) >= count, timeout)
        return self.of_type(kind)

    async def wait_closed(self, timeout: float = TIMEOUT) -> int | None:
        await asyncio.wait_for(self.closed.wait(), timeout)
        return self.close_code

    # --- what the test makes the API do -----------------------------------------------------

    async def send_error(self, kind: str, code: str, message: str) -> None:
        await self._send(
            {"type": "error", "error": {"type": kind, "code": code, "message": message}}
        )

    async def speech_started(self) -> None:
        """The API's VAD hears the caller (without a turn following)."""
        self._user_item = _id("item")
        await self._send(
            {
                "type": "input_audio_buffer.speech_started",
                "audio_start_ms": int(self.audio_in_ms),
                "item_id": self._user_item,
            }
        )

    async def close(self, code: int = 1011, reason: str = "stand-in closing") -> None:
        await self.connection.close(code, reason)

    # --- serving -------------------------------------------------------------------------------

    async def serve(self) -> None:
        await self._send({"type": "session.created", "session": self._session_view()})
        try:
            async for message in self.connection:
                event = json.loads(message)
                self.received.append(event)
                await self._handle(event)
                await self._notify()
        except ConnectionClosed:
            pass
        finally:
            for task in self._tasks:
                task.cancel()
            await asyncio.gather(*self._tasks, return_exceptions=True)
            received = self.connection.protocol.close_rcvd
            self.close_code = received.code if received is not None else None
            self.closed.set()
            await self._notify()

    async def _handle(self, event: JsonObject) -> None:
        kind = event.get("type")
        if kind == "session.update":
            self._apply_update(event["session"])
            await self._send({"type": "session.updated", "session": self._session_view()})
        elif kind == "input_audio_buffer.append":
            await self._on_audio(base64.b64decode(event["audio"], validate=True))
        elif kind == "response.create":
            response = event.get("response") or {}
            await self._start_response(response.get("instructions"))
        elif kind == "response.cancel":
            await self._on_cancel()
        elif kind == "conversation.item.truncate":
            await self._on_truncate(event)

    def _apply_update(self, update: JsonObject) -> None:
        if self.dialect == "beta":
            for key in (
                "instructions",
                "voice",
                "input_audio_format",
                "output_audio_format",
                "input_audio_transcription",
                "turn_detection",
            ):
                if key in update:
                    self.session[key] = update[key]
            return
        if update.get("type") != "realtime":
            raise ValueError("a GA session.update needs session.type 'realtime'")
        if "instructions" in update:
            self.session["instructions"] = update["instructions"]
        audio = update.get("audio", {})
        given_in, given_out = audio.get("input", {}), audio.get("output", {})
        if "format" in given_in:
            self.session["input_audio_format"] = GA_TYPES[given_in["format"]["type"]]
        if "format" in given_out:
            self.session["output_audio_format"] = GA_TYPES[given_out["format"]["type"]]
        for key, target in (
            ("transcription", "input_audio_transcription"),
            ("turn_detection",) * 2,
        ):
            if key in given_in:
                self.session[target] = given_in[key]
        if "voice" in given_out:
            self.session["voice"] = given_out["voice"]

    def _session_view(self) -> JsonObject:
        if self.dialect == "beta":
            return {"object": "realtime.session", **self.session}
        session = self.session

        def ga_format(name: str) -> JsonObject:
            kind = next(key for key, value in GA_TYPES.items() if value == name)
            return {"type": kind, "rate": 24000} if name == "pcm16" else {"type": kind}

        return {
            "type": "realtime",
            "id": session["id"],
            "instructions": session["instructions"],
            "audio": {
                "input": {
                    "format": ga_format(session["input_audio_format"]),
                    "transcription": session["input_audio_transcription"],
                    "turn_detection": session["turn_detection"],
                },
                "output": {
                    "format": ga_format(session["output_audio_format"]),
                    "voice": session["voice"],
                },
            },
        }

    async def _on_audio(self, data: bytes) -> None:
        fmt = self.input_format
        samples = decode(data, fmt)
        chunk_ms = 1000 * len(samples) / fmt.sample_rate
        start_ms = self.audio_in_ms
        self.audio_in += data
        self.audio_in_ms += chunk_ms
        vad = self.session.get("turn_detection") or {}
        if vad.get("type") != "server_vad" or not len(samples):
            return
        rms = float(np.sqrt(np.mean(samples.astype(np.float64) ** 2)))
        loud = 20 * math.log10(max(rms, 1.0) / 32768) > self.standin.loud_dbfs
        if not loud:
            self._speaking = False
            return
        if not self._speaking:
            self._speaking, self._loud_ms, self._user_item = True, 0.0, _id("item")
            await self._send(
                {
                    "type": "input_audio_buffer.speech_started",
                    "audio_start_ms": int(start_ms),
                    "item_id": self._user_item,
                }
            )
        before = self._loud_ms
        self._loud_ms += chunk_ms
        if before < self.standin.speech_ms <= self._loud_ms:
            await self._end_turn()

    async def _end_turn(self) -> None:
        item = self._user_item
        end_ms = int(self.audio_in_ms)
        await self._send(
            {"type": "input_audio_buffer.speech_stopped", "audio_end_ms": end_ms, "item_id": item}
        )
        if self.session.get("input_audio_transcription"):
            await self._send(
                {
                    "type": "conversation.item.input_audio_transcription.completed",
                    "item_id": item,
                    "content_index": 0,
                    "transcript": self.standin.caller_transcript,
                }
            )
        await self._start_response(None)

    async def _start_response(self, instructions: str | None) -> None:
        if self._response is not None:
            await self.send_error(
                "invalid_request_error",
                "conversation_already_has_active_response",
                "Conversation already has an active response",
            )
            return
        response = _Response(_id("resp"), _id("item"), instructions)
        self._response = response
        self.responses.append(response)
        task = asyncio.create_task(self._generate(response), name="standin-response")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _generate(self, response: _Response) -> None:
        names = BETA_EVENTS if self.dialect == "beta" else GA_EVENTS
        standin = self.standin
        ids = {"response_id": response.response_id, "item_id": response.item_id}
        part = {**ids, "output_index": 0, "content_index": 0}
        await self._send(
            {
                "type": "response.created",
                "response": {"id": response.response_id, "status": "in_progress", "output": []},
            }
        )
        fmt = self.output_format
        audio = to_format(
            tone(standin.tone_hz, standin.response_ms, fmt.sample_rate), fmt.sample_rate, fmt
        )
        step = fmt.bytes_per(standin.chunk_ms)
        words = standin.bot_transcript.split()
        for index, offset in enumerate(range(0, len(audio), step)):
            if response.stopped.is_set():
                break
            chunk = audio[offset : offset + step]
            delta = base64.b64encode(chunk).decode("ascii")
            await self._send({"type": names["audio.delta"], **part, "delta": delta})
            response.sent_ms += 1000 * len(chunk) / fmt.bytes_per(1000)
            if index < len(words):
                await self._send(
                    {"type": names["transcript.delta"], **part, "delta": words[index] + " "}
                )
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(response.stopped.wait(), standin.chunk_interval)
        response.status = "cancelled" if response.stopped.is_set() else "completed"
        await self._send({"type": names["audio.done"], **part})
        await self._send(
            {"type": names["transcript.done"], **part, "transcript": standin.bot_transcript}
        )
        self._response = None
        await self._send(
            {
                "type": "response.done",
                "response": {"id": response.response_id, "status": response.status, "output": []},
            }
        )
        await self._notify()

    async def _on_cancel(self) -> None:
        if self._response is None:
            await self.send_error(
                "invalid_request_error",
                "response_cancel_not_active",
                "Cancellation failed: no active response found",
            )
            return
        self._response.stopped.set()

    async def _on_truncate(self, event: JsonObject) -> None:
        response = next((r for r in self.responses if r.item_id == event.get("item_id")), None)
        end_ms = event.get("audio_end_ms")
        if response is None or not isinstance(end_ms, int) or not 0 <= end_ms <= response.sent_ms:
            await self.send_error(
                "invalid_request_error",
                "invalid_value",
                "Audio content of the item is shorter than audio_end_ms, or no such item",
            )
            return
        response.stopped.set()
        await self._send(
            {
                "type": "conversation.item.truncated",
                "item_id": response.item_id,
                "content_index": event.get("content_index", 0),
                "audio_end_ms": end_ms,
            }
        )

    async def _send(self, event: JsonObject) -> None:
        with contextlib.suppress(ConnectionClosed):
            await self.connection.send(json.dumps({"event_id": _id("event"), **event}))

    async def _notify(self) -> None:
        async with self._changed:
            self._changed.notify_all()


class RealtimeStandIn:
    """The stand-in server: ``async with RealtimeStandIn() as api: api.url ...``."""

    def __init__(
        self,
        *,
        api_key: str = API_KEY,
        model: str = MODEL,
        tone_hz: float = 440.0,
        response_ms: int = 1000,
        chunk_ms: int = 100,
        chunk_interval: float = 0.01,
        speech_ms: float = 200.0,
        loud_dbfs: float = -35.0,
        caller_transcript: str = "Hello, is anybody there?",
        bot_transcript: str = "Hello, this is the stand-in model speaking.",
    ) -> None:
        self.api_key, self.model = api_key, model
        self.tone_hz, self.response_ms = tone_hz, response_ms
        self.chunk_ms, self.chunk_interval = chunk_ms, chunk_interval
        self.speech_ms, self.loud_dbfs = speech_ms, loud_dbfs
        self.caller_transcript, self.bot_transcript = caller_transcript, bot_transcript
        self.sessions: list[StandInSession] = []
        self.refused: list[int] = []  # HTTP statuses of refused upgrades
        self._server: Server | None = None
        self._arrived = asyncio.Condition()

    @property
    def port(self) -> int:
        assert self._server is not None, "the stand-in is not serving"
        return int(self._server.sockets[0].getsockname()[1])

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/v1/realtime?model={self.model}"

    async def __aenter__(self) -> Self:
        self._server = await serve(
            self._serve,
            "127.0.0.1",
            0,
            process_request=self._check_request,
            max_size=2**24,
            compression=None,
            logger=QUIET_LOG,
        )
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        assert self._server is not None
        self._server.close()
        await self._server.wait_closed()

    async def session(self, index: int = 0, timeout: float = TIMEOUT) -> StandInSession:
        """The ``index``-th connection, once it arrived."""
        async with self._arrived:
            await asyncio.wait_for(
                self._arrived.wait_for(lambda: len(self.sessions) > index), timeout
            )
        return self.sessions[index]

    def _check_request(self, connection: ServerConnection, request: Request) -> Response | None:
        url = urlsplit(request.path)
        problem: tuple[int, str, str] | None = None
        if url.path != "/v1/realtime":
            problem = (404, "invalid_request_error", f"no such endpoint {url.path}")
        elif parse_qs(url.query).get("model") != [self.model]:
            problem = (400, "invalid_request_error", "unknown or missing model")
        elif request.headers.get("Authorization") != f"Bearer {self.api_key}":
            problem = (401, "invalid_request_error", "Incorrect API key provided.")
        if problem is None:
            return None
        status, kind, message = problem
        self.refused.append(status)
        body = json.dumps({"error": {"type": kind, "code": None, "message": message}})
        return connection.respond(status, body + "\n")

    async def _serve(self, connection: ServerConnection) -> None:
        session = StandInSession(self, connection)
        async with self._arrived:
            self.sessions.append(session)
            self._arrived.notify_all()
        await session.serve()
