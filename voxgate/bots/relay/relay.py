"""The relay's asyncio glue: one call, one WebSocket to the model's API, three tasks.

Theory of operation
-------------------
``relay_call`` refuses a call without an API key (an error naming the option, then a
hangup), opens the API's WebSocket (10 s at most; a failure is logged and the call hung up)
and runs a :class:`RelaySession`::

    call events --call_reader--> Translator --> ApiOutbox --writer--> API socket
    call actions <--api_reader-- Translator <------------------------ API socket

The call reader never waits on the API: client events go into an :class:`ApiOutbox` that
never blocks, and only the writer waits for the API's socket. Caller audio that has waited
more than ``MAX_AUDIO_AGE`` is dropped (and counted) rather than sent late, so a slow API
costs the model some of the caller's words, never the call its timing. The API reader does
wait on the call (queuing the model's audio), which slows the API's socket, not the call.

The session ends when either side does: the caller (or voxgate) stopping the stream closes
the API's socket with 1000; the API closing its socket hangs the call up. API ``error``
events are logged and the call goes on. The API key is in one header and nowhere else: the
WebSocket library's debug log of the request headers masks it, and every log line made from
the API's words goes through :meth:`RelaySession.redact`.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import time
from collections import deque
from dataclasses import dataclass
from typing import Any, Final

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidStatus, InvalidURI, WebSocketException

from voxgate.bots.relay.realtime import (
    ClearAudio,
    Notice,
    Output,
    PlaceMark,
    PlayAudio,
    ToApi,
    Transcript,
    Translator,
)
from voxgate.bots.sdk import Call, Stop
from voxgate.bots.sdk.call import CallLog
from voxgate.codecs.formats import AudioFormat, decode
from voxgate.obs import header_line_args
from voxgate.redact import MASK, redact_url

WIRE_LOG = logging.getLogger("voxgate.bots.relay.api")

CONNECT_TIMEOUT: Final = 10.0
CLOSE_TIMEOUT: Final = 5.0
MAX_API_MESSAGE: Final = 16 * 2**20
MAX_AUDIO_AGE: Final = 1.0
"""Caller audio older than this (seconds) when the API's socket can take it is dropped."""
OUTBOX_LIMIT: Final = 500
BETA_HEADER: Final = ("OpenAI-Beta", "realtime=v1")


class ApiUnavailableError(Exception):
    """The API's WebSocket could not be opened; the message holds no secret."""


class ApiWireLog(CallLog):
    """The WebSocket library's logger for the API's socket: the call id on every line, and
    header values hidden (it logs every header at DEBUG, the key among them)."""

    def process(self, msg: Any, kwargs: Any) -> tuple[Any, Any]:
        return super().process(f"API socket: {msg}", kwargs)

    def log(self, level: int, msg: Any, *args: Any, **kwargs: Any) -> None:
        super().log(level, msg, *header_line_args(msg, args), **kwargs)


async def open_api(url: str, api_key: str, *, beta_header: bool, call_id: str) -> ClientConnection:
    """The API's WebSocket, authenticated with ``api_key``; ApiUnavailableError if not."""
    headers = {"Authorization": f"Bearer {api_key}"}
    if beta_header:
        headers[BETA_HEADER[0]] = BETA_HEADER[1]
    try:
        return await connect(
            url,
            additional_headers=headers,
            open_timeout=CONNECT_TIMEOUT,
            close_timeout=CLOSE_TIMEOUT,
            max_size=MAX_API_MESSAGE,
            compression=None,
            logger=ApiWireLog(WIRE_LOG, {"call_id": call_id}),
        )
    except InvalidStatus as error:
        status = error.response.status_code
        hint = " (the key was refused: check --api-key)" if status in (401, 403) else ""
        raise ApiUnavailableError(f"HTTP {status}{hint}") from None
    except InvalidURI:
        raise ApiUnavailableError("--url is not a ws:// or wss:// URL") from None
    except TimeoutError:
        raise ApiUnavailableError(f"no connection within {CONNECT_TIMEOUT:g} s") from None
    except (OSError, WebSocketException) as error:
        raise ApiUnavailableError(f"{type(error).__name__}: {error}") from None


@dataclass(frozen=True, slots=True)
class _Outgoing:
    text: str
    audio: bool
    queued_at: float


class ApiOutbox:
    """Client events waiting for the API's socket: ``put`` never blocks.

    Audio that has waited longer than ``max_age`` is dropped at either end of the queue;
    when the queue is full the oldest audio goes (other events are never dropped for
    audio, and are few).
    """

    def __init__(self, *, max_age: float = MAX_AUDIO_AGE, limit: int = OUTBOX_LIMIT) -> None:
        self.max_age = max_age
        self.limit = limit
        self.dropped_audio = 0
        self.dropped_events = 0
        self._queue: deque[_Outgoing] = deque()
        self._ready = asyncio.Event()

    def put(self, event: dict[str, Any], *, audio: bool, now: float) -> None:
        self._drop_stale(now)
        if len(self._queue) >= self.limit and not self._drop_oldest_audio():
            self.dropped_events += 1
            return
        self._queue.append(_Outgoing(json.dumps(event), audio, now))
        self._ready.set()

    async def get(self) -> str:
        """The next event's text, skipping audio too old to be worth sending."""
        while True:
            while not self._queue:
                self._ready.clear()
                await self._ready.wait()
            outgoing = self._queue.popleft()
            if self._is_stale(outgoing, time.monotonic()):
                self.dropped_audio += 1
                continue
            return outgoing.text

    def _drop_stale(self, now: float) -> None:
        while self._queue and self._is_stale(self._queue[0], now):
            self._queue.popleft()
            self.dropped_audio += 1

    def _is_stale(self, outgoing: _Outgoing, now: float) -> bool:
        return outgoing.audio and now - outgoing.queued_at > self.max_age

    def _drop_oldest_audio(self) -> bool:
        for index, outgoing in enumerate(self._queue):
            if outgoing.audio:
                del self._queue[index]
                self.dropped_audio += 1
                return True
        return False


