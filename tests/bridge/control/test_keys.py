"""API keys: their shape, their hash, telling their mode."""

from __future__ import annotations

import hashlib

from voxgate.bridge.control.keys import hash_secret, mode_of, new_key


def test_new_keys_have_their_modes_prefix_and_only_a_hash_is_kept() -> None:
    for mode, prefix in (("test", "vg_test_"), ("live", "vg_live_")):
        secret, record = new_key(mode, now=5.0)  # type: ignore[arg-type]
        assert secret.startswith(prefix) and len(secret) > 40
        assert record.mode == mode and record.created_at == 5.0
        assert record.secret_hash == hashlib.sha256(secret.encode()).hexdigest()
        assert secret not in repr(record).replace(record.prefix, "")
        assert mode_of(secret) == mode
    assert new_key("test")[0] != new_key("test")[0]


def test_what_is_not_a_voxgate_key() -> None:
    for text in ("", "vg_test_", "sk_live_abc", "Bearer vg_live_x", "vg_prod_abc"):
        assert mode_of(text) is None
    assert hash_secret("a") != hash_secret("b")
