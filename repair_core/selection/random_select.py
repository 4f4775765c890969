"""Random failure selection (the paper's RF baseline)."""

from __future__ import annotations

import torch

from repair_core.errors import RepairInputError
from repair_core.rng import seeded_permutation


def check_budget(budget: int) -> None:
    if isinstance(budget, bool) or not isinstance(budget, int) or budget <= 0:
        raise RepairInputError(f"budget B must be a positive integer, got {budget!r}")


def random_selection(n_failures: int, budget: int, *, seed: int) -> torch.Tensor:
    """min(budget, n_failures) distinct failure indices (int64, CPU) drawn uniformly.

    The order is the draw order, so the first k of a selection with budget B are the
    selection with budget k for the same seed.
    """
    check_budget(budget)
    if isinstance(n_failures, bool) or not isinstance(n_failures, int) or n_failures < 0:
        raise RepairInputError(f"n_failures must be a non-negative integer, got {n_failures!r}")
    if n_failures == 0:
        raise RepairInputError("the failure set is empty: there is nothing to select from")
    return seeded_permutation(n_failures, seed)[:budget]
