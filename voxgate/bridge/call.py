"""One call: the state machine and policy between a carrier stream and a bot.

Theory of operation
-------------------
The call is sans-I/O. The asyncio adapter feeds it what happens (carrier
events, bot events, a bot socket connecting, failing or dropping, time
passing) and drains :data:`CallOutput` values telling it what to do (send to
the carrier, send to the bot, open or close a socket, call the carrier's REST
API). Dialects have already turned wire messages into events; the call
transcodes, reorders, paces, bounds and decides.

States::

    CONNECTING --bot connected--> ACTIVE --bot dropped--> RECONNECTING
        |                          |  ^                        |
        |                          |  +----bot connected-------+
        | connect_timeout spent    | bot hangup / apology      | budget spent
        v                          v                           v
    (fallback) ----------------> ENDING --played out--> ENDED <-- caller hung up (any state)

- CONNECTING: the carrier stream has started; the bot socket is being opened.
  A failed attempt is retried with backoff until
  :attr:`CallPolicy.connect_timeout` after the start (see
  :mod:`voxgate.bridge.attempts`). A refusal (HTTP 401/403) ends the call at
  once. Up to
  :attr:`CallPolicy.pre_connect_buffer` seconds of the caller's audio are kept
  and sent once the bot is there, so its first words are not lost.
- ACTIVE: caller audio is reordered, transcoded and sent to the bot as each
  frame comes in order; the bot's audio is transcoded and goes through the
  :class:`~voxgate.bridge.playout.Playout` (20 ms frames on a real-time clock,
  marks after playout, clear at once).
- RECONNECTING: the bot socket dropped mid-call; new attempts follow the same
  backoff, each new socket gets a ``start`` with ``reconnected`` set. The
  caller hears what was already queued, then silence; their audio is dropped.
  :attr:`CallPolicy.reconnect_for` is a *budget* that only a socket which
  proved itself refills (:mod:`voxgate.bridge.attempts`).
- ENDING: the bot asked to hang up (or the fallback is playing its apology).
  With ``hangup_after_playout`` the call waits until the carrier has played
  everything (a final carrier mark is echoed) or ``max_hangup_wait`` passes,
  then the bot gets ``stop``, both sockets close and the carrier's REST hangup
  is called when credentials exist.
- ENDED: nothing more happens; the adapter forgets the call.

The caller hanging up (carrier ``stop`` or its socket closing) ends the call
from any state: the bot gets ``stop`` and its socket is closed at once, so no
bot session outlives its call. :meth:`Call.fail` is the adapter's error
boundary: ``internal_error``, both sockets closed with 1011.

*Attempts.* Every bot socket is one attempt, numbered by :class:`ConnectBot`
(:class:`~voxgate.bridge.attempts.BotAttempts`); reports about any attempt but
the latest, or about one the call has already closed or abandoned, are
ignored.

*Bounds.* Everything a bot can make the call hold is bounded by the policy:
seconds of queued audio, marks not yet reported and the length of one mark's
name, transcript bytes. A message over a bound is refused with an ``error``
(``queue_full``; ``missing_field`` for a name too long) and ignored, and the
call goes on; refusals count as protocol errors towards
:attr:`CallPolicy.max_bot_errors`. Transcripts over their budget are dropped,
reported once.

*Timestamps.* The caller's frames reach the bot stamped with the carrier's
media clock while it behaves; see :mod:`voxgate.bridge.stamps`.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Mapping
from dataclasses import replace
from typing import Final, overload

import numpy as np

from voxgate.bridge.attempts import BotAttempts
from voxgate.bridge.call_api import (
    ENDED_BY,
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
    StopReason,
    ToBot,
    ToCarrier,
)
from voxgate.bridge.dialect import MAX_MESSAGE_BYTES
from voxgate.bridge.events import (
    AudioSent,
    ClearRequested,
    DownstreamEvent,
    DtmfReceived,
    DtmfSendRequested,
    ErrorReported,
    HangupRequested,
    HoldChanged,
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
from voxgate.bridge.stamps import CallerClock
from voxgate.codecs.dtmf import dtmf_sequence
from voxgate.codecs.formats import AudioFormat, Transcoder, encode
from voxgate.codecs.tones import special_information_tone
from voxgate.errors import CodecError, ProtocolError

log = logging.getLogger("voxgate.call")

CONTROL_PARAMETERS: Final = frozenset(
    {"wss_url", "wss_header", "bot_dialect", "bot_audio", "token"}
)
"""Custom parameters that steer voxgate itself; they are not passed on to the bot."""

MAX_DETAIL: Final = 200
"""Characters of the bot's own hangup text kept for the log (on one line)."""

