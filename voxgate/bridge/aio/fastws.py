"""One WebSocket of the media path (a carrier's stream or a bot link) on picows.

picows parses frames in C and hands each one to a listener's callback, inside
the event loop's read of the socket: no task, no queue, no await per message.
:class:`FastSocket` is that listener. It gives its owner whole messages (text
as ``str``, binary as ``bytes``) through ``on_message``, writes what the owner
sends straight into the transport, and keeps the close handshake of RFC 6455
section 7 (a close frame is answered with the same code; the side that sent
the first close waits :data:`CLOSE_TIMEOUT` for the answer, then drops the
connection).

Backpressure comes from the transport: asyncio tells the listener when the
transport's write buffer rises above its high-water mark (``pause_writing``)
and falls below the low one (``resume_writing``). A peer is "too slow" when
the buffer has stayed above the mark for longer than ``stall_seconds``, or
holds more than :data:`MAX_BUFFERED_BYTES`: the socket is then closed with
1008, so a peer that stops reading costs a bounded amount of memory and never
slows another call. A burst of small messages to a peer that reads is not
too slow.

Reading is bounded and fair, by one mechanism. picows hands over every
frame of one socket read in one go (a flooding peer fills a read with
hundreds of small messages); a message is handed to the owner only while the
owner is ``accepting()`` (a bot's call whose playout queue is full is not; a
carrier stream whose call is still opening is not) and at most
:data:`MAX_PER_TURN` of them in one event-loop turn (a large message counts once
more for each :data:`PER_MESSAGE_BYTES` it holds). Any other message waits in a
backlog, in order, and reading pauses: the peer's TCP window, not voxgate's
memory, absorbs a flood, and the other calls' timers and sockets get their turn.
The backlog is handed over as much a turn while the owner accepts, looked at
again every :data:`WAIT_POLL` while it does not, or at once on :meth:`resume`.
What arrived before the connection ended is handed over before ``on_closed``.

Fragmented messages (RFC 6455 section 5.4) are put together, up to
``max_message`` bytes (more: close 1009); text that is not UTF-8 closes the
socket with 1007 (section 8.1).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Callable
from typing import Final

from picows import WSCloseCode, WSFrame, WSListener, WSMsgType, WSTransport

from voxgate.bridge.dialect import Message
from voxgate.obs import METRICS, safe_reason

log = logging.getLogger("voxgate.fastws")

STALL_SECONDS: Final = 10.0  # the write buffer above its high-water mark this long: not reading
MAX_BUFFERED_BYTES: Final = 32 * 1024 * 1024  # a last bound on what one socket may hold back
CLOSE_TIMEOUT: Final = 1.0  # the first close sent -> the peer's answer, else drop the connection
MAX_PER_TURN: Final = 32  # messages from one socket handled in one event-loop turn
PER_MESSAGE_BYTES: Final = 1024  # a large message counts as one more for each KiB it holds
WAIT_POLL: Final = 0.02  # while the owner does not accept, look again this often
WS_MAX_SIZE: Final = 1024 * 1024  # the dialects refuse over 256 KiB with an error event first

POLICY_VIOLATION: Final = 1008  # RFC 6455 section 7.4.1
MESSAGE_TOO_BIG: Final = 1009
INVALID_PAYLOAD: Final = 1007

_TEXT: Final = WSMsgType.TEXT
_BINARY: Final = WSMsgType.BINARY


def _ignore_message(message: Message) -> None:
    return None


def _ignore_closed(code: int | None) -> None:
    return None


def _always() -> bool:
    return True


class FastSocket(WSListener):
    """See the module docstring. ``on_closed(code)`` gets the code the peer closed with
    when the peer closed first, else None; it is called once, when the connection is gone."""

    def __init__(
        self,
        name: str,
        *,
        call_id: str = "",
        latency_metric: str = "",
        stall_seconds: float = STALL_SECONDS,
        max_message: int = WS_MAX_SIZE,
    ) -> None:
        super().__init__()
        self.name = name
        self.call_id = call_id
        self.stall_seconds = stall_seconds
        self.max_message = max_message
        self.on_message: Callable[[Message], None] = _ignore_message
        self.on_closed: Callable[[int | None], None] = _ignore_closed
        self.accepting: Callable[[], bool] = _always  # may the owner take a message now?
        self.transport: WSTransport | None = None
        self.closing = False  # we sent a close (or are about to): nothing more is sent
        self.sent = 0
        self.peer_close_code: int | None = None  # the code of the peer's close, if it sent one
        self.peer_closed_first = False
        self._latency_metric = latency_metric
        self._paused_since: float | None = None
        self._fragments: list[bytes] | None = None
        self._fragments_text = False
        self._fragments_size = 0
        self._drop_timer: asyncio.TimerHandle | None = None
        self._burst = 0  # messages handed over from the current read
        self._backlog: deque[Message] | None = None  # read, waiting for the owner or a turn
        self._drain_handle: asyncio.Handle | None = None
        self._reading_paused = False
        self._closed_after_backlog = False
        self._gone: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    # --- picows' callbacks ------------------------------------------------------------

    def on_ws_connected(self, transport: WSTransport) -> None:
        self.transport = transport

    def on_ws_frame(self, transport: WSTransport, frame: WSFrame) -> None:
        kind = frame.msg_type
        if frame.fin and self._fragments is None and (kind is _TEXT or kind is _BINARY):
            if kind is _TEXT:
                try:
                    message: Message = frame.get_payload_as_utf8_text()
                except UnicodeDecodeError:
                    self._refuse(INVALID_PAYLOAD, "text is not UTF-8")
                    return
            else:
                message = frame.get_payload_as_bytes()
            self._deliver(message)
        else:
            self._slow_frame(frame, kind)
        if frame.last_in_buffer:
            self._burst = 0

    def on_ws_disconnected(self, transport: WSTransport) -> None:
        if self._drop_timer is not None:
            self._drop_timer.cancel()
            self._drop_timer = None
        self.closing = True
        if not self._gone.done():
            self._gone.set_result(None)
        if self._backlog:  # what came before the end goes first, a turn at a time
            self._closed_after_backlog = True
            return
        self._report_closed()

    def _report_closed(self) -> None:
        self.on_closed(self.peer_close_code if self.peer_closed_first else None)

    def pause_writing(self) -> None:
        self._paused_since = time.monotonic()

    def resume_writing(self) -> None:
        self._paused_since = None

    # --- what the owner does ----------------------------------------------------------

    def put(self, message: Message, *, origin: float | None = None) -> None:
        """Send ``message`` now; with ``origin`` (a monotonic time), the time from it to the
        write is observed as this socket's latency metric."""
        transport = self.transport
        if self.closing or transport is None:
            return
        if self._paused_since is not None and self._too_slow(transport):
            return
        transport.send(_TEXT if type(message) is str else _BINARY, message)  # str: as UTF-8
        self.sent += 1
        if origin is not None and self._latency_metric:
            METRICS.observe(self._latency_metric, time.monotonic() - origin)

    def stalled(self, now: float) -> bool:
        """Whether the write buffer has been above its mark for longer than ``stall_seconds``."""
        return self._paused_since is not None and now - self._paused_since > self.stall_seconds

    def close(self, code: int, reason: str) -> None:
        """Send a close frame after what was sent before it; drop the connection when the
        peer answers, or after :data:`CLOSE_TIMEOUT`."""
        if self.closing:
            return
        self.closing = True
        transport = self.transport
        if transport is None:
            return
        transport.send_close(WSCloseCode(code), safe_reason(reason).encode())
        if self.peer_close_code is not None:  # we are answering the peer's close
            transport.disconnect()
        else:
            loop = asyncio.get_running_loop()
            self._drop_timer = loop.call_later(CLOSE_TIMEOUT, self._drop)

    def abort(self) -> None:
        """Drop the connection without a close handshake."""
        self.closing = True
        if self.transport is not None:
            self.transport.underlying_transport.abort()

    async def wait_closed(self, timeout: float = 2.0) -> None:
        """Until the connection is gone (at most ``timeout``; then it is dropped)."""
        try:
            await asyncio.wait_for(asyncio.shield(self._gone), timeout)
        except TimeoutError:
            self.abort()

    @property
    def gone(self) -> bool:
        return self._gone.done()

    def resume(self) -> None:
        """The owner accepts again: hand over what waits without waiting for the poll."""
        handle = self._drain_handle
        if self._backlog is not None and isinstance(handle, asyncio.TimerHandle):
            handle.cancel()
            self._drain_handle = asyncio.get_running_loop().call_soon(self._drain)

    # --- bounded, fair reading (see the module docstring) -----------------------------

    def _deliver(self, message: Message) -> None:
        if self._backlog is None and self._burst < MAX_PER_TURN and self.accepting():
            self._burst += 1 + len(message) // PER_MESSAGE_BYTES
            self.on_message(message)
        else:
            self._defer(message)

    def _defer(self, message: Message) -> None:
        if self._backlog is None:
            self._backlog = deque()
            self._sync_reading()
            self._schedule_drain()
        self._backlog.append(message)

    def _schedule_drain(self) -> None:
        loop = asyncio.get_running_loop()
        if self.accepting():
            self._drain_handle = loop.call_soon(self._drain)
        else:
            self._drain_handle = loop.call_later(WAIT_POLL, self._drain)

    def _drain(self) -> None:
        self._drain_handle = None
        backlog = self._backlog
        if backlog is None:
            return
        budget = 0
        while backlog and budget < MAX_PER_TURN and self.accepting():
            message = backlog.popleft()
            budget += 1 + len(message) // PER_MESSAGE_BYTES
            self.on_message(message)
        if backlog:
            self._schedule_drain()
            return
        self._backlog = None
        self._sync_reading()
        if self._closed_after_backlog:
            self._report_closed()

    def _sync_reading(self) -> None:
        """Read while no backlog waits."""
        paused = self._backlog is not None
        transport = self.transport
        if paused == self._reading_paused or transport is None or self.gone:
            return
        self._reading_paused = paused
        if paused:
            transport.underlying_transport.pause_reading()
        else:
            transport.underlying_transport.resume_reading()

    # --- the slow path ----------------------------------------------------------------

    def _slow_frame(self, frame: WSFrame, kind: WSMsgType) -> None:
        if kind is WSMsgType.CLOSE:
            self._peer_close(frame)
        elif kind is _TEXT or kind is _BINARY:
            if self._fragments is not None:
                self._refuse(1002, "a new message inside a fragmented one")  # section 5.4
                return
            self._fragments = []
            self._fragments_text = kind is _TEXT
            self._fragments_size = 0
            self._add_fragment(frame)
        elif kind is WSMsgType.CONTINUATION:
            if self._fragments is None:
                self._refuse(1002, "a continuation with no message to continue")
                return
            self._add_fragment(frame)
        # PONG (and PING, answered by picows itself) carry nothing for the owner

    def _add_fragment(self, frame: WSFrame) -> None:
        assert self._fragments is not None
        self._fragments_size += frame.payload_size
        if self._fragments_size > self.max_message:
            self._fragments = None
            self._refuse(MESSAGE_TOO_BIG, "message too big")
            return
        self._fragments.append(frame.get_payload_as_bytes())
        if not frame.fin:
            return
        whole = b"".join(self._fragments)
        self._fragments = None
        if not self._fragments_text:
            self._deliver(whole)
            return
        try:
            text = whole.decode("utf-8")
        except UnicodeDecodeError:
            self._refuse(INVALID_PAYLOAD, "text is not UTF-8")
            return
        self._deliver(text)

    def _peer_close(self, frame: WSFrame) -> None:
        code = int(frame.get_close_code().value) if frame.payload_size >= 2 else 1005
        self.peer_close_code = code
        if self.closing:  # the answer to our close: done
            if self.transport is not None:
                self.transport.disconnect()
            return
        self.peer_closed_first = True
        # Section 5.5.1: answer with the same code (1005 "no code" is not sent: 1000 then).
        self.close(1000 if code in (1005, 1006) else code, "")

    def _refuse(self, code: int, reason: str) -> None:
        METRICS.count("protocol_errors", side=self.name, code=f"ws_{code}")
        log.warning("%s sent a bad frame: %s", self.name, reason, extra={"call_id": self.call_id})
        self.close(code, reason)

    def _too_slow(self, transport: WSTransport) -> bool:
        buffered = transport.underlying_transport.get_write_buffer_size()
        if not self.stalled(time.monotonic()) and buffered <= MAX_BUFFERED_BYTES:
            return False
        METRICS.count("errors", kind=f"{self.name}_too_slow")
        log.error("%s is not reading; closing it", self.name, extra={"call_id": self.call_id})
        self.close(POLICY_VIOLATION, "peer too slow")
        return True

    def _drop(self) -> None:
        self._drop_timer = None
        if self.transport is not None:
            self.transport.disconnect()
