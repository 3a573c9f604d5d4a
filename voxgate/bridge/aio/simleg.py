"""Test-mode calls: the simulated callee as a call's carrier leg.

A call placed with a test API key reaches no trunk: :func:`start_simulated_call`
holds a place for it, "rings" for the script's ring time, then plays the
script's outcome. Busy, no answer and failure end it there (the place goes
back); an answer opens the call's session on a :class:`SimLeg`, whose
:class:`~voxgate.bridge.simcallee.SimulatedCallee` talks to the bot like a
phone would. Statuses are reported as the REST API names them: ``ringing``,
``in-progress``, ``busy``, ``no-answer``, ``failed``; the end of an answered
call is the session's ``on_ended``.

The leg is woken by the bridge's shared scheduler (no task per call) and
hands the callee's frames, digits and hangup to the session. The call's
carrier actions are carried out as a carrier would: a hangup ends the
callee's side, a transfer takes the callee to its target and the call ends
``transferred``. Once the leg is closed its session leaves the bridge.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
import weakref
from collections.abc import Callable, Mapping
from dataclasses import replace
from typing import TYPE_CHECKING, Final

from voxgate.bridge.aio.session import CallSession
from voxgate.bridge.call_api import CallEnded, CallState, CarrierHangup, CarrierTransfer
from voxgate.bridge.events import DownstreamEvent, StreamStarted, StreamStopped
from voxgate.bridge.simcallee import CalleeScript, SimulatedCallee
from voxgate.codecs.formats import PCMU_8K
from voxgate.errors import ConfigError, UnsupportedFormatError
from voxgate.obs import METRICS
from voxgate.redact import scrub

if TYPE_CHECKING:
    from voxgate.bridge.aio.app import Bridge

__all__ = [
    "CalleeScript",
    "SimLeg",
    "simulated_callee",
    "simulated_started",
    "start_simulated_call",
]

log = logging.getLogger("voxgate.simulated")

CARRIER: Final = "test"
NOT_ANSWERED: Final = {  # outcome -> (status, reason)
    "busy": ("busy", "busy"),
    "no-answer": ("no-answer", "no_answer"),
    "fail": ("failed", "rejected"),
}

StatusListener = Callable[[str, Mapping[str, object]], None]
EndListener = Callable[[CallSession, CallEnded], None]

_LEGS: weakref.WeakKeyDictionary[CallSession, SimLeg] = weakref.WeakKeyDictionary()


class SimLeg:
    """A :class:`~voxgate.bridge.aio.session.CarrierLeg` whose far end is a simulated callee."""

    def __init__(
        self,
        callee: SimulatedCallee,
        *,
        call_id: str,
        schedule: Callable[[SimLeg, float | None], None],
        done: Callable[[SimLeg], None],
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.callee = callee
        self.call_id = call_id
        self.session: CallSession | None = None
        self._schedule = schedule
        self._done = done
        self._clock = clock
        self._closed = asyncio.Event()
        self._log = {"call_id": call_id}

    def attach(self, session: CallSession) -> None:
        """The call's session: the callee starts talking to it."""
        self.session = session
        _LEGS[session] = self
        if self._closed.is_set():  # the call ended while it was opening
            self._done(self)
        else:
            self._schedule(self, self.callee.next_due())

    # --- CarrierLeg -------------------------------------------------------------------------

    def deliver(self, event: DownstreamEvent, since: float | None) -> None:
        self.callee.deliver(event, self._clock())

    def close(self, code: int, reason: str) -> None:
        """The call hung up on the callee."""
        self.callee.close(self._clock())
        self._shut()

    async def wait_closed(self, timeout: float = 2.0) -> None:
        await asyncio.wait_for(self._closed.wait(), timeout)

    # --- the clock --------------------------------------------------------------------------

    def wake(self, now: float) -> float | None:
        if self._closed.is_set():
            return None
        events = self.callee.tick(now)
        if events and self.session is not None:
            self.session.on_carrier_events(events, now)
        if self.callee.ended:  # it hung up (the session has closed the leg by now)
            self._shut()
            return None
        return self.callee.next_due()

    # --- the call's carrier actions -----------------------------------------------------------

    async def act(self, action: CarrierHangup | CarrierTransfer) -> str | None:
        """Carry out a hangup or a transfer; None when done, else why not."""
        if isinstance(action, CarrierHangup):
            self.close(1000, "hangup")
            return None
        if self.callee.ended:
            return "the call has ended"
        now = self._clock()
        self.callee.transferred(action.target, now)
        if self.session is not None:  # the call ends "transferred" (its target is set)
            self.session.on_carrier_events([StreamStopped("transferred")], now)
        self._shut()
        return None

    def _shut(self) -> None:
        self._schedule(self, None)
        if self._closed.is_set():
            return
        self._closed.set()
        callee, heard = self.callee, self.callee.heard
        METRICS.count("simulated_calls_ended", by=callee.ended_by or "bridge")
        figures = {  # counts, not digits: a script or a bot may key in a PIN
            "ended_by": callee.ended_by,
            "frames_said": callee.frames_sent,
            "digits_said": callee.digits_sent,
            "frames_heard": heard.frames,
            "voiced_seconds_heard": round(heard.voiced_seconds, 3),
            "level_heard_dbfs": None if heard.rms_dbfs is None else round(heard.rms_dbfs, 1),
            "digits_heard": len(heard.digits),
        }
        log.info("simulated callee: %s", json.dumps(figures), extra=self._log)
        if self.session is not None:
            self._done(self)