class RelaySession:
    """One call relayed to one API socket; see the module docstring."""

    def __init__(self, call: Call, api: ClientConnection, translator: Translator, secret: str):
        self.call = call
        self.api = api
        self.translator = translator
        self.outbox = ApiOutbox()
        self._secret = secret

    def redact(self, text: str) -> str:
        """``text`` without the API key (the API's error messages could quote it)."""
        return text.replace(self._secret, MASK) if self._secret else text

    async def run(self) -> None:
        await self._apply(self.translator.on_start(self.call.start))
        call_reader = asyncio.create_task(self._read_call(), name=f"relay-call-{self.call.call_id}")
        tasks = {
            call_reader,
            asyncio.create_task(self._read_api(), name=f"relay-api-{self.call.call_id}"),
            asyncio.create_task(self._write_api(), name=f"relay-write-{self.call.call_id}"),
        }
        try:
            done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
        for task in done:
            failure = None if task.cancelled() else task.exception()
            if failure is not None:
                raise failure
        if call_reader in done:  # the call ended first
            await self.api.close(1000, "call ended")
        else:
            await self._api_closed()
        self._log_summary()

    async def _api_closed(self) -> None:
        code, reason = self.api.close_code, self.api.close_reason
        self.call.log.warning(
            "the API closed its socket (code %s, %s): hanging up",
            code,
            self.redact(reason or "no reason given"),
        )
        await self.call.hangup("the model's API closed the connection")

    def _log_summary(self) -> None:
        stats, outbox = self.translator.stats, self.outbox
        self.call.log.info(
            "relay done: caller audio in %.1f s, model audio out %.1f s, responses %d, "
            "barge-ins %d; dropped: caller audio messages %d (the API was slow), other events %d",
            stats.caller_ms / 1000,
            stats.model_ms / 1000,
            stats.responses,
            stats.barge_ins,
            outbox.dropped_audio,
            outbox.dropped_events,
        )

    async def _read_call(self) -> None:
        """Caller events to the API; returns once the stream stopped."""
        while True:
            event = await self.call.next_event()
            if isinstance(event, Stop):
                self.call.log.info("the stream stopped (%s): closing the API socket", event.reason)
                return
            if event is not None:
                await self._apply(self.translator.on_call_event(event, time.monotonic()))

    async def _read_api(self) -> None:
        """The API's events to the call; returns once the API's socket closed."""
        with contextlib.suppress(ConnectionClosed):
            async for message in self.api:
                await self._apply(self.translator.on_api_message(message, time.monotonic()))

    async def _write_api(self) -> None:
        with contextlib.suppress(ConnectionClosed):
            while True:
                await self.api.send(await self.outbox.get())

    async def _apply(self, outputs: list[Output]) -> None:
        for output in outputs:
            match output:
                case ToApi(event=event, audio=audio):
                    self.outbox.put(event, audio=audio, now=time.monotonic())
                case PlayAudio(data=data):
                    await self._play(data)
                case ClearAudio():
                    await self.call.clear()
                case PlaceMark(name=name):
                    await self.call.mark(name)
                case Transcript(role=role, text=text):
                    await self.call.transcript(role, text)
                case Notice(level=level, text=text):
                    self.call.log.log(level, "%s", self.redact(text))

    async def _play(self, data: bytes) -> None:
        api_format: AudioFormat = self.translator.api_format
        if api_format == self.call.media_format:
            await self.call.send_audio(data)
        else:  # the SDK converts, keeping its resampler's state between deltas
            await self.call.send_audio(decode(data, api_format), sample_rate=api_format.sample_rate)


async def relay_call(call: Call) -> None:
    """Serve one call: the bot's ``handle``."""
    options = call.options
    api_key = options.api_key or os.environ.get("OPENAI_API_KEY")
    if not api_key:
        call.log.error(
            "no API key: set --api-key (or RELAY_BOT_API_KEY, or OPENAI_API_KEY); hanging up"
        )
        await call.hangup("the relay has no API key")
        return
    translator = Translator(
        call_format=call.media_format,
        audio=options.audio,
        dialect="beta" if options.beta_header else "ga",
        voice=options.voice,
        instructions=options.instructions,
    )
    url = redact_url(options.url)
    try:
        api = await open_api(
            options.url, api_key, beta_header=options.beta_header, call_id=call.call_id
        )
    except ApiUnavailableError as error:
        call.log.error("cannot open the model's API at %s: %s; hanging up", url, error)
        await call.hangup("the model's API could not be reached")
        return
    call.log.info(
        "relaying to %s: %s audio (the call's is %s), %s interface",
        url,
        translator.audio,
        call.media_format,
        translator.dialect,
    )
    try:
        await RelaySession(call, api, translator, api_key).run()
    finally:
        await api.close(1000, "call ended")
