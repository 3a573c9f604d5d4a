"""The receptionist's call flow: greeting, menu, transfers and voicemail.

Theory of operation
-------------------
One :class:`Receptionist` serves one call, a coroutine walking through these steps::

    closed (--hours)? --> "after_hours", beep ---------------------------------> RECORD
    open:  "greeting", "menu" --> MENU
    MENU   --1/2/0--> "transfer_*", session.transfer --> (the stop says "transferred")
           --3------> "voicemail", beep --> RECORD --> "saved" (or "goodbye") --> hang up
           --#------> "menu" --> MENU
           --other--> "invalid", "menu" --> MENU
           --no key for --no-input s--> "no_input", "menu" --> MENU;  the 2nd time in a
                                        row: "goodbye" --> hang up

In MENU the prompts play while the bot listens: a key, or the caller starting to talk
(the SDK's voice-activity detector), stops them at once (``call.clear()``: barge-in). A
key acts at once; after speech the bot waits for a key all the same (it recognises no
words). The no-input timer starts when the prompts have ended: their mark came back
(played, or cleared by the barge-in). Every batch of prompts ends with a mark of a new
name, so the late mark of a cleared batch is not taken for the current one.

RECORD keeps the caller's audio from the end of the beep until the first of: speech
then ``--silence`` s of silence (SpeechEnded with that hangover), ``--max-message`` s,
no speech within ``--no-input`` s, the caller hanging up. A message with speech in it
is saved (:mod:`voxgate.bots.receptionist.voicemail`), even when the caller hung up;
one without is not, and the caller hears "goodbye" instead of "saved".

Keys pressed while a transfer prompt, "saved" or "goodbye" plays are ignored. The
stream's stop (the caller hung up, the call was transferred) ends the flow wherever it
is: :meth:`Receptionist.next_event` raises :class:`CallOver`, which :func:`handle` catches.
"""

from __future__ import annotations

import asyncio
import functools
import itertools
from datetime import datetime
from pathlib import Path
from typing import Final, NoReturn

from voxgate.bots.receptionist.options import Settings
from voxgate.bots.receptionist.voicemail import Recording, save_message
from voxgate.bots.sdk import (
    Audio,
    Call,
    Dtmf,
    Error,
    Event,
    Mark,
    SpeechEnded,
    SpeechStarted,
    Stop,
    load_audio,
    tone,
)
from voxgate.codecs.pcm import Pcm

PROMPTS: Final = Path(__file__).parent / "prompts"
BEEP_HZ: Final = 1000
BEEP_MS: Final = 400
DEPARTMENTS: Final = {"1": "sales", "2": "support", "0": "operator"}
"""The keys that transfer the caller, and to whom (the option naming the target)."""


@functools.cache
def prompt(name: str) -> tuple[Pcm, int]:
    """A prompt's samples (read-only: every call shares them) and rate, read once."""
    samples, rate = load_audio(PROMPTS / f"{name}.wav")
    samples.flags.writeable = False
    return samples, rate


class CallOver(Exception):  # noqa: N818 (not an error: how every call ends)
    """The stream stopped: the caller hung up, or the call was transferred or ended."""

    def __init__(self, reason: str | None) -> None:
        super().__init__(reason)
        self.reason = reason


async def handle(call: Call) -> None:
    """Serve one call: the bot's entry point."""
    try:
        await Receptionist(call, Settings.of(call.options)).run()
    except CallOver as over:
        call.log.info("the call is over (%s)", over.reason)


