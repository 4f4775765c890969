"""Limit state in this process's memory: the embedded default (one API process)."""

from __future__ import annotations

import threading
import time
import uuid
from collections import Counter

from api.limits.gcra import Rate, gcra


def _now_ms() -> float:
    return time.monotonic() * 1000


class MemoryStore:
    def __init__(self) -> None:
        self._tat: dict[str, float] = {}
        self._slots: Counter[str] = Counter()
        self._lock = threading.Lock()

    async def hit(self, key: str, rate: Rate) -> float:
        now = _now_ms()
        with self._lock:
            if len(self._tat) > 100_000:  # forget keys whose allowance is back to full
                self._tat = {k: t for k, t in self._tat.items() if t > now}
            new_tat, wait_ms = gcra(self._tat.get(key), now, rate)
            if wait_ms == 0:
                self._tat[key] = new_tat
        return wait_ms / 1000

    async def peek(self, key: str, rate: Rate) -> float:
        with self._lock:
            _new_tat, wait_ms = gcra(self._tat.get(key), _now_ms(), rate)
        return wait_ms / 1000

    async def acquire_slot(
        self, owner: uuid.UUID, *, per_owner: int, total: int, lease_seconds: float
    ) -> tuple[str | None, str]:
        """(token, "") when taken; (None, "owner"|"total") when full."""
        with self._lock:
            if self._slots[str(owner)] >= per_owner:
                return None, "owner"
            if self._slots["*"] >= total:
                return None, "total"
            self._slots[str(owner)] += 1
            self._slots["*"] += 1
        return f"{owner}:{uuid.uuid4().hex}", ""

    def held(self, owner: uuid.UUID | None = None) -> int:
        """Upload slots held (by `owner`, or by everyone)."""
        with self._lock:
            return self._slots[str(owner) if owner else "*"]

    async def renew_slot(self, owner: uuid.UUID, token: str, lease_seconds: float) -> None:
        return None

    async def release_slot(self, owner: uuid.UUID, token: str) -> None:
        with self._lock:
            self._slots[str(owner)] -= 1
            self._slots["*"] -= 1

    async def close(self) -> None:
        return None
