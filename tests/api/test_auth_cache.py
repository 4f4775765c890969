"""The auth cache never serves a key past its TTL, its expiry or its revocation time."""

from __future__ import annotations

import time
import uuid
from datetime import UTC, datetime, timedelta

from api.auth_cache import AuthCache, AuthedOwner, KeyGrant

OWNER = AuthedOwner(uuid.uuid4(), "abcdefgh")


def test_an_entry_lives_at_most_the_ttl() -> None:
    cache = AuthCache(ttl_seconds=0.2, max_entries=10)
    cache.put("d", KeyGrant(OWNER, None))
    assert cache.get("d") == OWNER
    deadline = time.monotonic() + 0.2
    while time.monotonic() < deadline + 0.05:
        pass  # busy wait past the TTL: the cache reads the monotonic clock
    assert cache.get("d") is None


def test_a_key_is_not_served_past_its_expiry() -> None:
    cache = AuthCache(ttl_seconds=60, max_entries=10)
    cache.put("soon", KeyGrant(OWNER, datetime.now(UTC) + timedelta(milliseconds=100)))
    cache.put("gone", KeyGrant(OWNER, datetime.now(UTC) - timedelta(seconds=1)))
    assert cache.get("soon") == OWNER
    assert cache.get("gone") is None
    end = time.monotonic() + 0.15
    while time.monotonic() < end:
        pass
    assert cache.get("soon") is None


def test_zero_ttl_disables_it_and_the_size_is_bounded() -> None:
    off = AuthCache(ttl_seconds=0, max_entries=10)
    off.put("d", KeyGrant(OWNER, None))
    assert off.get("d") is None
    small = AuthCache(ttl_seconds=60, max_entries=2)
    for digest in ("a", "b", "c"):
        small.put(digest, KeyGrant(OWNER, None))
    assert small.get("a") is None and small.get("c") == OWNER
    small.invalidate_key_id(OWNER.key_id)
    assert small.get("c") is None
