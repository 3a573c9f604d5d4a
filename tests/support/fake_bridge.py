"""A fake voxgate for bot tests: a real WebSocket client that plays the bridge's side.

:class:`FakeBridge` connects to a bot server the way voxgate does (offering the subprotocols
``voxgate.v1, voxgate.v1.binary``, optionally with ``Authorization: Bearer <token>``),
sends ``start`` and then whatever the test asks: the caller's audio in the negotiated
transport (base64 ``media`` in JSON, or bare binary frames), ``dtmf``, ``hold``, mark
reports, ``error``, ``stop``, or raw frames. A reader task records everything the bot sends.

A second opinion from the schema
--------------------------------
It is deliberately independent of voxgate's own ``V1Dialect``: every message it sends is
validated against ``$defs/bridge_to_bot`` of ``voxgate/bridge/botlink/schema.json`` (draft
2020-12) before it goes out, and every JSON message the bot sends against
``$defs/bot_to_bridge``, with its base64 audio decoded and checked for whole samples. A bot
message that fails is recorded and its :class:`jsonschema.ValidationError` (or an
:class:`AssertionError` for what the schema cannot say, such as a binary frame on a
JSON-transport socket) is raised from the next wait and when the ``async with`` block ends,
so the test fails with it. :meth:`FakeBridge.send_raw` is the one way to send something
unchecked (a message voxgate should not send).

Marks
-----
The fake has no clock and plays nothing: a mark the bot sends is pending until the test
calls :meth:`FakeBridge.play_out` (as if all audio sent so far had played: every pending mark
is reported, in order). With ``auto_marks=True`` each mark is reported as soon as it arrives
(the audio before it "played" at once). With ``answer_hangup=True`` the fake answers
``session.hangup`` the way voxgate does once the queued audio played: pending marks, then
``stop`` (``bot_hangup``), then close 1000.

:func:`running_bot` serves an SDK bot on a free loopback port for the fake to call, and
:func:`run` runs a test body under ``asyncio.run`` (debug on) within a time limit.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import binascii
import contextlib
import json
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any, Final, Self

from jsonschema import Draft202012Validator, ValidationError
from websockets.asyncio.client import ClientConnection, connect
from websockets.asyncio.server import serve
from websockets.exceptions import ConnectionClosed
from websockets.typing import Subprotocol

from voxgate.bots.sdk import BotServer, Handler, serve_bot
from voxgate.bots.sdk.server import (
    FINISH_TIMEOUT,
    START_TIMEOUT,
    choose_subprotocol,
    require_token,
)

Json = dict[str, Any]

JSON: Final = Subprotocol("voxgate.v1")
BINARY: Final = Subprotocol("voxgate.v1.binary")
OFFERED: Final = (JSON, BINARY)
"""What voxgate offers in ``Sec-WebSocket-Protocol``."""

SCHEMA_PATH: Final = Path(__file__).resolve().parents[2] / "voxgate/bridge/botlink/schema.json"
WAIT: Final = 5.0
"""Default limit, in seconds, of every wait."""
TEARDOWN: Final = 2.0
"""How long a test's bot server may take to close (its handlers should be done by then)."""

CALL_ID: Final = "vx-0123456789abcdef0123"
TWO_BYTE_ENCODINGS: Final = frozenset({"l16", "pcm16"})


def schema_validator(direction: str) -> Draft202012Validator:
    """A validator of one ``$defs`` entry of the schema file (``bridge_to_bot``...)."""
    schema = json.loads(SCHEMA_PATH.read_text(encoding="utf-8"))
    Draft202012Validator.check_schema(schema)
    root = {key: value for key, value in schema.items() if key != "anyOf"}
    return Draft202012Validator({**root, "$ref": f"#/$defs/{direction}"})


BRIDGE_TO_BOT: Final = schema_validator("bridge_to_bot")
BOT_TO_BRIDGE: Final = schema_validator("bot_to_bridge")


