"""The relay bot: each call talks to a speech-to-speech model API of the OpenAI Realtime kind.

It serves voxgate on one side and, per call, opens a WebSocket to the model's API on the
other (``wss://api.openai.com/v1/realtime?model=...``, ``Authorization: Bearer <key>``),
relaying audio both ways: the caller's audio to ``input_audio_buffer.append``, the model's
``response.audio.delta`` to the caller. The model's server-side voice detection decides when
the caller has finished a turn; when the caller talks over the model, the relay clears the
queued audio at once, cancels the response and truncates the model's memory of what it said
to what was heard. Transcripts of both sides go to voxgate; a key pressed reaches the model
as a line of text ("The caller pressed 5"). The call's ``system_prompt`` becomes the model's
instructions and its ``opening_text`` is said first.

Try it against OpenAI with one command (then point voxgate's ``bot.url`` at it)::

    OPENAI_API_KEY=sk-... voxgate bot relay --port 9000

Options (each also an environment variable ``RELAY_BOT_<OPTION>``, e.g. ``RELAY_BOT_VOICE``):
``--url``, the API's WebSocket URL, model included; ``--api-key``, else ``$OPENAI_API_KEY``
(never logged, nor shown by ``--help``; a call without a key is logged and hung up);
``--voice``; ``--instructions`` for calls without a ``system_prompt``; ``--audio``: ``auto``
(G.711 straight through when the call is ``pcmu``/``pcma`` at 8 kHz, else 24 kHz ``pcm16``
converted here), ``pcm16``, ``g711_ulaw`` or ``g711_alaw``. By default the relay speaks the
GA interface (``session.type: realtime``, audio settings under ``session.audio``; OpenAI closed the
beta one in 2026), ``--beta-header`` sends ``OpenAI-Beta: realtime=v1`` and the beta
interface's flat session fields, for services that still speak it. Server events of both
interfaces are understood either way.

How it works: :mod:`voxgate.bots.relay.realtime` translates between the call's events and the
API's JSON events without I/O (its docstring has the wire format and the barge-in estimate);
:mod:`voxgate.bots.relay.relay` runs the sockets.
"""

from __future__ import annotations

import argparse
from typing import Final

from voxgate.bots.relay.realtime import AUDIO_CHOICES
from voxgate.bots.relay.relay import relay_call
from voxgate.bots.sdk import Call

DEFAULT_URL: Final = "wss://api.openai.com/v1/realtime?model=gpt-realtime"
DEFAULT_VOICE: Final = "alloy"
DEFAULT_INSTRUCTIONS: Final = (
    "You are a friendly voice assistant answering a phone call. "
    "Keep your answers short and speak naturally."
)
DEFAULT_BETA_HEADER: Final = False


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The relay's options (``call.options.url``, ``.api_key``, ``.voice``...)."""
    parser.add_argument("--url", default=DEFAULT_URL, help="the API's URL, model included")
    parser.add_argument(
        "--api-key",
        help="the API key, sent as Authorization: Bearer; when not given, $OPENAI_API_KEY "
        "(read for each call; the key is never logged)",
    )
    parser.add_argument("--voice", default=DEFAULT_VOICE, help="the model's voice")
    parser.add_argument(
        "--instructions",
        default=DEFAULT_INSTRUCTIONS,
        help="the model's instructions when the call brings no system_prompt",
    )
    parser.add_argument(
        "--audio",
        choices=AUDIO_CHOICES,
        default="auto",
        help="the audio format spoken with the API; auto: G.711 when the call is, else pcm16",
    )
    parser.add_argument(
        "--beta-header",
        action=argparse.BooleanOptionalAction,
        default=DEFAULT_BETA_HEADER,
        help="send OpenAI-Beta: realtime=v1 and speak the beta interface (else the GA one)",
    )


async def handle(call: Call) -> None:
    """Relay one call to the model's API until either side ends it."""
    await relay_call(call)


__all__ = ["add_arguments", "handle"]
