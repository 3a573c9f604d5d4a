"""The registry of dialects a bot may speak, chosen per call by ``bot_dialect``.

``voxgate.v1`` is voxgate's own protocol (docs/PROTOCOL.md). ``twilio`` and ``telnyx`` make
voxgate play that carrier's part towards the bot, so bots written for Twilio Media Streams or
Telnyx Media Streaming work unchanged. Their modules are imported on first use only, so this
registry (and everything that imports it) loads without them.
"""

from __future__ import annotations

import importlib
from typing import Final

from voxgate.bridge.botlink.v1 import V1Dialect
from voxgate.bridge.dialect import Dialect
from voxgate.errors import ConfigError

BOT_DIALECTS: Final = ("voxgate.v1", "twilio", "telnyx")
"""The canonical names ``bot_dialect`` may take."""

BOT_DIALECT_ALIASES: Final = {"v1": "voxgate.v1", "voxgate": "voxgate.v1"}

_CARRIER_DIALECTS: Final = {
    "twilio": ("voxgate.bridge.carriers.twilio", "TwilioDialect"),
    "telnyx": ("voxgate.bridge.carriers.telnyx", "TelnyxDialect"),
}


def canonical_bot_dialect(name: str) -> str:
    """The canonical name of dialect ``name``: aliases resolved, case and spaces ignored."""
    if not isinstance(name, str):
        raise ConfigError(f"bot dialect must be a string, not {type(name).__name__}")
    key = name.strip().lower()
    key = BOT_DIALECT_ALIASES.get(key, key)
    if key not in BOT_DIALECTS:
        aliases = ", ".join(f"{alias} = {target}" for alias, target in BOT_DIALECT_ALIASES.items())
        raise ConfigError(
            f"unknown bot dialect {name!r}: valid ones are {', '.join(BOT_DIALECTS)} "
            f"(aliases: {aliases})"
        )
    return key


def make_bot_dialect(
    name: str, *, binary_audio: bool = False, carrier: str | None = None
) -> Dialect:
    """A new dialect object for one bot socket.

    ``binary_audio`` (from :func:`voxgate.bridge.botlink.v1.transport_for`) and ``carrier`` only
    mean something to voxgate.v1; the carrier dialects are JSON-only and name no carrier.
    """
    canonical = canonical_bot_dialect(name)
    if canonical == "voxgate.v1":
        return V1Dialect(binary_audio=binary_audio, carrier=carrier)
    if binary_audio:
        raise ConfigError(f"the {canonical} bot dialect has no binary audio transport")
    module_name, class_name = _CARRIER_DIALECTS[canonical]
    dialect: Dialect = getattr(importlib.import_module(module_name), class_name)()
    return dialect