def simulated_callee(session: CallSession) -> SimulatedCallee | None:
    """The callee of a test-mode call's session (for its record), else None."""
    leg = _LEGS.get(session)
    return None if leg is None else leg.callee


def simulated_started(
    call_id: str,
    to_number: str | None,
    from_number: str | None,
    custom_parameters: Mapping[str, str] | None = None,
) -> StreamStarted:
    """The start of a test-mode call's stream: mu-law at 8 kHz, placed by voxgate."""
    return StreamStarted(
        stream_id=call_id,
        call_id=call_id,
        media_format=PCMU_8K,
        from_number=from_number,
        to_number=to_number,
        direction="outbound",
        custom_parameters=dict(custom_parameters or {}),
    )


async def start_simulated_call(
    bridge: Bridge,
    *,
    call_id: str,
    started: StreamStarted,
    script: CalleeScript,
    on_status: StatusListener,
    on_ended: EndListener | None = None,
    ring_timeout: float | None = None,
) -> CallSession | None:
    """Ring the simulated callee, then play its script's outcome; the answered call's
    session, else None (the status said why). A callee still ringing after ``ring_timeout``
    seconds has not answered. Cancelled while ringing, the place goes back."""
    extra = {"call_id": call_id}
    if not bridge.reserve():
        METRICS.count("simulated_calls", outcome="capacity")
        log.warning("simulated call refused: no room", extra=extra)
        _tell(on_status, "failed", {"reason": "capacity"}, call_id)
        return None
    session: CallSession | None = None
    try:
        _tell(on_status, "ringing", {"ring": script.ring}, call_id)
        if ring_timeout is not None and script.ring > ring_timeout:
            await asyncio.sleep(ring_timeout)
            script = replace(script, answer="no-answer")
        else:
            await asyncio.sleep(script.ring)
        session = _answer(bridge, call_id, started, script, on_status)
    finally:
        if session is None:
            bridge.release()
    if session is None:
        return None
    if on_ended is not None:  # else whoever listens already (the control plane) stays
        session.on_ended = on_ended
    _tell(on_status, "in-progress", {"call_id": session.call_id}, call_id)
    call = session.call
    if call.state is CallState.ENDED and on_ended is not None:  # over before we listened
        ended = CallEnded(call.end_reason or "internal_error", call.summary(call.ended_at or 0.0))
        on_ended(session, ended)
    return session


def _answer(
    bridge: Bridge,
    call_id: str,
    started: StreamStarted,
    script: CalleeScript,
    on_status: StatusListener,
) -> CallSession | None:
    """The session of the answered call, or None (reported) when it is not answered."""
    extra = {"call_id": call_id}
    if script.answer != "answer":
        status, reason = NOT_ANSWERED[script.answer]
        METRICS.count("simulated_calls", outcome=reason)
        log.info("simulated call not answered: %s", reason, extra=extra)
        _tell(on_status, status, {"reason": reason}, call_id)
        return None
    if bridge.draining:
        METRICS.count("simulated_calls", outcome="draining")
        _tell(on_status, "failed", {"reason": "draining"}, call_id)
        return None
    clock = bridge.scheduler.clock
    callee = SimulatedCallee(script, started.media_format, clock())
    leg = SimLeg(
        callee,
        call_id=call_id,
        schedule=bridge.scheduler.schedule,
        done=_forget(bridge),
        clock=clock,
    )
    try:
        session = bridge.open_leg_session(
            CARRIER, leg, started, carrier_action=leg.act, call_id=call_id
        )
    except (ConfigError, UnsupportedFormatError) as error:
        detail = scrub(str(error))
        METRICS.count("simulated_calls", outcome="bad_parameters")
        log.warning("simulated call cannot start its bot: %s", detail, extra=extra)
        _tell(on_status, "failed", {"reason": "bad_parameters", "detail": detail}, call_id)
        return None
    METRICS.count("simulated_calls", outcome="answered")
    log.info("simulated call answered", extra=extra)
    leg.attach(session)
    return session


def _forget(bridge: Bridge) -> Callable[[SimLeg], None]:
    """When a leg is closed its session leaves the bridge (once the call has finished what it
    is doing: the leg may close in the middle of the call's work)."""

    def done(leg: SimLeg) -> None:
        if leg.session is not None:
            asyncio.get_running_loop().call_soon(bridge.forget, leg.session)

    return done


def _tell(
    listener: StatusListener, status: str, details: Mapping[str, object], call_id: str
) -> None:
    """The listener's failure is not the call's."""
    try:
        listener(status, details)
    except Exception:
        METRICS.count("errors", kind="internal")
        log.exception("the status listener failed on %s", status, extra={"call_id": call_id})