# Inside the playout, the bot's marks are prefixed so that no bot can name an internal one.
_BOT_MARK: Final = "b"
_HANGUP_MARK: Final = "\x00hangup"  # the last mark before hanging up
_TRANSFER_MARK: Final = "\x00transfer"  # the last mark before transferring
# RFC 6455 section 7.4.1: going away, policy violation, internal error; else normal closure.
_CLOSE_CODES: Final[Mapping[str, int]] = {
    "shutdown": 1001,
    "bot_error": 1008,
    "internal_error": 1011,
}


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
        self.started_at = now
        self.ended_at: float | None = None
        self.end_reason: StopReason | None = None
        self.hangup_detail: str | None = None  # the bot's own text, for the log only
        self._to_bot = Transcoder(self.carrier_format, bot_format)
        self._to_carrier = Transcoder(bot_format, self.carrier_format)
        self._playout = Playout(
            self.carrier_format,
            carrier_marks=policy.carrier_marks,
            max_queued_seconds=policy.max_queued_audio,
        )
        self._reorder: Reorderer[MediaReceived] = Reorderer()
        self._clock = CallerClock()
        self._early: deque[MediaReceived] = deque(
            maxlen=max(1, round(policy.pre_connect_buffer / 0.020))
        )
        self._outputs: list[CallOutput] = []
        self._transcript_bytes = 0
        self._message_seconds = MAX_MESSAGE_BYTES / bot_format.bytes_per(1000)
        self._hangup_deadline: float | None = None
        self._ending_reason: StopReason = "bot_hangup"
        self._transfer_target: str | None = None
        self._bot = BotAttempts(
            connect_timeout=policy.connect_timeout, reconnect_for=policy.reconnect_for, now=now
        )
        self._bot_errors = 0  # protocol errors from the socket that is up
        self._connect(now)

    # --- inputs from the carrier -------------------------------------------------------

    def carrier_event(self, event: UpstreamEvent, now: float) -> None:
        if self.state is CallState.ENDED:
            return
        if isinstance(event, MediaReceived):
            self._caller_audio(event, now)
        elif isinstance(event, DtmfReceived):
            self.stats.dtmf_in += 1
            log.info("caller pressed a key", extra=self._log)
            self._send_bot(event)
        elif isinstance(event, HoldChanged):
            log.info("caller %s", "held the call" if event.on_hold else "resumed", extra=self._log)
            self._send_bot(event)
        elif isinstance(event, MarkPlayed):
            self._playout.carrier_mark_played(event.name)
            self._drain_playout(now)
        elif isinstance(event, StreamStopped):
            reason: StopReason = "transferred" if self._transfer_target else "caller_hangup"
            self._end(reason, now, close_carrier=True)
        elif isinstance(event, ErrorReported):
            what = _one_line(f"{event.code}: {event.message}")
            log.warning("carrier error %s", what, extra=self._log)
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

    def fail(self, now: float) -> None:
        """The adapter's error boundary: an unexpected exception escaped this call's handling.

        The call ends at once with ``internal_error``: the bot gets ``stop``, both sockets
        close with 1011 (RFC 6455 section 7.4.1, "internal error"). Nothing queued is
        touched, since what failed may be there.
        """
        if self.state is not CallState.ENDED:
            self._end("internal_error", now, close_carrier=True, tidy=False)

    def carrier_protocol_error(self, error: ProtocolError, now: float) -> None:
        self.stats.protocol_errors += 1
        if error.fatal and self.state is not CallState.ENDED:
            self._outputs.append(CloseCarrier(error.close_code, error.code))
            self._end("carrier_error", now, close_carrier=False)

    # --- inputs from the bot's sockets ------------------------------------------------------

    def bot_connected(self, now: float, *, attempt: int) -> None:
        if not self._connecting(attempt, "connected"):
            return
        self._bot.connected(now)
        reconnected = self.stats.bot_connects > 0
        self.stats.bot_connects += 1
        self.state = CallState.ACTIVE
        self._bot_errors = 0
        self._send_bot(StreamConnected())  # Twilio and Telnyx say hello first; v1 does not
        self._send_bot(self._bot_start(reconnected))
        while self._early:
            self._send_bot(self._early.popleft())
            self.stats.frames_to_bot += 1
            self._bot.carried_audio()

    def bot_connect_failed(
        self, reason: str, now: float, *, attempt: int, refused: bool = False
    ) -> None:
        """Attempt ``attempt`` failed; ``refused``: the bot turned voxgate away (HTTP 401/403),
        so trying again is pointless (docs/PROTOCOL.md, "Reconnection")."""
        if not self._connecting(attempt, "failure"):
            return
        self._bot.failed()
        why = _one_line(reason)
        log.warning("bot connect attempt %d failed: %s", attempt, why, extra=self._log)
        if refused:
            self._fallback("bot_unreachable", now)
        else:
            self._retry_later(now)

    def bot_disconnected(
        self, reason: str, now: float, *, attempt: int, code: int | None = None
    ) -> None:
        """Bot socket ``attempt`` closed (``code``: the close code the bot sent, if any).

        While ending (a bot often closes right after its hangup) the call goes on
        playing out. While active: 1000 from the bot ends the call as a hangup would,
        1008 ends it at once, anything else is a drop and the bot is reconnected;
        what it had queued is dropped and its pending marks are forgotten
        (docs/PROTOCOL.md, "Close codes" and "Reconnection").
        """
        if not self._up(attempt, "close"):
            return
        self._bot.disconnected()
        if self.state is not CallState.ACTIVE:
            return
        if code == 1000:
            self._begin_ending("bot_hangup", now)
        elif code == 1008:
            self._fallback("bot_error", now)
        else:
            self._dropped(reason, now)

    def bot_event(self, event: DownstreamEvent, now: float, *, attempt: int) -> None:
        if not self._up(attempt, "message") or self.state is not CallState.ACTIVE:
            return
        if isinstance(event, AudioSent):
            self._bot_audio(event.payload, now)
        elif isinstance(event, ClearRequested):
            self._playout.clear()
            self._drain_playout(now)
        elif isinstance(event, MarkRequested):
            self._bot_mark(event.name, now)
        elif isinstance(event, DtmfSendRequested):
            self._send_dtmf(event, now)
        elif isinstance(event, TransferRequested):
            self._transfer(event.target, now)
        elif isinstance(event, HangupRequested):
            self.hangup_detail = _one_line(event.reason)
            self._begin_ending("bot_hangup", now)
        else:
            self._transcript(event, now)

    def bot_protocol_error(self, error: ProtocolError, now: float, *, attempt: int) -> None:
        """The bot's message could not be parsed, or its dialect cannot say what the call
        sends: report it to the bot; a fatal one closes the socket (and is a drop)."""
        if not self._up(attempt, "protocol error"):
            return
        self.stats.protocol_errors += 1
        self._report(ErrorReported(error.code, error.message), now)
        if error.fatal and self._bot.up:
            self._close_bot(error.close_code, error.code)
            if self.state is CallState.ACTIVE:
                self._dropped(error.code, now)

    def transfer_failed(self, reason: str) -> None:
        """The carrier's REST API refused the transfer: the call goes on."""
        self._transfer_target = None
        self._send_bot(ErrorReported("transfer_unavailable", f"the carrier refused: {reason}"))

    # --- inputs from the control plane (the REST API acting on a live call) ---------------

    @property
    def transfer_target(self) -> str | None:
        """Where the call is being (or was) transferred, if it is."""
        return self._transfer_target

    @property
    def live(self) -> bool:
        """The call can still be acted on (not ended, not already ending)."""
        return self.state not in (CallState.ENDING, CallState.ENDED)

    def api_hangup(self, now: float) -> None:
        """``POST /v1/calls/{id}/hangup``: end the call now, queued audio or not."""
        if self.state is CallState.ENDED:
            return
        self._ending_reason = "api_hangup"
        self._bot.stop_retrying()
        self._finish(now)

    def api_transfer(self, target: str, now: float) -> str | None:
        """``POST /v1/calls/{id}/transfer``; None when under way, else why it cannot be."""
        if not self.policy.carrier_rest:
            return "this call's carrier cannot transfer it"
        if self._transfer_target is not None:
            return "a transfer is already under way"
        self._transfer(target, now)
        return None

    def api_dtmf(self, digits: str, now: float) -> None:
        """``POST /v1/calls/{id}/dtmf``: send keypresses to the caller's side."""
        self._send_dtmf(DtmfSendRequested(digits), now)

    def api_play(self, carrier_audio: bytes, now: float, *, barge_in: bool) -> bool:
        """``POST /v1/calls/{id}/play``: queue audio (already in the carrier's format) for
        the caller, after clearing what is queued when ``barge_in``; False if it is over
        the queue's bound."""
        if barge_in:
            self._playout.clear()
            self._drain_playout(now)
        return self._enqueue(carrier_audio, now)

    def replace_bot(self, bot_format: AudioFormat, now: float) -> None:
        """``POST /v1/calls/{id}/bot``: close the bot's socket (1000, ``bot_replaced``),
        forget its queued audio, and connect the new bot (the adapter knows its address)
        with the start's connect budget; the new bot gets ``start`` as a first bot would."""
        if not self.live:
            return
        self._close_bot(1000, "bot_replaced")
        self._bot.restart(now)
        self._playout.clear()
        self._drain_playout(now)
        self.bot_format = bot_format
        self._to_bot = Transcoder(self.carrier_format, bot_format)
        self._to_carrier = Transcoder(bot_format, self.carrier_format)
        self._message_seconds = MAX_MESSAGE_BYTES / bot_format.bytes_per(1000)
        self.state = CallState.CONNECTING
        self._connect(now)

    # --- time -----------------------------------------------------------------------------

    def next_due(self) -> float | None:
        if self.state is CallState.ENDED:
            return None
        due: float | None = None
        for when in (
            self._playout.next_due(),
            self._reorder.next_due(),
            self._bot.retry_at,
            self._bot.connecting_until,
            self._hangup_deadline,
        ):
            if when is not None and (due is None or when < due):
                due = when
        return due

    def tick(self, now: float) -> None:
        if self.state is CallState.ENDED:
            return
        for frame in self._reorder.tick(now):
            self._forward_to_bot(frame, now)
        self._playout.tick(now)
        self._drain_playout(now)
        if (until := self._bot.connecting_until) is not None and now >= until:
            self._connect_timed_out(now)
        if (retry_at := self._bot.retry_at) is not None and now >= retry_at:
            self._connect(now)
        if self._hangup_deadline is not None and now >= self._hangup_deadline:
            log.info("hangup wait elapsed with audio unplayed", extra=self._log)
            self._finish(now)

    def drain(self) -> list[CallOutput]:
        outputs, self._outputs = self._outputs, []
        return outputs

    # --- what the adapter may ask -----------------------------------------------------------

    @property
    def playout(self) -> Playout:
        return self._playout

    @property
    def full(self) -> bool:
        """The caller's queue is so full that the bot's next message might not fit.

        The adapter stops reading the bot's socket while this holds (backpressure: the
        bot's TCP window absorbs a flood, not voxgate's memory); it stops holding as the
        queue plays out in real time, and never holds for an empty queue.
        """
        room = self.policy.max_queued_audio - self._message_seconds
        return self._playout.queued_seconds > max(room, 0.0)

    def summary(self, now: float) -> dict[str, object]:
        """The end-of-call log line's fields (``now``: for a call still under way).

        ``reason`` and ``ended_by`` are None until the call has ended. The counters
        are per call; the adapter adds those that are process totals on /metrics
        (``frames_in``, ``frames_out``, ``frames_late``, ``frames_padded``,
        ``frames_cleared``, ``reorder_lost``, ``reorder_reordered``, ``reorder_resyncs``).
        """
        stats, playout, reorder = self.stats, self._playout, self._reorder
        end = now if self.ended_at is None else self.ended_at
        summary: dict[str, object] = {
            "duration_s": round(end - self.started_at, 3),
            "reason": self.end_reason,
            "ended_by": None if self.end_reason is None else ENDED_BY[self.end_reason],
            "frames_in": stats.frames_in,
            "frames_to_bot": stats.frames_to_bot,
            "frames_out": playout.frames_released,
            "frames_late": playout.frames_late,
            "frames_padded": playout.frames_padded,
            "frames_cleared": playout.frames_cleared,
            "frames_dropped_disconnected": stats.dropped_while_disconnected,
            "reorder_lost": reorder.lost,
            "reorder_reordered": reorder.reordered,
            "reorder_resyncs": reorder.resyncs,
            "marks": stats.marks,
            "dtmf_in": stats.dtmf_in,
            "dtmf_out": stats.dtmf_out,
            "bot_connects": stats.bot_connects,
            "reconnects": max(stats.bot_connects - 1, 0),
            "protocol_errors": stats.protocol_errors,
            "refused": stats.refused,
            "transcripts_dropped": stats.transcripts_dropped,
        }
        if self.hangup_detail is not None:
            summary["bot_hangup_text"] = self.hangup_detail
        return summary

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
            self._forward_to_bot(frame, now)

    def _forward_to_bot(self, frame: MediaReceived, now: float) -> None:
        """Send a caller frame on, in the bot's format, stamped with the carrier's clock
        (so a gap, a reconnection for instance, shows in the bot's timestamps)."""
        if self.state not in (CallState.ACTIVE, CallState.CONNECTING):
            self.stats.dropped_while_disconnected += 1
            return
        fmt = self.carrier_format
        length_ms = len(frame.payload) // fmt.bytes_per_sample * 1000 // fmt.sample_rate
        stamp = self._clock.stamp(frame.timestamp_ms, length_ms, now)
        converted = MediaReceived(self._to_bot.convert(frame.payload), timestamp_ms=stamp)
        if self.state is CallState.ACTIVE:
            self.stats.frames_to_bot += 1
            self._bot.carried_audio()
            self._send_bot(converted)
        else:
            self._early.append(converted)

    def _bot_audio(self, payload: bytes, now: float) -> None:
        self.stats.bot_audio_bytes += len(payload)
        try:
            audio = self._to_carrier.convert(payload)
        except CodecError as error:
            self.stats.protocol_errors += 1
            self._report(ErrorReported("bad_audio", str(error)), now)
            return
        if self._enqueue(audio, now):
            self._bot.carried_audio()

    def _enqueue(self, carrier_audio: bytes, now: float) -> bool:
        """Queue audio for the caller; False: refused (the queue is full)."""
        try:
            self._playout.enqueue(carrier_audio, now)
        except QueueFullError as error:
            self._refuse("queue_full", str(error), now)
            return False
        self._playout.tick(now)  # an idle playout releases the first frame at once
        self._drain_playout(now)
        return True

    def _bot_mark(self, name: str, now: float) -> None:
        size = len(name.encode("utf-8", "surrogatepass"))
        if size > self.policy.max_mark_name:
            limit = self.policy.max_mark_name
            self._refuse("missing_field", f"mark: 'name' is {size} bytes, over {limit}", now)
        elif self._playout.pending_marks >= self.policy.max_marks:
            limit = self.policy.max_marks
            self._refuse("queue_full", f"mark: {limit} marks are already pending", now)
        else:
            self.stats.marks += 1
            self._playout.mark(_BOT_MARK + name)
            self._drain_playout(now)

    def _send_dtmf(self, event: DtmfSendRequested, now: float) -> None:
        """Events for a leg that sends them (SIP: RFC 4733), else tones in-band (a media
        stream has no other way to send them), queued like audio."""
        if self.policy.carrier_dtmf_events:
            self._outputs.append(ToCarrier(event))
            self.stats.dtmf_out += len(event.digits)
            log.info("sending %d DTMF digits as events", len(event.digits), extra=self._log)
            return
        fmt = self.carrier_format
        tones = dtmf_sequence(event.digits, tone_ms=event.duration_ms, sample_rate=fmt.sample_rate)
        gap = np.zeros(fmt.samples_per(60), dtype=np.int16)
        if self._enqueue(encode(np.concatenate([tones, gap]), fmt), now):
            self.stats.dtmf_out += len(event.digits)
            log.info("sending %d DTMF digits", len(event.digits), extra=self._log)

    def _transcript(self, event: TranscriptReceived, now: float) -> None:
        """Keep a transcript within the call's byte budget; the first one over it is reported."""
        size = len(event.text.encode("utf-8", "surrogatepass"))
        if self._transcript_bytes + size > self.policy.max_transcript_bytes:
            self.stats.transcripts_dropped += 1
            if self.stats.transcripts_dropped == 1:
                limit = self.policy.max_transcript_bytes
                problem = f"transcript: over {limit} bytes kept for this call; later ones dropped"
                self._refuse("queue_full", problem, now)
            return
        self._transcript_bytes += size
        self.transcripts.append(event)
        log.debug("transcript from the %s, %d characters", event.role, len(event.text))

    def _drain_playout(self, now: float) -> None:
        for output in self._playout.drain():
            if isinstance(output, FrameReleased):
                self._outputs.append(ToCarrier(AudioSent(output.payload), now - output.waited))
            elif isinstance(output, CarrierMarkRequested):
                self._outputs.append(ToCarrier(MarkRequested(output.name)))
            elif isinstance(output, CarrierClearRequested):
                self._outputs.append(ToCarrier(ClearRequested()))
            elif output.name.startswith(_BOT_MARK):
                self._send_bot(MarkPlayed(output.name[len(_BOT_MARK) :]))
            elif output.name == _HANGUP_MARK:
                self._finish(now)
            elif output.name == _TRANSFER_MARK and self._transfer_target is not None:
                self._outputs.append(CarrierTransfer(self._transfer_target))

    # --- internals: errors to the bot -------------------------------------------------------

    def _refuse(self, code: str, message: str, now: float) -> None:
        """A message over one of the call's bounds: refused and ignored; the call goes on."""
        self.stats.refused += 1
        self.stats.protocol_errors += 1
        self._report(ErrorReported(code, message), now)

    def _report(self, error: ErrorReported, now: float) -> None:
        """Tell the bot; past ``max_bot_errors`` on one socket, give up on it."""
        self._bot_errors += 1
        self._send_bot(error)
        if self._bot_errors <= self.policy.max_bot_errors or not self._bot.up:
            return
        log.error("too many protocol errors from the bot", extra=self._log)
        if self.state is CallState.ACTIVE:
            self._fallback("bot_error", now)
        else:  # ending: the caller hears the rest; the bot is done
            self._send_bot(StreamStopped("bot_error"))
            self._close_bot(_CLOSE_CODES["bot_error"], "bot_error")

    # --- internals: bot sockets -----------------------------------------------------------

    def _connecting(self, attempt: int, what: str) -> bool:
        """``attempt`` is the one under way (else its report is stale: ignored)."""
        if self._bot.is_connecting(attempt):
            return True
        log.debug("ignored the %s of bot attempt %d", what, attempt, extra=self._log)
        return False

    def _up(self, attempt: int, what: str) -> bool:
        """``attempt`` is the socket that is up (else its report is stale: ignored)."""
        if self._bot.is_up(attempt):
            return True
        log.debug("ignored a %s of bot attempt %d", what, attempt, extra=self._log)
        return False

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
        if self._bot.up:
            self._outputs.append(ToBot(event))

    def _connect(self, now: float) -> None:
        timeout = self._bot.begin(now)
        if timeout is None:
            self._fallback("bot_unreachable", now)
        else:
            self._outputs.append(ConnectBot(self._bot.attempt, timeout))

    def _connect_timed_out(self, now: float) -> None:
        log.warning("bot connect attempt %d timed out", self._bot.attempt, extra=self._log)
        self._close_bot(1000, "connect_timeout")  # abandons the attempt
        self._retry_later(now)

    def _retry_later(self, now: float) -> None:
        if not self._bot.retry_later(now):
            self._fallback("bot_unreachable", now)

    def _dropped(self, reason: str, now: float) -> None:
        """The socket that was up dropped mid-call: reconnect within the budget."""
        self.stats.bot_drops += 1
        self._bot.dropped(now)
        why = _one_line(reason)
        log.warning("bot socket dropped (%s); reconnecting", why, extra=self._log)
        self.state = CallState.RECONNECTING
        self._playout.clear()
        self._drain_playout(now)
        self._retry_later(now)

    def _close_bot(self, code: int, reason: str) -> None:
        """Close the socket that is up, or abandon the attempt under way."""
        if self._bot.close():
            self._outputs.append(CloseBot(self._bot.attempt, code, reason))

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

    def _fallback(self, reason: StopReason, now: float) -> None:
        """The bot is gone for good: stop it if it is still there, then the policy's fallback."""
        log.error(
            "bot unavailable (%s), fallback %s", reason, self.policy.fallback, extra=self._log
        )
        self._ending_reason = reason
        self._bot.stop_retrying()
        self._send_bot(StreamStopped(reason))
        self._close_bot(_CLOSE_CODES.get(reason, 1000), reason)
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

    def _begin_ending(self, reason: StopReason, now: float) -> None:
        self._ending_reason = reason
        self.state = CallState.ENDING
        self._bot.stop_retrying()
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

    def _end(
        self, reason: StopReason, now: float, *, close_carrier: bool, tidy: bool = True
    ) -> None:
        """The call is over: ``stop`` to the bot, sockets closed, the summary logged once."""
        close_code = _CLOSE_CODES.get(reason, 1000)
        self._send_bot(StreamStopped(reason))
        self._close_bot(close_code, reason)
        if close_carrier:
            self._outputs.append(CloseCarrier(close_code, reason))
        self.state = CallState.ENDED
        self.end_reason = reason
        self.ended_at = now
        self._hangup_deadline = None
        self._bot.stop_retrying()
        summary = self.summary(now)
        if tidy:
            self._playout.clear()  # what was still queued will never be heard
            self._playout.drain()
        self._outputs.append(CallEnded(reason, summary))
        log.info("call ended: %s", reason, extra={"call_id": self.call_id, "summary": summary})


@overload
def _one_line(text: str) -> str: ...
@overload
def _one_line(text: None) -> None: ...
def _one_line(text: str | None) -> str | None:
    """A peer's free text, fit for one log field: one line, at most :data:`MAX_DETAIL`."""
    if text is None:
        return None
    flat = " ".join(text.split())
    return flat if len(flat) <= MAX_DETAIL else flat[: MAX_DETAIL - 1] + "\u2026"