def start_message(transport: str, encoding: str, sample_rate: int) -> Json:
    """A typical ``start`` of an inbound Twilio call; tests override fields of it."""
    return {
        "type": "start",
        "protocol": "voxgate.v1",
        "call_id": CALL_ID,
        "stream_id": f"{CALL_ID}-1",
        "direction": "inbound",
        "from": "+15551234567",
        "to": "+15557654321",
        "carrier": {"name": "twilio", "call_id": "CA0123456789abcdef0123456789abcdef"},
        "custom_parameters": {},
        "media_format": {"encoding": encoding, "sample_rate": sample_rate, "channels": 1},
        "audio_transport": transport,
        "reconnected": False,
    }


class FakeBridge:
    """One socket to a bot, driven by the test: ``async with FakeBridge(url) as bridge``."""

    def __init__(
        self,
        url: str,
        *,
        subprotocols: Sequence[Subprotocol] | None = OFFERED,
        token: str | None = None,
        auto_marks: bool = False,
        answer_hangup: bool = False,
    ) -> None:
        self.url = url
        self.subprotocols = subprotocols
        self.token = token
        self.auto_marks = auto_marks
        self.answer_hangup = answer_hangup
        self.received: list[Json | bytes] = []
        """Every message of the bot, in order: parsed JSON, or a binary frame's bytes."""
        self.pending_marks: list[str] = []
        self.violations: list[Exception] = []
        self.bytes_per_sample = 1
        self._connection: ClientConnection | None = None
        self._reader: asyncio.Task[None] | None = None
        self._changed = asyncio.Condition()
        self._closed = asyncio.Event()
        self._media_sent = 0
        self._samples_sent = 0
        self._sample_rate = 8000

    async def __aenter__(self) -> Self:
        headers = {"Authorization": f"Bearer {self.token}"} if self.token else None
        self._connection = await connect(
            self.url,
            subprotocols=self.subprotocols,
            additional_headers=headers,
            compression=None,  # voxgate does not compress: sizes on the wire are the audio's
            close_timeout=1.0,
        )
        self._reader = asyncio.create_task(self._read(), name="fake-bridge-read")
        return self

    async def __aexit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.connection.close()
        if self._reader is not None:
            await self._reader
        if kind is None:
            self.check()

    @property
    def connection(self) -> ClientConnection:
        assert self._connection is not None, "use FakeBridge in an async with block"
        return self._connection

    @property
    def transport(self) -> str:
        """The audio transport the bot's server chose: ``"binary"`` or ``"json"``."""
        return "binary" if self.connection.subprotocol == BINARY else "json"

    @property
    def close_code(self) -> int | None:
        """The close code the socket ended with (the bot's, if it closed first)."""
        return self.connection.close_code

    # --- what the bridge sends ------------------------------------------------------------

    async def start(
        self,
        fields: Mapping[str, Any] | None = None,
        *,
        encoding: str = "pcmu",
        sample_rate: int = 8000,
    ) -> Json:
        """Send ``start``: :func:`start_message` with ``fields`` replacing its own (None: omit)."""
        message = start_message(self.transport, encoding, sample_rate)
        message.update(fields or {})
        message = {key: value for key, value in message.items() if value is not None}
        self._sample_rate = sample_rate
        self.bytes_per_sample = 2 if encoding in TWO_BYTE_ENCODINGS else 1
        await self.send(message)
        return message

    async def send_media(self, chunk: bytes, *, timestamp_ms: int | None = None) -> None:
        """The caller's audio: a binary frame, or ``media`` numbered like voxgate does."""
        self._media_sent += 1
        computed = self._samples_sent * 1000 // self._sample_rate
        self._samples_sent += len(chunk) // self.bytes_per_sample
        if self.transport == "binary":
            await self.connection.send(chunk)
            return
        audio = base64.b64encode(chunk).decode()
        stamp = computed if timestamp_ms is None else timestamp_ms
        message = {"type": "media", "seq": self._media_sent, "timestamp_ms": stamp}
        await self.send({**message, "audio": audio})

    async def send_dtmf(
        self, digit: str, duration_ms: int | None = None, method: str | None = None
    ) -> None:
        fields = {"digit": digit, "duration_ms": duration_ms, "method": method}
        await self.send({"type": "dtmf", **{k: v for k, v in fields.items() if v is not None}})

    async def send_hold(self, on_hold: bool) -> None:
        await self.send({"type": "hold", "on_hold": on_hold})

    async def report_mark(self, name: str) -> None:
        """Tell the bot its mark ``name`` has played (whether or not it sent one)."""
        await self.send({"type": "mark", "name": name})

    async def play_out(self) -> None:
        """All the audio sent so far has played: report every pending mark, in order."""
        while self.pending_marks:
            await self.report_mark(self.pending_marks.pop(0))

    async def send_error(self, code: str, message: str) -> None:
        await self.send({"type": "error", "code": code, "message": message})

    async def stop(self, reason: str | None = "caller_hangup", *, close: bool = True) -> None:
        """Send ``stop`` (the last message), then close 1000 like voxgate, unless told not to."""
        await self.send({"type": "stop", **({} if reason is None else {"reason": reason})})
        if close:
            await self.connection.close(1000, "stream stopped")

    async def send(self, message: Json) -> None:
        """Send one JSON message, validated first against ``$defs/bridge_to_bot``."""
        BRIDGE_TO_BOT.validate(message)
        await self.connection.send(json.dumps(message))

    async def send_raw(self, frame: str | bytes) -> None:
        """Send a frame as it is, unchecked: for what voxgate should never send."""
        await self.connection.send(frame)

    # --- what the bot sent ----------------------------------------------------------------

    def of_type(self, kind: str) -> list[Json]:
        return [m for m in self.received if isinstance(m, dict) and m.get("type") == kind]

    def json_messages(self) -> list[Json]:
        return [m for m in self.received if isinstance(m, dict)]

    def audio(self) -> bytes:
        """All the audio the bot sent, from binary frames and ``response.audio.delta``."""
        return b"".join(audio for m in self.received if (audio := _audio_of(m)) is not None)

    def check(self) -> None:
        """Raise the first problem found in the bot's messages (a schema error...)."""
        if self.violations:
            raise self.violations[0]

    async def wait_for(self, predicate: Callable[[], bool], timeout: float = WAIT) -> None:
        """Wait until ``predicate()`` holds of what the bot sent; TimeoutError if it never does."""
        async with asyncio.timeout(timeout), self._changed:
            await self._changed.wait_for(lambda: bool(self.violations) or predicate())
        self.check()

    async def wait_for_type(self, kind: str, count: int = 1, timeout: float = WAIT) -> list[Json]:
        await self.wait_for(lambda: len(self.of_type(kind)) >= count, timeout)
        return self.of_type(kind)

    async def wait_for_count(self, count: int, timeout: float = WAIT) -> list[Json | bytes]:
        """Wait for ``count`` messages of any kind from the bot; all of them so far."""
        await self.wait_for(lambda: len(self.received) >= count, timeout)
        return self.received

    async def wait_closed(self, timeout: float = WAIT) -> int | None:
        """Wait for the socket to close; its close code."""
        async with asyncio.timeout(timeout):
            await self._closed.wait()
        self.check()
        return self.close_code

    # --- reading --------------------------------------------------------------------------

    async def _read(self) -> None:
        try:
            async for frame in self.connection:
                await self._record(frame)
        except ConnectionClosed:
            pass
        finally:
            self._closed.set()
            async with self._changed:
                self._changed.notify_all()

    async def _record(self, frame: str | bytes) -> None:
        message = self._checked(frame)
        async with self._changed:
            self.received.append(message)
            self._changed.notify_all()
        if isinstance(message, dict):
            await self._answer(message)

    def _checked(self, frame: str | bytes) -> Json | bytes:
        if isinstance(frame, bytes):
            problem = None
            if self.transport != "binary":
                problem = f"binary frame on a JSON socket: {frame[:16]!r}"
            elif len(frame) % self.bytes_per_sample:
                problem = f"binary audio of {len(frame)} bytes: not whole samples"
            if problem is not None:
                self.violations.append(AssertionError(problem))
            return frame
        try:
            message = json.loads(frame)
            BOT_TO_BRIDGE.validate(message)
            audio = _audio_of(message)
            if audio is not None and len(audio) % self.bytes_per_sample:
                raise AssertionError(f"audio delta of {len(audio)} bytes: not whole samples")
        except (json.JSONDecodeError, ValidationError, AssertionError) as error:
            self.violations.append(error)
            return {"invalid": frame}
        assert isinstance(message, dict)
        return message

    async def _answer(self, message: Json) -> None:
        """Play voxgate's part for marks and hangups, as configured."""
        kind = message.get("type")
        with contextlib.suppress(ConnectionClosed):
            if kind == "mark":
                self.pending_marks.append(message["name"])
                if self.auto_marks:
                    await self.play_out()
            elif kind == "session.hangup" and self.answer_hangup:
                await self.play_out()
                await self.stop("bot_hangup")


