"""The selection registry and `select_core_set`, the entry point the pipeline calls."""

from __future__ import annotations

import pytest
import torch

from repair_core.errors import RepairInputError
from repair_core.selection import (
    FAILURE_SELECTION_METHODS,
    SELECTION_METHODS,
    k_center_greedy,
    random_selection,
    select_core_set,
)


def feature_sets() -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    return torch.randn(40, 4, generator=g), torch.randn(30, 4, generator=g)


def test_registry_names_the_four_methods_of_the_paper() -> None:
    assert SELECTION_METHODS == ("kcenter", "kcenter-static", "random", "augment")
    assert set(FAILURE_SELECTION_METHODS) < set(SELECTION_METHODS)


@pytest.mark.parametrize("method", FAILURE_SELECTION_METHODS)
def test_every_failure_method_selects_budget_unique_failures_reproducibly(method: str) -> None:
    fail, train = feature_sets()
    first = select_core_set(method, fail, train, 12, seed=3)
    again = select_core_set(method, fail, train, 12, seed=3)
    assert first.method == method
    assert first.indices.shape == (12,)
    assert len(set(first.indices.tolist())) == 12
    assert torch.equal(first.indices, again.indices)
    assert not first.budget_clipped
    if method == "random":
        assert first.radii is None
    else:
        assert first.radii is not None and first.radii.shape == (12,)


def test_kcenter_and_random_delegate_to_their_functions() -> None:
    fail, train = feature_sets()
    kcenter = select_core_set("kcenter", fail, train, 5, seed=0)
    assert torch.equal(kcenter.indices, k_center_greedy(fail, train, 5).indices)
    rand = select_core_set("random", fail, train, 5, seed=9)
    assert torch.equal(rand.indices, random_selection(40, 5, seed=9))


@pytest.mark.parametrize("method", FAILURE_SELECTION_METHODS)
def test_every_method_reports_a_budget_above_the_failure_set(method: str) -> None:
    fail, train = feature_sets()
    result = select_core_set(method, fail, train, 100, seed=0)
    assert result.budget_clipped
    assert sorted(result.indices.tolist()) == list(range(40))


def test_unknown_methods_are_refused_with_the_valid_names() -> None:
    fail, train = feature_sets()
    with pytest.raises(RepairInputError, match="kcenter, kcenter-static, random"):
        select_core_set("kmeans", fail, train, 5, seed=0)
    with pytest.raises(RepairInputError, match="augmentation_set"):
        select_core_set("augment", fail, train, 5, seed=0)


def test_random_selection_checks_its_inputs_like_kcenter() -> None:
    fail, train = feature_sets()
    with pytest.raises(RepairInputError, match="dimension mismatch"):
        select_core_set("random", fail, train[:, :2], 5, seed=0)
    with pytest.raises(RepairInputError, match="budget"):
        select_core_set("random", fail, train, 0, seed=0)


def test_random_selection_needs_no_train_features_but_kcenter_does() -> None:
    fail, _ = feature_sets()
    assert select_core_set("random", fail, None, 5, seed=0).indices.shape == (5,)
    for method in ("kcenter", "kcenter-static"):
        with pytest.raises(RepairInputError, match="needs the training set's features"):
            select_core_set(method, fail, None, 5, seed=0)
