"""Field checks shared by the search and network configs (they may come from users)."""

from __future__ import annotations

from repair_core.errors import RepairInputError


def check_int(owner: str, name: str, value: object, low: int, high: int) -> None:
    """Raise unless `value` is an int (not bool) in [low, high]."""
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise RepairInputError(f"{owner}.{name} must be an integer in {low}..{high}, got {value!r}")
