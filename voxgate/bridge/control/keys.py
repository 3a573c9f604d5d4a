"""API keys: ``vg_live_...`` and ``vg_test_...``, kept only as a SHA-256 hash.

A key is 32 random bytes (URL-safe base64) behind its mode's prefix. The secret has enough
entropy that a plain SHA-256 is a safe way to store it (no password stretching needed: it
cannot be guessed from a dictionary); the store looks keys up by that hash.
"""

from __future__ import annotations

import hashlib
import secrets
import time
from typing import Final

from voxgate.bridge.store.records import ApiKey, KeyMode

PREFIXES: Final[dict[KeyMode, str]] = {"live": "vg_live_", "test": "vg_test_"}
SHOWN: Final = 12  # characters of a key kept for listings (its prefix and a few more)


def hash_secret(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def new_key(mode: KeyMode, now: float | None = None) -> tuple[str, ApiKey]:
    """A new key: the secret (shown once) and the record to store."""
    secret = PREFIXES[mode] + secrets.token_urlsafe(32)
    record = ApiKey(
        id=f"key_{secrets.token_hex(8)}",
        mode=mode,
        prefix=secret[:SHOWN],
        secret_hash=hash_secret(secret),
        created_at=time.time() if now is None else now,
    )
    return secret, record


def mode_of(secret: str) -> KeyMode | None:
    """The mode a presented secret claims (None: not a voxgate key at all)."""
    for mode, prefix in PREFIXES.items():
        if secret.startswith(prefix) and len(secret) > len(prefix):
            return mode
    return None
