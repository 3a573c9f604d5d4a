"""The echo bot: a complete voxgate.v1 bot in one file, to read and to copy.

voxgate connects to a bot the way a carrier connects to voxgate: voxgate is
the WebSocket *client* and the bot is the *server*. This file is such a
server. It uses only the standard library and ``websockets`` (it does not
import voxgate), so you can copy it and replace the echo with your own logic.

Protocol flow (one WebSocket connection = one call; JSON text frames with a
``"type"`` key)::

    voxgate (client)                                    bot (this server)
    ---- upgrade, Sec-WebSocket-Protocol: voxgate.v1[.binary] ---->
    <--- 101, the subprotocol the bot chose ------------------------
    start {call_id, stream_id, media_format, audio_transport}  ->
    media {seq, timestamp_ms, audio: base64}                   ->  (every 20 ms)
                          <-  response.audio.delta {audio: base64}
                          <-  mark {name}
    mark {name}   (the audio sent before that mark has played) ->
    dtmf {digit}                                               ->
                          <-  response.audio.clear   (barge-in: drop queued audio)
                          <-  session.transfer {target} | session.hangup {reason}
                          <-  dtmf.send {digits} | transcript {role, text, final}
    error {code, message}  (voxgate did not accept something)  ->
    stop {reason}                                              ->
                          <-  close 1000

Audio transport: with subprotocol ``voxgate.v1`` audio travels as base64 in
JSON (``media.audio`` one way, ``response.audio.delta.audio`` the other).
With ``voxgate.v1.binary`` audio travels as binary WebSocket frames of raw
bytes both ways and the other messages stay JSON. The bot chooses among the
subprotocols voxgate offers; this one prefers JSON unless ``binary=True``.

What this bot does:

- echoes every caller audio chunk straight back (same bytes, same transport);
- after every 50 echoed chunks (one second of 20 ms audio) places a mark
  ``echo-<n>`` and logs when voxgate reports it played;
- on DTMF ``#`` hangs up, on ``0`` transfers the call, on ``*`` clears the
  audio queued for the caller (a barge-in demonstration);
- on ``stop`` closes the socket normally (code 1000);
- logs and ignores anything it does not understand (bad JSON, unknown types).

Run it: ``python -m voxgate.bots.echo --port 9000`` (or ``voxgate bot echo``;
``--help`` lists the options, each also an ``ECHO_BOT_*`` environment variable)
and point voxgate's ``bot.url`` at ``ws://127.0.0.1:9000``.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import binascii
import contextlib
import json
import logging
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.exceptions import ConnectionClosed
from websockets.typing import Subprotocol

LOG = logging.getLogger("voxgate.bots.echo")

JSON_PROTOCOL = Subprotocol("voxgate.v1")
BINARY_PROTOCOL = Subprotocol("voxgate.v1.binary")
DEFAULT_TRANSFER_TARGET = "+15550100000"
CHUNKS_PER_MARK = 50  # 50 chunks of 20 ms = 1 second of audio


class EchoCall:
    """The state of one call: who it is, how many chunks were echoed, what to send."""

    def __init__(self, connection: ServerConnection, transfer_target: str) -> None:
        self.connection = connection
        self.transfer_target = transfer_target
        self.call_id = "-"  # known once "start" arrives
        self.echoed_chunks = 0
        self.stopped = False

    def log(self, level: int, message: str, *args: object) -> None:
        """Log one line about this call, with its call_id in the text and in ``extra``."""
        LOG.log(level, "call %s: " + message, self.call_id, *args, extra={"call_id": self.call_id})

    async def send_json(self, message: dict[str, Any]) -> None:
        await self.connection.send(json.dumps(message))

    # --- what arrives from voxgate --------------------------------------------------

    async def on_message(self, message: str | bytes) -> None:
        """Handle one WebSocket message: raw audio (binary) or a JSON event (text)."""
        if isinstance(message, bytes):
            await self.echo(message, as_binary=True)
            return
        try:
            event = json.loads(message)
        except json.JSONDecodeError as error:
            self.log(logging.WARNING, "ignoring a message that is not JSON (%s)", error)
            return
        if not isinstance(event, dict) or not isinstance(event.get("type"), str):
            self.log(logging.WARNING, "ignoring a JSON message without a string 'type'")
            return
        await self.on_event(event)

    async def on_event(self, event: dict[str, Any]) -> None:
        kind = event["type"]
        if kind == "start":
            self.on_start(event)
        elif kind == "media":
            await self.on_media(event)
        elif kind == "dtmf":
            await self.on_dtmf(str(event.get("digit", "")))
        elif kind == "mark":
            self.log(logging.INFO, "mark %s played", event.get("name"))
        elif kind == "stop":
            self.log(logging.INFO, "stream stopped (%s)", event.get("reason"))
            self.stopped = True
        elif kind == "error":
            self.log(
                logging.WARNING, "voxgate reports %s: %s", event.get("code"), event.get("message")
            )
        else:
            self.log(logging.INFO, "ignoring unknown message type %r", kind)

    def on_start(self, event: dict[str, Any]) -> None:
        self.call_id = str(event.get("call_id", "-"))
        self.log(
            logging.INFO,
            "started: stream %s, format %s, transport %s, subprotocol %s",
            event.get("stream_id"),
            event.get("media_format"),
            event.get("audio_transport"),
            self.connection.subprotocol,
        )

    async def on_media(self, event: dict[str, Any]) -> None:
        audio = event.get("audio")
        if not isinstance(audio, str):
            self.log(logging.WARNING, "media %s has no 'audio' string", event.get("seq"))
            return
        try:
            chunk = base64.b64decode(audio, validate=True)
        except binascii.Error:
            self.log(logging.WARNING, "media %s: 'audio' is not valid base64", event.get("seq"))
            return
        await self.echo(chunk, as_binary=False)

    async def on_dtmf(self, digit: str) -> None:
        self.log(logging.INFO, "caller pressed %r", digit)
        if digit == "#":
            await self.send_json({"type": "session.hangup", "reason": "caller pressed #"})
        elif digit == "0":
            self.log(logging.INFO, "transferring to %s", self.transfer_target)
            await self.send_json({"type": "session.transfer", "target": self.transfer_target})
        elif digit == "*":
            await self.send_json({"type": "response.audio.clear"})

    # --- what goes back to voxgate --------------------------------------------------

    async def echo(self, chunk: bytes, *, as_binary: bool) -> None:
        """Send ``chunk`` back the way it came, and a mark after every second of audio."""
        if as_binary:
            await self.connection.send(chunk)
        else:
            audio = base64.b64encode(chunk).decode("ascii")
            await self.send_json({"type": "response.audio.delta", "audio": audio})
        self.echoed_chunks += 1
        if self.echoed_chunks % CHUNKS_PER_MARK == 0:
            name = f"echo-{self.echoed_chunks // CHUNKS_PER_MARK}"
            await self.send_json({"type": "mark", "name": name})


async def handle(
    connection: ServerConnection, *, transfer_target: str = DEFAULT_TRANSFER_TARGET
) -> None:
    """Serve one call on ``connection`` until voxgate stops the stream or goes away."""
    call = EchoCall(connection, transfer_target)
    call.log(logging.INFO, "connected from %s", connection.remote_address)
    try:
        async for message in connection:
            await call.on_message(message)
            if call.stopped:
                await connection.close(1000, "stream stopped")
                break
    except ConnectionClosed as closed:
        call.log(logging.INFO, "connection lost (%s)", closed)
        return
    call.log(logging.INFO, "disconnected after %d echoed chunks", call.echoed_chunks)


SubprotocolSelector = Callable[[ServerConnection, Sequence[Subprotocol]], Subprotocol | None]


def choose_subprotocol(*, binary: bool) -> SubprotocolSelector:
    """A ``select_subprotocol`` callback preferring binary or JSON audio."""
    preferred = (BINARY_PROTOCOL, JSON_PROTOCOL) if binary else (JSON_PROTOCOL, BINARY_PROTOCOL)

    def select(connection: ServerConnection, offered: Sequence[Subprotocol]) -> Subprotocol | None:
        for subprotocol in preferred:
            if subprotocol in offered:
                return subprotocol
        return None  # nothing offered that we know: plain JSON without a subprotocol

    return select


async def serve_echo(
    host: str = "127.0.0.1",
    port: int = 9000,
    *,
    binary: bool = False,
    transfer_target: str = DEFAULT_TRANSFER_TARGET,
) -> Server:
    """Start the echo bot on ``host:port`` (0 = any free port); the caller closes it."""

    async def handler(connection: ServerConnection) -> None:
        await handle(connection, transfer_target=transfer_target)

    server = await serve(
        handler,
        host,
        port,
        subprotocols=[JSON_PROTOCOL, BINARY_PROTOCOL],
        select_subprotocol=choose_subprotocol(binary=binary),
    )
    LOG.info("echo bot listening on %s (binary=%s)", _addresses(server), binary)
    return server


async def run_echo(
    host: str = "127.0.0.1",
    port: int = 9000,
    *,
    binary: bool = False,
    transfer_target: str = DEFAULT_TRANSFER_TARGET,
) -> None:
    """Serve the echo bot until cancelled."""
    server = await serve_echo(host, port, binary=binary, transfer_target=transfer_target)
    await server.serve_forever()  # cancelling this closes the server


def _addresses(server: Server) -> str:
    return ", ".join(str(sock.getsockname()[:2]) for sock in server.sockets)


# --- the command line: every option also an environment variable ----------------------


@dataclass(frozen=True)
class EchoOptions:
    """How to run the echo bot; the defaults are those of ``voxgate bot echo``."""

    host: str = "127.0.0.1"
    port: int = 9000
    binary: bool = False
    transfer_target: str = DEFAULT_TRANSFER_TARGET


def _text(text: str) -> str:
    if not text.strip():
        raise ValueError("must not be empty")
    return text.strip()


def _port(text: str) -> int:
    try:
        port = int(text.strip())
    except ValueError:
        port = -1
    if not 0 <= port <= 65535:
        raise ValueError(f"must be a port number from 0 to 65535, got {text!r}")
    return port


_BOOLEANS = {"1": True, "true": True, "yes": True, "0": False, "false": False, "no": False}


def _boolean(text: str) -> bool:
    try:
        return _BOOLEANS[text.strip().lower()]
    except KeyError:
        raise ValueError(f"must be true/false/1/0/yes/no, got {text!r}") from None


# option: (environment variable, parser of its text, help)
OPTIONS: dict[str, tuple[str, Callable[[str], Any], str]] = {
    "host": ("ECHO_BOT_HOST", _text, "address to listen on"),
    "port": ("ECHO_BOT_PORT", _port, "port to listen on, 0 for any free port"),
    "binary": ("ECHO_BOT_BINARY", _boolean, "prefer binary audio frames (voxgate.v1.binary)"),
    "transfer_target": (
        "ECHO_BOT_TRANSFER_TARGET",
        _text,
        "where the call is transferred when the caller presses 0",
    ),
}


def _for_argparse(parse: Callable[[str], Any]) -> Callable[[str], Any]:
    def convert(text: str) -> Any:
        try:
            return parse(text)
        except ValueError as error:
            raise argparse.ArgumentTypeError(str(error)) from None

    return convert


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the echo bot's options to ``parser``; read them back with :func:`options_from`."""
    defaults = EchoOptions()
    for name, (variable, parse, description) in OPTIONS.items():
        flag = "--" + name.replace("_", "-")
        default = getattr(defaults, name)
        shown = ("yes" if default else "no") if isinstance(default, bool) else default
        text = f"{description} (env: {variable}; default: {shown})"
        if isinstance(default, bool):
            parser.add_argument(flag, action=argparse.BooleanOptionalAction, help=text)
        else:
            parser.add_argument(flag, type=_for_argparse(parse), help=text)