class Receptionist:
    """The call flow of one call (see the module's docstring)."""

    def __init__(self, call: Call, settings: Settings) -> None:
        self.call = call
        self.settings = settings
        self._marks = itertools.count(1)

    async def run(self) -> NoReturn:
        """Serve the call until its stream stops (then CallOver ends this)."""
        now = datetime.now(self.settings.timezone)
        if self.settings.hours.is_open(now):
            await self.menu()
        else:
            self.call.log.info("closed at %s (hours: %s)", f"{now:%a %H:%M}", self.settings.hours)
            await self.take_message("after_hours")

    # --- the steps -----------------------------------------------------------------------

    async def menu(self) -> NoReturn:
        self.call.detect_speech()
        prompts = ["greeting", "menu"]
        silent_turns = 0
        while True:
            key = await self.ask(*prompts)
            if key is None:
                silent_turns += 1
                self.call.log.info("no key pressed (%d in a row)", silent_turns)
                if silent_turns == 2:
                    await self.end_call("goodbye", "no choice made")
                prompts = ["no_input", "menu"]
                continue
            silent_turns = 0
            self.call.log.info("the caller pressed %s", key)
            if key in DEPARTMENTS:
                await self.transfer(DEPARTMENTS[key])
            elif key == "3":
                await self.take_message("voicemail")
            prompts = ["menu"] if key == "#" else ["invalid", "menu"]

    async def ask(self, *prompts: str) -> str | None:
        """Play ``prompts``; the caller's key, or None when none came in time."""
        played = await self.play(*prompts)
        loop = asyncio.get_running_loop()
        deadline: float | None = None  # set once the prompts have ended
        while True:
            timeout = None if deadline is None else max(0.0, deadline - loop.time())
            event = await self.next_event(timeout)
            match event:
                case None:
                    return None
                case Dtmf(digit=digit):
                    if deadline is None:
                        await self.call.clear()
                    return digit
                case SpeechStarted() if deadline is None:
                    await self.call.clear()
                    self.call.log.info("the caller talks over the prompt: stopped it")
                    deadline = loop.time() + self.settings.no_input
                case Mark(name=name) if name == played and deadline is None:
                    deadline = loop.time() + self.settings.no_input

    async def transfer(self, department: str) -> NoReturn:
        target: str = getattr(self.settings, department)
        self.call.log.info("transferring the caller to %s: %s", department, target)
        await self.play(f"transfer_{department}")
        await self.call.transfer(target)  # voxgate plays the prompt first
        while True:  # until the stop ("transferred") raises CallOver, or voxgate says no
            event = await self.next_event()
            if isinstance(event, Error) and event.code == "transfer_unavailable":
                break
            self.ignore_key(event)
        self.call.log.warning("the transfer failed: taking a message instead")
        await self.take_message("voicemail")

    async def take_message(self, intro: str) -> NoReturn:
        await self.play(intro)
        rate = self.call.media_format.sample_rate
        await self.call.play(tone(BEEP_HZ, BEEP_MS, rate), sample_rate=rate)
        await self.until_mark(await self.mark("beep"))
        recording = Recording(rate, self.settings.max_message)
        try:
            await self.record(recording)
        finally:  # also when the caller hangs up while recording: what they said is kept
            saved = self.keep(recording)
        await self.end_call("saved" if saved else "goodbye", "message taken")

    async def record(self, recording: Recording) -> None:
        """Record until an end of RECORD (see the module's docstring); a hang-up raises
        CallOver. The detector is new, with ``--silence`` as its hangover; a speech end
        counts only after a speech start, so none left over from the menu's detector
        ends the message."""
        settings = self.settings
        self.call.detect_speech(hangover_ms=round(settings.silence * 1000))
        loop = asyncio.get_running_loop()
        started = loop.time()
        deadline = started + min(settings.no_input, settings.max_message)
        recording.ended_by = "hangup"  # unless something else ends it first
        while True:
            event = await self.next_event(max(0.0, deadline - loop.time()))
            match event:
                case None:
                    recording.ended_by = "length" if recording.speech_heard else "no speech"
                    return
                case Audio():
                    recording.add(event.samples())
                    if recording.full:
                        recording.ended_by = "length"
                        return
                case SpeechStarted() if not recording.speech_heard:
                    recording.speech_heard = True
                    deadline = started + settings.max_message
                case SpeechEnded() if recording.speech_heard:  # not the menu's detector's
                    recording.ended_by = "silence"
                    return

    def keep(self, recording: Recording) -> bool:
        """Save the message if the caller spoke; whether it was saved."""
        log = self.call.log
        log.info("recorded %.1f s, ended by %s", recording.duration_s, recording.ended_by)
        if not recording.speech_heard:
            log.info("no speech in it: nothing to keep")
            return False
        try:
            path = save_message(recording, self.settings.voicemail_dir, self.call.start)
        except (OSError, RuntimeError) as error:  # soundfile's errors are RuntimeErrors
            log.error("could not save the message: %s", error)
            return False
        log.info("message saved: %s", path)
        return True

    async def end_call(self, prompt: str, reason: str) -> NoReturn:
        """Say ``prompt``, hang up, and wait for the stop (which raises CallOver)."""
        await self.play(prompt)
        await self.call.hangup(reason)
        while True:
            self.ignore_key(await self.next_event())

    # --- helpers -------------------------------------------------------------------------

    async def play(self, *prompts: str) -> str:
        """Queue the prompts; the name of the mark that comes back once they have played."""
        for name in prompts:
            samples, rate = prompt(name)
            await self.call.play(samples, sample_rate=rate)
        return await self.mark(prompts[-1])

    async def mark(self, label: str) -> str:
        name = f"{label}-{next(self._marks)}"
        await self.call.mark(name)
        return name

    async def until_mark(self, name: str) -> None:
        """Wait until mark ``name`` comes back; what the caller sends meanwhile is dropped."""
        while not (isinstance(event := await self.next_event(), Mark) and event.name == name):
            self.ignore_key(event)

    async def next_event(self, timeout: float | None = None) -> Event | None:
        """The call's next event (None after ``timeout`` s); CallOver at the stream's stop."""
        event = await self.call.next_event(timeout)
        if isinstance(event, Stop):
            raise CallOver(event.reason)
        if isinstance(event, Error):
            self.call.log.warning("voxgate reports %s: %s", event.code, event.message)
        return event

    def ignore_key(self, event: Event | None) -> None:
        if isinstance(event, Dtmf):
            self.call.log.info("ignoring key %s: the caller cannot choose now", event.digit)
