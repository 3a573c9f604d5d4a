"""The ``voxgate`` command line.

- ``voxgate serve``: the bridge, on the configuration's address (127.0.0.1:8080
  by default), with the built-in echo bot as the default bot.
- ``voxgate bot NAME|PATH``: a sample bot (echo, receptionist, relay) or your own bot
  module as its own WebSocket server (ws://127.0.0.1:9000/ by default), for pointing
  ``wss_url`` at.
- ``voxgate loadtest TARGET``: many concurrent calls into a node, measured (latency
  through the bot, loss, jitter, DTMF, the node's CPU), with a JSON result and an HTML
  report.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import json
import os
import signal
import sys
from collections.abc import Coroutine, Sequence
from typing import Any

from voxgate import __version__
from voxgate.bots.sdk import runner as bot_runner
from voxgate.bots.sdk.server import run_bot
from voxgate.bridge.aio.app import Bridge
from voxgate.bridge.aio.server import serve
from voxgate.bridge.control.keys import new_key
from voxgate.bridge.store import open_store
from voxgate.config import load_config
from voxgate.errors import ConfigError
from voxgate.loadtest import command as loadtest_command
from voxgate.obs import setup_logging

DESCRIPTION = (
    "voxgate bridges telephone calls, from a SIP trunk or PBX or streamed by a carrier "
    "over WebSocket, to AI voice bots over WebSocket."
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="voxgate", description=DESCRIPTION)
    parser.add_argument("--version", action="version", version=f"voxgate {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")

    serve = commands.add_parser(
        "serve",
        help="run the bridge",
        description=(
            "Run the bridge. Settings come from the TOML file, VOXGATE_* environment "
            "variables and these options, each overriding the one before (docs/CONFIG.md)."
        ),
    )
    serve.add_argument("--config", help="TOML configuration file (env: VOXGATE_CONFIG)")
    serve.add_argument("--host", help="address to listen on, server.host (env: VOXGATE_HOST)")
    serve.add_argument(
        "--port", type=int, help="port to listen on, server.port (env: VOXGATE_PORT)"
    )
    serve.add_argument(
        "--workers",
        type=int,
        help=(
            "worker processes sharing the port (default: one per core, one on a loopback "
            "address), server.workers (env: VOXGATE_WORKERS)"
        ),
    )

    dial = commands.add_parser(
        "dial",
        help="place an outbound SIP call through the trunk and bridge it to a bot",
        description=(
            "Call TARGET (a phone number or a sip: URI) through sip.trunk (with "
            "sip.trunk_username/sip.trunk_password for its digest challenges) and bridge the "
            "answered call to the bot, like an inbound call (direction: outbound). Prints the "
            "result as JSON when the call is over; exit status 0 when it was answered."
        ),
    )
    dial.add_argument("target", help="the number or SIP URI to call")
    dial.add_argument("--bot", help="the bot's ws:// or wss:// URL (default: the target's route)")
    dial.add_argument("--config", help="TOML configuration file (env: VOXGATE_CONFIG)")
    dial.add_argument(
        "--ring-timeout", type=float, default=30.0, help="seconds to ring before giving up"
    )
    dial.add_argument(
        "--sip-port", type=int, default=0, help="local SIP port (default: any free port)"
    )
    keys = commands.add_parser(
        "keys",
        help="create, list and revoke REST API keys",
        description=(
            "API keys for the REST control plane, kept (hashed) in the store named by "
            "store.url (env: VOXGATE_STORE_URL)."
        ),
    )
    keys.add_argument("--config", help="TOML configuration file (env: VOXGATE_CONFIG)")
    key_commands = keys.add_subparsers(dest="keys", metavar="ACTION", required=True)
    create = key_commands.add_parser(
        "create", help="make a key and print it (shown this once: only its hash is kept)"
    )
    create.add_argument(
        "--test",
        action="store_true",
        help="a test key (vg_test_...): its calls go to the simulated callee, never a trunk",
    )
    key_commands.add_parser("list", help="list keys (ids, modes, first characters)")
    revoke = key_commands.add_parser("revoke", help="revoke a key by its id")
    revoke.add_argument("key_id", help="the key's id (key_...)")
    bot = commands.add_parser(
        "bot",
        help="run a sample bot, or your own bot module",
        description=(
            "Run a bot as its own WebSocket server for voxgate to call: one of the sample "
            "bots by name, or your own module by path (it defines async handle(call)). "
            "'voxgate bot NAME --help' lists a bot's options."
        ),
        epilog=_bundled_bots_text(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    bot.add_argument("bot", metavar="NAME|PATH", help="a sample bot's name, or a .py file")
    bot.add_argument("bot_args", nargs=argparse.REMAINDER, help=argparse.SUPPRESS)
    loadtest = commands.add_parser(
        "loadtest",
        help="load a node with concurrent calls and measure them",
        description=(
            "Place concurrent calls into a voxgate node (carrier streams or SIP), send marked "
            "audio through the node and its bot, and measure set-up, round-trip latency, "
            "loss, jitter, DTMF and the node's CPU; a JSON result and an HTML report."
        ),
    )
    loadtest_command.add_arguments(loadtest)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command == "serve":
        return _serve(args)
    if args.command == "bot":
        return _bot(args.bot, args.bot_args)
    if args.command == "dial":
        return _dial(args)
    if args.command == "keys":
        return _keys(args)
    if args.command == "loadtest":
        return _loadtest(args)
    parser.print_help()
    return 0


def _serve(args: argparse.Namespace) -> int:
    env = dict(os.environ)
    if args.host:
        env["VOXGATE_HOST"] = args.host
    if args.port is not None:
        env["VOXGATE_PORT"] = str(args.port)
    if args.workers is not None:
        env["VOXGATE_WORKERS"] = str(args.workers)
    try:
        config = load_config(args.config, env)
        config.check_listen_safe()
    except ConfigError as error:
        print(f"voxgate: {error}", file=sys.stderr)
        return 2
    setup_logging(config.log.level, config.log.format)
    try:
        with contextlib.suppress(KeyboardInterrupt):
            serve(config)
    except ConfigError as error:  # the port is taken, the address cannot be had
        print(f"voxgate: {error}", file=sys.stderr)
        return 2
    return 0


def _dial(args: argparse.Namespace) -> int:
    env = {**os.environ, "VOXGATE_SIP_PORT": str(args.sip_port), "VOXGATE_SIP_ENABLED": "true"}
    try:
        config = load_config(args.config, env)
        if not config.sip.trunk:
            raise ConfigError("sip.trunk: set the trunk to call through (VOXGATE_SIP_TRUNK)")
    except ConfigError as error:
        print(f"voxgate: {error}", file=sys.stderr)
        return 2
    setup_logging(config.log.level, config.log.format)
    outcome: dict[str, Any] = {}

    async def call() -> None:
        bridge = Bridge(config)
        await bridge.start()
        try:
            assert bridge.sip is not None
            result = await bridge.sip.dial(
                args.target, bot_url=args.bot, ring_timeout=args.ring_timeout
            )
            outcome.update(dataclasses.asdict(result))
            for _ in range(100):  # the bot's stop and close go out before the bridge stops
                if not bridge.sessions:
                    break
                await asyncio.sleep(0.05)
        finally:
            await bridge.stop()

    try:
        with contextlib.suppress(KeyboardInterrupt):
            run_fast(_until_stop_signal(call()))
    except ConfigError as error:
        print(f"voxgate: {error}", file=sys.stderr)
        return 2
    print(json.dumps(outcome or {"status": "failed", "reason": "interrupted"}))
    return 0 if outcome.get("answered") else 1


def _keys(args: argparse.Namespace) -> int:
    try:
        config = load_config(args.config)
    except ConfigError as error:
        print(f"voxgate: {error}", file=sys.stderr)
        return 2
    lines: list[str] = []

    async def act() -> int:
        store = open_store(config.store.url)
        await store.open()
        try:
            if args.keys == "create":
                secret, record = new_key("test" if args.test else "live")
                await store.add_key(record)
                lines.append(secret)
            elif args.keys == "list":
                lines.extend(
                    f"{k.id}\t{k.mode}\t{k.prefix}...\t{'revoked' if k.revoked else 'active'}"
                    for k in await store.list_keys()
                )
            elif not await store.revoke_key(args.key_id):
                print(f"voxgate keys: no key {args.key_id!r}", file=sys.stderr)
                return 1
            return 0
        finally:
            await store.close()

    try:
        status = asyncio.run(act())
    except (ConfigError, OSError) as error:
        print(f"voxgate keys: {error}", file=sys.stderr)
        return 2
    for line in lines:
        print(line)
    return status


def _loadtest(args: argparse.Namespace) -> int:
    setup_logging("info", "text")
    outcome: dict[str, Any] = {}

    async def load() -> None:
        outcome.update(await loadtest_command.run(args))

    try:
        with contextlib.suppress(KeyboardInterrupt):
            run_fast(_until_stop_signal(load()))
    except loadtest_command.UsageError as error:
        print(f"voxgate loadtest: error: {error}", file=sys.stderr)
        return 2
    if not outcome:
        print("voxgate loadtest: interrupted", file=sys.stderr)
        return 1
    try:
        loadtest_command.write_outputs(outcome, args.json, args.html)
    except OSError as error:
        print(f"voxgate loadtest: error: cannot write the result: {error}", file=sys.stderr)
        return 1
    print(loadtest_command.summary_text(outcome))
    if outcome["stopped_early"]:
        print(
            f"voxgate loadtest: stopped early ({outcome['stopped_early']}): "
            "the result holds what was measured until then",
            file=sys.stderr,
        )
        return 1
    return 0 if outcome["calls_answered"] else 1


def _bundled_bots_text() -> str:
    lines = ["sample bots:"]
    for name, summary in bot_runner.BUNDLED_SUMMARIES.items():
        lines.append(f"  {name:<14}{summary}")
    return "\n".join(lines)


def _bot(spec: str, argv: Sequence[str]) -> int:
    try:
        module = bot_runner.load_bot(spec)
    except bot_runner.BotLoadError as error:
        print(f"voxgate bot: error: {error}", file=sys.stderr)
        return 2
    try:
        options = bot_runner.parse_options(spec, module, argv, os.environ)  # exits 2 when bad
    except ValueError as error:  # a bad environment variable
        print(f"voxgate bot {spec}: error: {error}", file=sys.stderr)
        return 2
    setup_logging("info", "text")
    coroutine = run_bot(
        module.handle,
        options.host,
        options.port,
        binary=options.binary,
        token=options.token,
        options=options,
        logger=bot_runner.bot_logger(spec, module),
    )
    try:
        with contextlib.suppress(KeyboardInterrupt):
            run_fast(_until_stop_signal(coroutine))
    except OSError as error:  # the port is taken, the host is not an address of this machine
        print(
            f"voxgate bot {spec}: error: cannot listen on {options.host}:{options.port}: {error}",
            file=sys.stderr,
        )
        return 1
    return 0


async def _until_stop_signal(coroutine: Coroutine[Any, Any, None]) -> None:
    """Run ``coroutine`` until SIGINT or SIGTERM cancels it.

    The event loop's own signal handling, not the default SIGINT handler that raises
    KeyboardInterrupt between two bytecodes: under uvloop that one may not wake an idle
    loop, and a bot asked to stop kept running.
    """
    task = asyncio.ensure_future(coroutine)
    loop = asyncio.get_running_loop()
    for stop in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(stop, task.cancel)
    try:
        with contextlib.suppress(asyncio.CancelledError):
            await task
    finally:
        for stop in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(stop)


def run_fast(coroutine: Coroutine[Any, Any, None]) -> None:
    """``asyncio.run`` on uvloop where it is installed (Linux), else the default loop."""
    try:
        import uvloop  # noqa: PLC0415  (optional: not on every platform)
    except ImportError:
        asyncio.run(coroutine)
    else:
        uvloop.run(coroutine)
