"""One call: the state machine and policy between a carrier stream and a bot.

Theory of operation
-------------------
The call is sans-I/O. The asyncio adapter feeds it what happens (carrier
events, bot events, the bot socket connecting, failing or dropping, time
passing) and drains :data:`CallOutput` values telling it what to do (send to
the carrier, send to the bot, open or close a socket, call the carrier's REST
API). Dialects have already turned wire messages into events; the call
transcodes, reorders, paces, and decides.

States::

    CONNECTING --bot connected--> ACTIVE --bot dropped--> RECONNECTING
        |                          |  ^                        |
        |                          |  +----bot connected-------+
        | bot unreachable          | bot hangup / apology      | reconnect_for elapsed
        v                          v                           v
    (fallback) ----------------> ENDING --played out--> ENDED <-- caller hung up (any state)

- CONNECTING: the carrier stream has started; the bot socket is being opened.
  Up to :attr:`CallPolicy.pre_connect_buffer` seconds of the caller's audio are
  kept and sent once the bot is there, so its first words are not lost.
- ACTIVE: caller audio is reordered, transcoded and sent to the bot as each
  frame comes in order; the bot's audio is transcoded and goes through the
  :class:`~voxgate.bridge.playout.Playout` (20 ms frames on a real-time clock,
  marks after playout, clear at once).
- RECONNECTING: the bot socket dropped mid-call. Attempts are made with
  exponential backoff (0.1 s doubling to 2 s) for :attr:`CallPolicy.reconnect_for`
  seconds; each new socket gets a ``start`` with ``reconnected`` set. The
  caller hears what was already queued, then silence; their audio is dropped.
- ENDING: the bot asked to hang up (or the fallback is playing its apology).
  With ``hangup_after_playout`` the call waits until the carrier has played
  everything (a final carrier mark is echoed) or ``max_hangup_wait`` passes,
  then the bot gets ``stop``, both sockets close and the carrier's REST hangup
  is called when credentials exist.
- ENDED: nothing more happens; the adapter forgets the call.

The caller hanging up (carrier ``stop`` or its socket closing) ends the call
from any state: the bot gets ``stop`` and its socket is closed at once, so no
bot session outlives its call.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Mapping
from dataclasses import replace
from typing import Final

import numpy as np

from voxgate.bridge.call_api import (
    CallEnded,
    CallOutput,
    CallPolicy,
    CallState,
    CallStats,
    CarrierHangup,
    CarrierTransfer,
    CloseBot,
    CloseCarrier,
    ConnectBot,
    ToBot,
    ToCarrier,
)
from voxgate.bridge.events import (
    AudioSent,
    ClearRequested,
    DownstreamEvent,
    DtmfReceived,
    DtmfSendRequested,
    ErrorReported,
    HangupRequested,
    MarkPlayed,
    MarkRequested,
    MediaReceived,
    StreamConnected,
    StreamStarted,
    StreamStopped,
    TranscriptReceived,
    TransferRequested,
    UpstreamEvent,
)
from voxgate.bridge.playout import (
    CarrierClearRequested,
    CarrierMarkRequested,
    FrameReleased,
    Playout,
    QueueFullError,
)
from voxgate.bridge.reorder import Reorderer
from voxgate.codecs.dtmf import dtmf_sequence
from voxgate.codecs.formats import AudioFormat, Transcoder, encode
from voxgate.codecs.tones import special_information_tone
from voxgate.errors import CodecError, ProtocolError

log = logging.getLogger("voxgate.call")

CONTROL_PARAMETERS: Final = frozenset(
    {"wss_url", "wss_header", "bot_dialect", "bot_audio", "token"}
)
"""Custom parameters that steer voxgate itself; they are not passed on to the bot."""

_HANGUP_MARK: Final = "\x00voxgate-hangup"  # internal: the last mark before hanging up
_TRANSFER_MARK: Final = "\x00voxgate-transfer"  # internal: the last mark before transferring
_BACKOFF_FIRST: Final = 0.1
_BACKOFF_MAX: Final = 2.0


class Call:
    """One call between a carrier media stream and a bot; see the module docstring."""

    def __init__(
        self,
        call_id: str,
        started: StreamStarted,
        bot_format: AudioFormat,
        policy: CallPolicy,
        now: float,
    ) -> None:
        self.call_id = call_id
        self.carrier_start = started
        self.carrier_format = started.media_format
        self.bot_format = bot_format
        self.policy = policy
        self.state = CallState.CONNECTING
        self.stats = CallStats()
        self.transcripts: list[TranscriptReceived] = []
        self.end_reason: str | None = None
        self._to_bot = Transcoder(self.carrier_format, bot_format)
        self._to_carrier = Transcoder(bot_format, self.carrier_format)
        self._playout = Playout(self.carrier_format, carrier_marks=policy.carrier_marks)
        self._reorder: Reorderer[MediaReceived] = Reorderer()
        self._early: deque[MediaReceived] = deque(
            maxlen=max(1, round(policy.pre_connect_buffer / 0.020))
        )
        self._outputs: list[CallOutput] = []
        self._attempt = 0
        self._dropped_at: float | None = None
        self._retry_at: float | None = None
        self._hangup_deadline: float | None = None
        self._ending_reason = "bot_hangup"
        self._transfer_target: str | None = None
        self._bot_up = False
        self._bot_errors = 0
        self._connect(now)

    # --- inputs from the carrier -------------------------------------------------------

    def carrier_event(self, event: UpstreamEvent, now: float) -> None:
        if self.state is CallState.ENDED:
            return
        if isinstance(event, MediaReceived):
            self._caller_audio(event, now)
        elif isinstance(event, DtmfReceived):
            self.stats.dtmf_in += 1
            self._send_bot(event)
        elif isinstance(event, MarkPlayed):
            self._playout.carrier_mark_played(event.name)
            self._drain_playout(now)
        elif isinstance(event, StreamStopped):
            reason = "transferred" if self._transfer_target else "caller_hangup"
            self._end(reason, now, close_carrier=True)
        elif isinstance(event, ErrorReported):
            log.warning("carrier error %s: %s", event.code, event.message, extra=self._log)
        elif isinstance(event, StreamConnected | StreamStarted):
            log.info("carrier repeated %s; ignored", type(event).__name__, extra=self._log)

    def carrier_closed(self, now: float) -> None:
        """The carrier's socket closed (with or without ``stop``)."""
        if self.state is not CallState.ENDED:
            self._end("caller_hangup", now, close_carrier=False)

    def shutdown(self, now: float) -> None:
        """voxgate is stopping: end the call now (the bot gets ``stop`` with ``shutdown``)."""
        if self.state is not CallState.ENDED:
            self._end("shutdown", now, close_carrier=True)

    def carrier_protocol_error(self, error: ProtocolError, now: float) -> None:
        self.stats.protocol_errors += 1
        if error.fatal:
            self._outputs.append(CloseCarrier(error.close_code, error.code))
            self._end("carrier_error", now, close_carrier=False)

    # --- inputs from the bot ------------------------------------------------------------

    def bot_connected(self, now: float) -> None:
        if self.state not in (CallState.CONNECTING, CallState.RECONNECTING):
            self._outputs.append(CloseBot(1000, "call no longer needs this bot socket"))
            return
        reconnected = self.stats.bot_connects > 0
        self.stats.bot_connects += 1
        self.state = CallState.ACTIVE
        self._bot_up = True
        self._retry_at = self._dropped_at = None
        self._send_bot(StreamConnected())  # Twilio and Telnyx say hello first; v1 does not
        self._send_bot(self._bot_start(reconnected))
        while self._early:
            self._send_bot(self._early.popleft())
            self.stats.frames_to_bot += 1

    def bot_connect_failed(self, reason: str, now: float, *, refused: bool = False) -> None:
        """An attempt failed; ``refused``: the bot turned voxgate away (HTTP 401/403), so
        trying again is pointless (docs/PROTOCOL.md, "Reconnection")."""
        log.warning("bot connect attempt %d failed: %s", self._attempt, reason, extra=self._log)
        if self.state is CallState.CONNECTING or (refused and self.state is CallState.RECONNECTING):
            self._fallback("bot_unreachable", now)
        elif self.state is CallState.RECONNECTING:
            self._schedule_retry(now)

    def bot_disconnected(self, reason: str, now: float, *, code: int | None = None) -> None:
        """The bot socket closed (``code``: the close code the bot sent, if any).

        While ending (a bot often closes right after its hangup) the call goes on
        playing out. While active: 1000 from the bot ends the call as a hangup would,
        1008 ends it at once, anything else is a drop and the bot is reconnected;
        what it had queued is dropped and its pending marks are forgotten
        (docs/PROTOCOL.md, "Close codes" and "Reconnection").
        """
        self._bot_up = False
        self._bot_errors = 0
        if self.state is not CallState.ACTIVE:
            return
        if code == 1000:
            self._begin_ending("bot_hangup", now)
            return
        if code == 1008:
            self._fallback("bot_error", now)
            return
        self.stats.bot_drops += 1
        log.warning("bot socket dropped (%s); reconnecting", reason, extra=self._log)
        self.state = CallState.RECONNECTING
        self._playout.clear()
        self._drain_playout(now)
        self._dropped_at = now
        self._schedule_retry(now)

    def bot_event(self, event: DownstreamEvent, now: float) -> None:
        if self.state is not CallState.ACTIVE:
            return
        if isinstance(event, AudioSent):
            self._bot_audio(event.payload, now)
        elif isinstance(event, ClearRequested):
            self._playout.clear()
            self._drain_playout(now)
        elif isinstance(event, MarkRequested):
            self._playout.mark(event.name)
            self._drain_playout(now)
        elif isinstance(event, DtmfSendRequested):
            self._send_dtmf(event, now)
        elif isinstance(event, TransferRequested):
            self._transfer(event.target, now)
        elif isinstance(event, HangupRequested):
            self._begin_ending(event.reason or "bot_hangup", now)
        else:
            self.transcripts.append(event)
            log.info("transcript %s: %s", event.role, event.text, extra=self._log)

    def bot_protocol_error(self, error: ProtocolError, now: float) -> None:
        self.stats.protocol_errors += 1
        self._bot_errors += 1
        self._send_bot(ErrorReported(error.code, error.message))
        if self._bot_errors > self.policy.max_bot_errors:
            log.error("too many protocol errors from the bot", extra=self._log)
            self._fallback("bot_error", now)
        elif error.fatal:
            self._outputs.append(CloseBot(error.close_code, error.code))
            self.bot_disconnected(error.code, now)

    def transfer_failed(self, reason: str) -> None:
        """The carrier's REST API refused the transfer: the call goes on."""
        self._transfer_target = None
        self._send_bot(ErrorReported("transfer_unavailable", f"the carrier refused: {reason}"))

    # --- time -----------------------------------------------------------------------------

    def next_due(self) -> float | None:
        if self.state is CallState.ENDED:
            return None
        candidates = [
            when
            for when in (
                self._playout.next_due(),
                self._reorder.next_due(),
                self._retry_at,
                self._hangup_deadline,
            )
            if when is not None
        ]
        return min(candidates) if candidates else None

    def tick(self, now: float) -> None:
        if self.state is CallState.ENDED:
            return
        for frame in self._reorder.tick(now):
            self._forward_to_bot(frame)
        self._playout.tick(now)
        self._drain_playout(now)
        if self._retry_at is not None and now >= self._retry_at:
            self._retry(now)
        if self._hangup_deadline is not None and now >= self._hangup_deadline:
            log.info("hangup wait elapsed with audio unplayed", extra=self._log)
            self._finish(now)

    def drain(self) -> list[CallOutput]:
        outputs, self._outputs = self._outputs, []
        return outputs

    @property
    def playout(self) -> Playout:
        return self._playout

    @property
    def _log(self) -> Mapping[str, str]:
        return {"call_id": self.call_id}

    # --- internals: media -----------------------------------------------------------------

    def _caller_audio(self, event: MediaReceived, now: float) -> None:
        self.stats.frames_in += 1
        if event.track not in ("inbound", "inbound_track"):
            return
        counter = event.chunk if event.chunk is not None else event.sequence
        for frame in self._reorder.push(counter, event, now):
            self._forward_to_bot(frame)

    def _forward_to_bot(self, frame: MediaReceived) -> None:
        """Send a caller frame on, in the bot's format, stamped with the carrier's clock
        (so a gap, a reconnection for instance, shows in the bot's timestamps)."""
        converted = MediaReceived(
            self._to_bot.convert(frame.payload), timestamp_ms=frame.timestamp_ms
        )
        if self.state is CallState.ACTIVE:
            self.stats.frames_to_bot += 1
            self._send_bot(converted)
        elif self.state is CallState.CONNECTING:
            self._early.append(converted)
        else:
            self.stats.dropped_while_disconnected += 1

    def _bot_audio(self, payload: bytes, now: float) -> None:
        self.stats.bot_audio_bytes += len(payload)
        try:
            self._enqueue(self._to_carrier.convert(payload), now)
        except CodecError as error:
            self.bot_protocol_error(ProtocolError("bad_audio", str(error)), now)

    def _enqueue(self, carrier_audio: bytes, now: float) -> None:
        try:
            self._playout.enqueue(carrier_audio, now)
        except QueueFullError as error:
            self.bot_protocol_error(ProtocolError("unsupported", str(error)), now)
            return
        self._playout.tick(now)  # an idle playout releases the first frame at once
        self._drain_playout(now)

    def _send_dtmf(self, event: DtmfSendRequested, now: float) -> None:
        """Tones in-band (a media stream has no other way to send them)."""
        self.stats.dtmf_out += len(event.digits)
        fmt = self.carrier_format
        tones = dtmf_sequence(event.digits, tone_ms=event.duration_ms, sample_rate=fmt.sample_rate)
        gap = np.zeros(fmt.samples_per(60), dtype=np.int16)
        self._enqueue(encode(np.concatenate([tones, gap]), fmt), now)

    def _drain_playout(self, now: float) -> None:
        for output in self._playout.drain():
            if isinstance(output, FrameReleased):
                self._outputs.append(ToCarrier(AudioSent(output.payload), now - output.waited))
            elif isinstance(output, CarrierMarkRequested):
                self._outputs.append(ToCarrier(MarkRequested(output.name)))
            elif isinstance(output, CarrierClearRequested):
                self._outputs.append(ToCarrier(ClearRequested()))
            elif output.name == _HANGUP_MARK:
                self._finish(now)
            elif output.name == _TRANSFER_MARK:
                if self._transfer_target is not None:
                    self._outputs.append(CarrierTransfer(self._transfer_target))
            else:
                self._send_bot(MarkPlayed(output.name))

    # --- internals: bot socket ------------------------------------------------------------

    def _bot_start(self, reconnected: bool) -> StreamStarted:
        parameters = {
            key: value
            for key, value in self.carrier_start.custom_parameters.items()
            if key not in CONTROL_PARAMETERS
        }
        return replace(
            self.carrier_start,
            stream_id=f"{self.call_id}-{self.stats.bot_connects}",  # new for each bot socket
            session_id=self.call_id,
            media_format=self.bot_format,
            custom_parameters=parameters,
            reconnected=reconnected,
        )

    def _send_bot(self, event: UpstreamEvent) -> None:
        if self._bot_up:
            self._outputs.append(ToBot(event))

    def _connect(self, now: float) -> None:
        self._attempt += 1
        self._retry_at = None
        self._outputs.append(ConnectBot(self._attempt))

    def _schedule_retry(self, now: float) -> None:
        assert self._dropped_at is not None
        failures = max(self._attempt - self.stats.bot_connects, 0)
        delay = min(_BACKOFF_FIRST * 2**failures, _BACKOFF_MAX)
        if now + delay > self._dropped_at + self.policy.reconnect_for:
            self._fallback("bot_unreachable", now)
        else:
            self._retry_at = now + delay

    def _retry(self, now: float) -> None:
        self._connect(now)

    # --- internals: ending ----------------------------------------------------------------

    def _transfer(self, target: str, now: float) -> None:
        """Transfer once the audio queued before the request has played."""
        if not self.policy.carrier_rest:
            self._send_bot(
                ErrorReported("transfer_unavailable", "no carrier credentials to transfer with")
            )
            return
        self._transfer_target = target
        self._playout.mark(_TRANSFER_MARK)
        self._drain_playout(now)

    def _fallback(self, reason: str, now: float) -> None:
        log.error("bot unavailable, fallback %s", self.policy.fallback, extra=self._log)
        self._ending_reason = reason
        if self.policy.fallback == "apology":
            self.state = CallState.ENDING
            self._playout.clear()
            self._drain_playout(now)
            self._enqueue(self._apology(), now)
            self._begin_ending(reason, now)
        else:
            self._finish(now)

    def _apology(self) -> bytes:
        fmt = self.carrier_format
        tone = special_information_tone(fmt.sample_rate)
        return encode(np.concatenate([tone, np.zeros(fmt.samples_per(500), np.int16)]), fmt)

    def _begin_ending(self, reason: str, now: float) -> None:
        self._ending_reason = reason
        self.state = CallState.ENDING
        self._retry_at = None
        if not self.policy.hangup_after_playout:
            self._finish(now)
            return
        self._hangup_deadline = now + self.policy.max_hangup_wait
        self._playout.mark(_HANGUP_MARK)
        self._drain_playout(now)

    def _finish(self, now: float) -> None:
        """Hang up from our side: stop the bot, close both sockets, tell the carrier."""
        if self.state is CallState.ENDED:
            return
        if self.policy.carrier_rest:
            self._outputs.append(CarrierHangup())
        self._end(self._ending_reason, now, close_carrier=True)

    def _end(self, reason: str, now: float, *, close_carrier: bool) -> None:
        # RFC 6455 section 7.4.1: going away, policy violation, or normal closure.
        close_code = {"shutdown": 1001, "bot_error": 1008}.get(reason, 1000)
        self._send_bot(StreamStopped(reason))
        self._bot_up = False
        self._outputs.append(CloseBot(close_code, reason))  # also abandons a connect under way
        if close_carrier:
            self._outputs.append(CloseCarrier(close_code, reason))
        self.state = CallState.ENDED
        self.end_reason = reason
        self._playout.clear()  # what was still queued will never be heard
        self._playout.drain()
        self._retry_at = self._hangup_deadline = None
        self._outputs.append(CallEnded(reason))
        log.info("call ended: %s", reason, extra=self._log)
