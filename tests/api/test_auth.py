"""API key format, digests and parsing."""

from __future__ import annotations

import re

from api.auth import digest_matches, generate_key, key_digest, parse_key_id


def test_generated_keys_have_the_documented_shape_and_are_unique() -> None:
    keys = [generate_key() for _ in range(50)]
    for new in keys:
        assert re.fullmatch(r"rk_[a-z0-9]{8}_[A-Za-z0-9_-]{43}", new.key)
        assert new.key.startswith(f"rk_{new.key_id}_")
        assert parse_key_id(new.key) == new.key_id
    assert len({k.key for k in keys}) == 50


def test_digest_depends_on_the_pepper_and_matches_only_the_same_key() -> None:
    key = generate_key().key
    digest = key_digest("pepper", key)
    assert digest != key_digest("other pepper", key)
    assert digest_matches("pepper", key, digest)
    assert not digest_matches("pepper", generate_key().key, digest)
    assert key not in digest


def test_malformed_keys_have_no_id() -> None:
    for bad in ("", "rk_", "rk_short_" + "a" * 43, "xx_abcdefgh_" + "a" * 43, "rk_abcdefgh_!!"):
        assert parse_key_id(bad) is None
