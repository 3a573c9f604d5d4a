"""``voxgate bot NAME|PATH``: load a bot module and serve it.

A bot is a Python module with one entry point, ``async def handle(call)``. It may also
define ``add_arguments(parser)`` to take options of its own; their values reach every call
as ``call.options``. Every option, the common ones included, can also come from an
environment variable ``<BOT>_BOT_<OPTION>`` (``ECHO_BOT_PORT``, ``RECEPTIONIST_BOT_CONFIG``):
the command line wins, then the environment, then the default.

``NAME`` is one of the bundled bots (:data:`BUNDLED`); anything ending in ``.py`` or holding a
``/`` is a file, loaded as a module of its own (``voxgate bot ./mybot.py``).
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import logging
import re
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import ModuleType
from typing import Any, Final

from voxgate.bridge.botlink.v1 import TRANSFER_TARGET

BUNDLED: Final = {
    "echo": "voxgate.bots.echo",
    "receptionist": "voxgate.bots.receptionist",
    "relay": "voxgate.bots.relay",
}
"""The bots ``voxgate bot NAME`` runs, by name."""

BUNDLED_SUMMARIES: Final = {
    "echo": "repeats what the caller says (delay, DTMF tones); the first bot to read",
    "receptionist": "a small IVR: menu by keys or barge-in, transfers, voicemail, hours",
    "relay": "bridges the call to a speech-to-speech model API (OpenAI Realtime kind)",
}
"""What ``voxgate bot --help`` says of each, without importing them all."""

SECRET_OPTION: Final = re.compile(r"key|token|secret|password", re.IGNORECASE)
"""Options whose default ``--help`` must not print."""

DEFAULT_HOST: Final = "127.0.0.1"
DEFAULT_PORT: Final = 9000


class BotLoadError(Exception):
    """The bot named on the command line could not be loaded."""


def is_path(spec: str) -> bool:
    return spec.endswith(".py") or "/" in spec


def load_bot(spec: str) -> ModuleType:
    """The module of a bundled bot's name or of a ``.py`` file; it must define ``handle``."""
    if is_path(spec):
        path = Path(spec)
        if not path.is_file():
            raise BotLoadError(f"no such file: {spec}")
        name = "voxgate_user_bot_" + re.sub(r"\W", "_", path.stem)
        module_spec = importlib.util.spec_from_file_location(name, path)
        if module_spec is None or module_spec.loader is None:
            raise BotLoadError(f"cannot load {spec} as a Python module")
        module = importlib.util.module_from_spec(module_spec)
        sys.modules[name] = module
        try:
            module_spec.loader.exec_module(module)
        except Exception as error:
            del sys.modules[name]
            raise BotLoadError(f"{spec} failed to load: {type(error).__name__}: {error}") from error
    elif spec in BUNDLED:
        try:
            module = importlib.import_module(BUNDLED[spec])
        except ImportError as error:
            raise BotLoadError(f"the {spec} bot failed to load: {error}") from error
    else:
        known = ", ".join(BUNDLED)
        raise BotLoadError(f"unknown bot {spec!r} (bundled: {known}; or a path to a .py file)")
    if not callable(getattr(module, "handle", None)):
        raise BotLoadError(f"{spec} has no handle(call) function: a bot module needs one")
    return module


def bot_logger(spec: str, module: ModuleType) -> logging.Logger:
    """The logger of a bot's lines: its module's name (``voxgate.bots.echo``, ``bot.mybot``)."""
    return logging.getLogger(module.__name__ if spec in BUNDLED else f"bot.{bot_name(spec)}")


def bot_name(spec: str) -> str:
    """The name used in the environment variables' prefix: ``echo``, ``mybot``."""
    return Path(spec).stem if is_path(spec) else spec


def summary(module: ModuleType) -> str:
    """The first line of the module's docstring."""
    return (module.__doc__ or "").strip().splitlines()[0] if module.__doc__ else ""