def options_from(args: argparse.Namespace, env: Mapping[str, str]) -> EchoOptions:
    """The options: the command line's, else the environment's, else the defaults.

    A bad environment value raises ``ValueError`` naming the variable.
    """
    chosen: dict[str, Any] = {}
    for name, (variable, parse, _) in OPTIONS.items():
        value = getattr(args, name, None)
        if value is None and variable in env:
            try:
                value = parse(env[variable])
            except ValueError as error:
                raise ValueError(f"{variable}: {error}") from None
        if value is not None:
            chosen[name] = value
    return EchoOptions(**chosen)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="voxgate.v1 echo bot")
    add_arguments(parser)
    args = parser.parse_args(argv)
    try:
        options = options_from(args, os.environ)
    except ValueError as error:
        parser.error(str(error))  # exits with status 2
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    coroutine = run_echo(
        options.host,
        options.port,
        binary=options.binary,
        transfer_target=options.transfer_target,
    )
    try:
        with contextlib.suppress(KeyboardInterrupt):  # Ctrl-C stops the bot quietly
            asyncio.run(coroutine)
    except OSError as error:  # the port is taken, the host is not an address of this machine
        parser.exit(1, f"cannot listen on {options.host}:{options.port}: {error}\n")


if __name__ == "__main__":
    main()
