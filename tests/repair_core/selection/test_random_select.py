"""Random failure selection (RF): B distinct indices, reproducible with the seed."""

from __future__ import annotations

import pytest
import torch

from repair_core.errors import RepairInputError
from repair_core.selection.random_select import random_selection


def test_random_selection_returns_budget_distinct_valid_indices() -> None:
    picks = random_selection(500, 40, seed=3)
    assert picks.shape == (40,)
    assert picks.dtype == torch.int64
    assert len(set(picks.tolist())) == 40
    assert int(picks.min()) >= 0 and int(picks.max()) < 500


def test_random_selection_is_reproducible_with_the_seed_and_varies_without_it() -> None:
    assert torch.equal(random_selection(500, 40, seed=3), random_selection(500, 40, seed=3))
    assert not torch.equal(random_selection(500, 40, seed=3), random_selection(500, 40, seed=4))


def test_a_smaller_budget_is_a_prefix_of_a_larger_one() -> None:
    assert torch.equal(random_selection(100, 10, seed=1), random_selection(100, 30, seed=1)[:10])


def test_budget_above_the_failure_count_takes_every_failure() -> None:
    assert sorted(random_selection(7, 20, seed=0).tolist()) == list(range(7))


@pytest.mark.parametrize(
    ("n", "budget", "seed", "message"),
    [
        (10, 0, 0, "budget"),
        (10, -1, 0, "budget"),
        (0, 5, 0, "empty"),
        (-3, 5, 0, "n_failures"),
        (10, 5, 1.5, "seed"),
    ],
)
def test_invalid_arguments_raise_clear_errors(n: int, budget: int, seed: int, message: str) -> None:
    with pytest.raises(RepairInputError, match=message):
        random_selection(n, budget, seed=seed)
