"""The generic cell rate algorithm: one stored value per key (the theoretical arrival
time, in ms), `burst` requests at once, then one every `60000 / per_minute` ms."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Rate:
    per_minute: float
    burst: int

    @property
    def interval_ms(self) -> float:
        return 60_000 / self.per_minute


def gcra(stored_tat: float | None, now_ms: float, rate: Rate) -> tuple[float, float]:
    """(the new TAT if this hit is allowed, ms to wait: 0 when allowed)."""
    interval = rate.interval_ms
    tat = max(stored_tat if stored_tat is not None else now_ms, now_ms)
    new_tat = tat + interval
    allow_at = new_tat - interval * rate.burst
    if now_ms < allow_at:
        return tat, allow_at - now_ms
    return new_tat, 0.0
