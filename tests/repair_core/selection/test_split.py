"""Splitting the core set into C_t and C_v: equal, seeded, stratified by label."""

from __future__ import annotations

from collections import Counter

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from repair_core.errors import RepairInputError
from repair_core.selection.split import split_halves


@settings(deadline=None)
@given(
    labels=st.lists(st.integers(0, 4), min_size=0, max_size=60),
    seed=st.integers(0, 2**31),
    known=st.booleans(),
)
def test_halves_partition_the_indices_equally_and_stratified(
    labels: list[int], seed: int, known: bool
) -> None:
    n = len(labels)
    indices = torch.randperm(n, generator=torch.Generator().manual_seed(seed)) + 1000
    label_tensor = torch.tensor(labels, dtype=torch.long)
    train, val = split_halves(indices, label_tensor if known else None, seed=seed)
    assert sorted(train.tolist() + val.tolist()) == sorted(indices.tolist())
    assert train.shape[0] == (n + 1) // 2 and val.shape[0] == n // 2
    position = {int(v): i for i, v in enumerate(indices)}
    # Both halves keep the order the entries had in `indices`.
    assert [position[int(v)] for v in train] == sorted(position[int(v)] for v in train)
    assert [position[int(v)] for v in val] == sorted(position[int(v)] for v in val)
    if known:
        in_train = Counter(labels[position[int(v)]] for v in train)
        in_val = Counter(labels[position[int(v)]] for v in val)
        for label in set(labels):
            assert abs(in_train[label] - in_val[label]) <= 1


def test_split_is_reproducible_with_the_seed_and_varies_with_it() -> None:
    indices = torch.arange(40)
    labels = torch.arange(40) % 3
    first = split_halves(indices, labels, seed=5)
    again = split_halves(indices, labels, seed=5)
    other = split_halves(indices, labels, seed=6)
    assert torch.equal(first.train, again.train) and torch.equal(first.val, again.val)
    assert not torch.equal(first.train, other.train)


def test_unstratified_split_of_one_class_is_still_random() -> None:
    trains = {tuple(split_halves(torch.arange(10), None, seed=s).train.tolist()) for s in range(5)}
    assert len(trains) > 1


def test_labels_not_aligned_with_indices_are_refused() -> None:
    with pytest.raises(RepairInputError, match="aligned with indices"):
        split_halves(torch.arange(4), torch.zeros(10, dtype=torch.long), seed=0)


def test_float_labels_and_2d_indices_are_refused() -> None:
    with pytest.raises(RepairInputError, match="integer"):
        split_halves(torch.arange(4), torch.zeros(4), seed=0)
    with pytest.raises(RepairInputError, match="1-D"):
        split_halves(torch.zeros(2, 2, dtype=torch.long), None, seed=0)
