"""A short, revocation-aware cache of successful key checks, so a status poll does not
cost an authentication query.

An entry lives at most `ttl` seconds and never past the key's `expires_at` or a
`revoked_at` set in the future. Revoking a key (`repairctl admin revoke-key`) commits
`revoked_at`; every API process refuses the key at most `ttl` seconds later, when its entry
expires and the next check reads the row. Entries are keyed by the key's HMAC digest,
never the key itself, and only successes are cached.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections import OrderedDict
from dataclasses import dataclass
from datetime import UTC, datetime


@dataclass(frozen=True)
class AuthedOwner:
    """Who a request acts for; routes use only `id` (never cache ORM rows)."""

    id: uuid.UUID
    key_id: str


@dataclass(frozen=True)
class KeyGrant:
    """A successful key check: the owner and until when (wall clock) the key is valid."""

    owner: AuthedOwner
    valid_until: datetime | None


class AuthCache:
    def __init__(self, *, ttl_seconds: float, max_entries: int) -> None:
        self.ttl = ttl_seconds
        self.max_entries = max_entries
        self._entries: OrderedDict[str, tuple[AuthedOwner, float]] = OrderedDict()
        self._lock = threading.Lock()

    @property
    def enabled(self) -> bool:
        return self.ttl > 0 and self.max_entries > 0

    def get(self, digest: str) -> AuthedOwner | None:
        if not self.enabled:
            return None
        now = time.monotonic()
        with self._lock:
            entry = self._entries.get(digest)
            if entry is None:
                return None
            owner, until = entry
            if now >= until:
                del self._entries[digest]
                return None
            self._entries.move_to_end(digest)
            return owner

    def put(self, digest: str, grant: KeyGrant) -> None:
        if not self.enabled:
            return
        now_mono = time.monotonic()
        until = now_mono + self.ttl
        if grant.valid_until is not None:
            left = (grant.valid_until - datetime.now(UTC)).total_seconds()
            until = min(until, now_mono + left)
        if until <= now_mono:
            return
        with self._lock:
            self._entries[digest] = (grant.owner, until)
            self._entries.move_to_end(digest)
            while len(self._entries) > self.max_entries:
                self._entries.popitem(last=False)

    def invalidate_key_id(self, key_id: str) -> None:
        with self._lock:
            for digest in [d for d, (o, _) in self._entries.items() if o.key_id == key_id]:
                del self._entries[digest]
