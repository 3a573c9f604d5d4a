"""The bot side of voxgate: the voxgate.v1 protocol and the registry of bot dialects.

docs/PROTOCOL.md is the contract; ``schema.json`` here is its JSON Schema
(:func:`load_schema`); :class:`V1Dialect` translates it to and from
:mod:`voxgate.bridge.events`; :func:`make_bot_dialect` picks the dialect a call's bot speaks.
"""

from voxgate.bridge.botlink.dialects import (
    BOT_DIALECT_ALIASES,
    BOT_DIALECTS,
    canonical_bot_dialect,
    make_bot_dialect,
)
from voxgate.bridge.botlink.v1 import (
    CLOSE_GOING_AWAY,
    CLOSE_INTERNAL_ERROR,
    CLOSE_MESSAGE_TOO_BIG,
    CLOSE_NORMAL,
    CLOSE_POLICY_VIOLATION,
    CLOSE_UNSUPPORTED_DATA,
    DOWNSTREAM_TYPES,
    ERROR_CODES,
    PROTOCOL,
    SUBPROTOCOL_BINARY,
    SUBPROTOCOL_JSON,
    SUBPROTOCOLS,
    UPSTREAM_TYPES,
    Transport,
    V1Dialect,
    load_schema,
    transport_for,
)

__all__ = [
    "BOT_DIALECTS",
    "BOT_DIALECT_ALIASES",
    "CLOSE_GOING_AWAY",
    "CLOSE_INTERNAL_ERROR",
    "CLOSE_MESSAGE_TOO_BIG",
    "CLOSE_NORMAL",
    "CLOSE_POLICY_VIOLATION",
    "CLOSE_UNSUPPORTED_DATA",
    "DOWNSTREAM_TYPES",
    "ERROR_CODES",
    "PROTOCOL",
    "SUBPROTOCOLS",
    "SUBPROTOCOL_BINARY",
    "SUBPROTOCOL_JSON",
    "UPSTREAM_TYPES",
    "Transport",
    "V1Dialect",
    "canonical_bot_dialect",
    "load_schema",
    "make_bot_dialect",
    "transport_for",
]
