"""Seeded generators: the same seed gives the same draws; a seed must be an integer."""

from __future__ import annotations

import pytest
import torch

from repair_core.errors import RepairInputError
from repair_core.rng import seeded_generator, seeded_permutation


def test_the_same_seed_draws_the_same_numbers_and_another_seed_others() -> None:
    first = torch.rand(8, generator=seeded_generator(3))
    assert torch.equal(first, torch.rand(8, generator=seeded_generator(3)))
    assert not torch.equal(first, torch.rand(8, generator=seeded_generator(4)))
    assert torch.equal(first, torch.rand(8, generator=torch.Generator().manual_seed(3)))


def test_generators_live_on_the_cpu_unless_a_device_is_given() -> None:
    assert seeded_generator(0).device == torch.device("cpu")
    assert seeded_generator(0, torch.device("cpu")).device == torch.device("cpu")


def test_a_seeded_permutation_is_a_permutation_fixed_by_its_seed() -> None:
    order = seeded_permutation(10, 7)
    assert sorted(order.tolist()) == list(range(10))
    assert torch.equal(order, seeded_permutation(10, 7))


@pytest.mark.parametrize("seed", [1.5, "3", True, None])
def test_a_seed_that_is_not_an_integer_is_refused(seed: object) -> None:
    with pytest.raises(RepairInputError, match="seed must be an integer"):
        seeded_generator(seed)  # type: ignore[arg-type]
