"""Stage 1 of a repair: choose the core failure set C (or its stand-ins) for the search.

Methods by name (the names the API accepts):
- "kcenter": K-center greedy of Eq. (6), distances to D_train ∪ C updated after every pick.
- "kcenter-static": Algorithm 1 as printed, the B failures farthest from D_train.
- "random": B failures drawn uniformly (the RF baseline).
- "augment": B augmented training images instead of failures (the AU baseline); it selects
  no failures, so it is built with `augmentation_set` from training images.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from repair_core.errors import RepairInputError
from repair_core.progress import CancelToken, Progress, ProgressCallback, ignore_progress
from repair_core.selection.augment import AUGMENT_OPS, AugmentationSet, augmentation_set
from repair_core.selection.distances import DEFAULT_MEMORY_BUDGET_BYTES, min_sq_distances
from repair_core.selection.features import FeatureModel, extract_features
from repair_core.selection.kcenter import (
    KCenterResult,
    check_features,
    k_center_greedy,
    k_center_static,
)
from repair_core.selection.random_select import random_selection, seeded_generator
from repair_core.selection.split import SplitHalves, split_halves

FAILURE_SELECTION_METHODS: tuple[str, ...] = ("kcenter", "kcenter-static", "random")
SELECTION_METHODS: tuple[str, ...] = (*FAILURE_SELECTION_METHODS, "augment")


@dataclass(frozen=True)
class CoreSetSelection:
    method: str
    indices: torch.Tensor  # int64 (b,) rows of the failure set in pick order, on the CPU
    radii: torch.Tensor | None  # k-center: coverage radius after each pick; random: None
    budget_clipped: bool  # the budget exceeded the failure set, so all of it was selected


def select_core_set(
    method: str,
    failure_features: torch.Tensor,
    train_features: torch.Tensor | None,
    budget: int,
    *,
    seed: int,
    memory_budget_bytes: int = DEFAULT_MEMORY_BUDGET_BYTES,
    on_progress: ProgressCallback = ignore_progress,
    cancel: CancelToken | None = None,
) -> CoreSetSelection:
    """Select up to `budget` failure rows with one of FAILURE_SELECTION_METHODS.

    train_features may be None for "random", which needs no features of D_train (so a
    random-selection job can skip extracting them); the k-center methods need them.
    """
    if method not in FAILURE_SELECTION_METHODS:
        hint = (
            ": 'augment' selects no failures, build it with augmentation_set(train images)"
            if method == "augment"
            else ""
        )
        raise RepairInputError(
            f"unknown selection method {method!r}; failure selection methods are "
            f"{', '.join(FAILURE_SELECTION_METHODS)}{hint}"
        )
    result: KCenterResult
    if method == "random":
        reference = failure_features[:0] if train_features is None else train_features
        check_features(failure_features, reference, budget)
        n = failure_features.shape[0]
        indices = random_selection(n, budget, seed=seed)
        on_progress(Progress("selecting", 1, 1))
        return CoreSetSelection(method, indices, None, budget > n)
    if train_features is None:
        raise RepairInputError(f"selection method {method!r} needs the training set's features")
    if method == "kcenter":
        result = k_center_greedy(
            failure_features,
            train_features,
            budget,
            memory_budget_bytes=memory_budget_bytes,
            generator=seeded_generator(seed),
            on_progress=on_progress,
            cancel=cancel,
        )
    else:
        result = k_center_static(
            failure_features,
            train_features,
            budget,
            memory_budget_bytes=memory_budget_bytes,
            on_progress=on_progress,
            cancel=cancel,
        )
    return CoreSetSelection(method, result.indices, result.radii, result.budget_clipped)


__all__ = [
    "AUGMENT_OPS",
    "DEFAULT_MEMORY_BUDGET_BYTES",
    "FAILURE_SELECTION_METHODS",
    "SELECTION_METHODS",
    "AugmentationSet",
    "CoreSetSelection",
    "FeatureModel",
    "KCenterResult",
    "SplitHalves",
    "augmentation_set",
    "extract_features",
    "k_center_greedy",
    "k_center_static",
    "min_sq_distances",
    "random_selection",
    "select_core_set",
    "split_halves",
]
