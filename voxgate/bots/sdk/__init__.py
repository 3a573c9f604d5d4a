"""The voxgate bot SDK: write a ``voxgate.v1`` bot server in a few lines.

A bot is an async function that serves one call::

    from voxgate.bots.sdk import Call, Dtmf, Audio

    async def handle(call: Call) -> None:
        await call.play("hello.wav", mark="hello")
        async for event in call:
            if isinstance(event, Audio):
                await call.send_audio(event.data)      # echo
            elif isinstance(event, Dtmf) and event.digit == "#":
                await call.hangup()

Run it with ``voxgate bot path/to/mybot.py`` (the module's ``handle`` is the entry point),
or from Python with :func:`run_bot`. Events: :class:`Start` (``call.start``),
:class:`Audio`, :class:`Dtmf`, :class:`Hold`, :class:`Mark`, :class:`Stop`, :class:`Error`
and, with :meth:`Call.detect_speech`, :class:`SpeechStarted` / :class:`SpeechEnded`.
Actions: :meth:`Call.send_audio`, :meth:`Call.play`, :meth:`Call.mark`, :meth:`Call.clear`,
:meth:`Call.send_dtmf`, :meth:`Call.transfer`, :meth:`Call.hangup`, :meth:`Call.transcript`.
"""

from voxgate.bots.sdk.audio import as_int16, load_audio, save_wav, to_format, tone
from voxgate.bots.sdk.call import Call, CallEndedError
from voxgate.bots.sdk.events import (
    Audio,
    Carrier,
    Dtmf,
    Error,
    Event,
    Hold,
    Mark,
    SpeechEnded,
    SpeechStarted,
    Start,
    Stop,
)
from voxgate.bots.sdk.server import BotServer, Handler, run_bot, serve_bot
from voxgate.bots.sdk.vad import VoiceActivity

__all__ = [
    "Audio",
    "BotServer",
    "Call",
    "CallEndedError",
    "Carrier",
    "Dtmf",
    "Error",
    "Event",
    "Handler",
    "Hold",
    "Mark",
    "SpeechEnded",
    "SpeechStarted",
    "Start",
    "Stop",
    "VoiceActivity",
    "as_int16",
    "load_audio",
    "run_bot",
    "save_wav",
    "serve_bot",
    "to_format",
    "tone",
]
