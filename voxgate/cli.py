"""The ``voxgate`` command line.

- ``voxgate serve``: the bridge, on the configuration's address (127.0.0.1:8080
  by default), with the built-in echo bot as the default bot.
- ``voxgate bot echo``: the sample echo bot as its own WebSocket server
  (ws://127.0.0.1:9000/ by default), for pointing ``wss_url`` at.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import sys
from collections.abc import Coroutine, Sequence
from typing import Any

from voxgate import __version__
from voxgate.bots.echo import run_echo
from voxgate.bridge.aio.server import serve
from voxgate.config import load_config
from voxgate.errors import ConfigError
from voxgate.obs import setup_logging

DESCRIPTION = (
    "voxgate bridges telephone calls (SIP/RTP, Twilio and Telnyx media streams) "
    "to AI voice bots over WebSocket."
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="voxgate", description=DESCRIPTION)
    parser.add_argument("--version", action="version", version=f"voxgate {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")

    serve = commands.add_parser("serve", help="run the bridge")
    serve.add_argument("--config", help="TOML configuration file (also VOXGATE_CONFIG)")
    serve.add_argument("--host", help="listen address (overrides server.host)")
    serve.add_argument("--port", type=int, help="listen port (overrides server.port)")

    bot = commands.add_parser("bot", help="run a sample bot")
    bots = bot.add_subparsers(dest="bot", metavar="BOT", required=True)
    echo = bots.add_parser("echo", help="echo the caller's audio back (voxgate.v1)")
    echo.add_argument("--host", default="127.0.0.1")
    echo.add_argument("--port", type=int, default=9000)
    echo.add_argument("--binary", action="store_true", help="prefer binary audio frames")
    echo.add_argument("--transfer-target", default="+15550100000")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command == "serve":
        return _serve(args)
    if args.command == "bot":
        return _echo(args)
    parser.print_help()
    return 0


def _serve(args: argparse.Namespace) -> int:
    env = dict(os.environ)
    if args.host:
        env["VOXGATE_HOST"] = args.host
    if args.port is not None:
        env["VOXGATE_PORT"] = str(args.port)
    try:
        config = load_config(args.config, env)
        config.check_listen_safe()
    except ConfigError as error:
        print(f"voxgate: {error}", file=sys.stderr)
        return 2
    setup_logging(config.log.level, config.log.format)
    with contextlib.suppress(KeyboardInterrupt):
        serve(config)
    return 0


def _echo(args: argparse.Namespace) -> int:
    setup_logging("info", "text")
    coroutine = run_echo(
        args.host, args.port, binary=args.binary, transfer_target=args.transfer_target
    )
    with contextlib.suppress(KeyboardInterrupt):
        run_fast(coroutine)
    return 0


def run_fast(coroutine: Coroutine[Any, Any, None]) -> None:
    """``asyncio.run`` on uvloop where it is installed (Linux), else the default loop."""
    try:
        import uvloop  # noqa: PLC0415  (optional: not on every platform)
    except ImportError:
        asyncio.run(coroutine)
    else:
        uvloop.run(coroutine)