def build_parser(
    spec: str, module: ModuleType, prog: str = "voxgate bot"
) -> argparse.ArgumentParser:
    """The command line of one bot: the common options and the bot's own, each option's help
    naming its environment variable and default."""
    parser = argparse.ArgumentParser(
        prog=f"{prog} {spec}",
        description=(module.__doc__ or "").strip().split("\n\n")[0],
        epilog=f"Each option can also be set by the environment variable "
        f"{env_prefix(spec)}<OPTION> (for example {env_prefix(spec)}PORT); the option wins.",
    )
    parser.add_argument("--host", type=nonempty, default=DEFAULT_HOST, help="address to listen on")
    parser.add_argument(
        "--port", type=port_number, default=DEFAULT_PORT, help="port to listen on, 0: any free"
    )
    parser.add_argument(
        "--binary",
        action=argparse.BooleanOptionalAction,
        default=False,
        help="prefer binary audio frames (voxgate.v1.binary) over base64 in JSON",
    )
    parser.add_argument(
        "--token",
        type=nonempty,
        help="require this bearer token from voxgate (a call's wss_header "
        "'Authorization: Bearer <token>')",
    )
    add_arguments = getattr(module, "add_arguments", None)
    if callable(add_arguments):
        add_arguments(parser)
    for action in _options(parser):
        default = action.default
        shown = ("yes" if default else "no") if isinstance(default, bool) else default
        if default is not None and SECRET_OPTION.search(action.dest):
            shown = "set" if default else default  # a secret (say, from the environment)
        variable = env_prefix(spec) + action.dest.upper()
        action.help = f"{action.help or ''} (env: {variable}; default: {shown})"
    return parser


def _options(parser: argparse.ArgumentParser) -> list[argparse.Action]:
    """The parser's options but --help (argparse has no public list of them)."""
    return [a for a in parser._actions if a.option_strings and a.dest != "help"]


def env_prefix(spec: str) -> str:
    return re.sub(r"\W", "_", bot_name(spec)).upper() + "_BOT_"


def apply_environment(parser: argparse.ArgumentParser, spec: str, env: Mapping[str, str]) -> None:
    """Take each option's default from ``<BOT>_BOT_<OPTION>`` when that variable is set.

    A bad value raises ``ValueError`` naming the variable."""
    prefix = env_prefix(spec)
    for action in _options(parser):
        variable = prefix + action.dest.upper()
        if variable not in env:
            continue
        try:
            action.default = _convert(action, env[variable])
        except (ValueError, argparse.ArgumentTypeError) as error:
            raise ValueError(f"{variable}: {error}") from None


_BOOLEANS: Final = {"1": True, "true": True, "yes": True, "0": False, "false": False, "no": False}


def _convert(action: argparse.Action, text: str) -> Any:
    if isinstance(action, argparse.BooleanOptionalAction):
        try:
            return _BOOLEANS[text.strip().lower()]
        except KeyError:
            raise ValueError(f"must be true/false/1/0/yes/no, got {text!r}") from None
    value: Any = action.type(text) if callable(action.type) else text
    if action.choices is not None and value not in action.choices:
        raise ValueError(f"must be one of {', '.join(map(str, action.choices))}, got {text!r}")
    return value


def transfer_target(text: str) -> str:
    """An option's transfer target, checked as voxgate checks ``session.transfer``."""
    if not TRANSFER_TARGET.fullmatch(text.strip()):
        expected = "a +E.164 number or a sip:/sips: URI"
        raise argparse.ArgumentTypeError(f"must be {expected}, got {text!r}")
    return text.strip()


def nonempty(text: str) -> str:
    if not text.strip():
        raise argparse.ArgumentTypeError("must not be empty")
    return text.strip()


def port_number(text: str) -> int:
    try:
        port = int(text.strip())
    except ValueError:
        port = -1
    if not 0 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"must be a port number from 0 to 65535, got {text!r}")
    return port


def parse_options(
    spec: str, module: ModuleType, argv: Sequence[str], env: Mapping[str, str]
) -> argparse.Namespace:
    """The bot's options from ``argv`` and ``env``: a bad option exits with status 2 (argparse),
    a bad variable raises ``ValueError`` naming it."""
    parser = build_parser(spec, module)
    apply_environment(parser, spec, env)
    return parser.parse_args(list(argv))


def default_options(module: ModuleType, **overrides: Any) -> argparse.Namespace:
    """A bot's options with their defaults (and ``overrides``): for tests and embedding."""
    options = build_parser("bot", module).parse_args([])
    for name, value in overrides.items():
        if not hasattr(options, name):
            raise AttributeError(f"the bot has no option {name!r}")
        setattr(options, name, value)
    return options