def _audio_of(message: Json | bytes) -> bytes | None:
    """The audio a bot's message carries (None: not an audio message)."""
    if isinstance(message, bytes):
        return message
    if message.get("type") != "response.audio.delta":
        return None
    try:
        return base64.b64decode(message["audio"], validate=True)
    except binascii.Error as error:
        raise AssertionError(f"audio delta not base64: {error}") from None


# --- harness --------------------------------------------------------------------------------


@contextlib.asynccontextmanager
async def running_bot(
    handler: Handler,
    *,
    binary: bool = False,
    token: str | None = None,
    options: argparse.Namespace | None = None,
    start_timeout: float | None = None,
    finish_timeout: float | None = None,
) -> AsyncIterator[str]:
    """Serve ``handler`` on a free loopback port; yields its ``ws://`` URL.

    With the default timeouts this is the SDK's own :func:`serve_bot`. ``serve_bot`` takes
    no timeouts, so with either one given a :class:`BotServer` is served the way
    ``serve_bot`` serves it (the SDK's subprotocol choice and token check), with a shorter
    closing handshake timeout.
    """
    if start_timeout is None and finish_timeout is None:
        server = await serve_bot(
            handler, "127.0.0.1", 0, binary=binary, token=token, options=options
        )
    else:
        bot = BotServer(
            handler,
            options=options,
            start_timeout=START_TIMEOUT if start_timeout is None else start_timeout,
            finish_timeout=FINISH_TIMEOUT if finish_timeout is None else finish_timeout,
        )
        server = await serve(
            bot.serve_connection,
            "127.0.0.1",
            0,
            subprotocols=list(OFFERED),
            select_subprotocol=choose_subprotocol(binary=binary),
            process_request=require_token(token) if token else None,
            close_timeout=TEARDOWN,  # a stuck closing handshake costs 2 s, not websockets' 10
        )
    try:
        yield f"ws://127.0.0.1:{server.sockets[0].getsockname()[1]}"
    finally:
        server.close()
        # Bounded: a handler that never returns must not hang the test (asyncio.run then
        # cancels it).
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(TEARDOWN):
                await server.wait_closed()


@contextlib.asynccontextmanager
async def bot_call(
    handler: Handler,
    start_fields: Mapping[str, Any] | None = None,
    *,
    binary: bool = False,
    encoding: str = "pcmu",
    sample_rate: int = 8000,
    options: argparse.Namespace | None = None,
    auto_marks: bool = False,
    answer_hangup: bool = False,
    finish_timeout: float | None = None,
) -> AsyncIterator[FakeBridge]:
    """A call to ``handler`` served by :func:`running_bot`, ``start`` already sent."""
    serving = running_bot(handler, binary=binary, options=options, finish_timeout=finish_timeout)
    async with (
        serving as url,
        FakeBridge(url, auto_marks=auto_marks, answer_hangup=answer_hangup) as bridge,
    ):
        await bridge.start(start_fields, encoding=encoding, sample_rate=sample_rate)
        yield bridge


def run(body: Callable[[], Awaitable[None]], timeout: float = 20.0) -> None:
    """Run an async test body under ``asyncio.run`` (debug on), bounded by ``timeout`` s."""

    async def bounded() -> None:
        async with asyncio.timeout(timeout):
            await body()

    asyncio.run(bounded(), debug=True)
