"""The one dispatcher from a selection method's name to the code that runs it.

`select` is what the pipeline calls for every method, the augmentation set included: it
extracts the features a method needs, picks C and splits it into C_t and C_v.
`select_core_set` is the step inside it for the methods that pick failures, on features
computed already (a notebook can call it with its own).

The method names are `repair_core.choices.SELECTION_CHOICES`: the API and the CLI accept
exactly these.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from repair_core.choices import SELECTION_CHOICES
from repair_core.datasets.types import ImageDataset
from repair_core.errors import RepairInputError
from repair_core.progress import CancelToken, Progress, ProgressCallback, ignore_progress
from repair_core.rng import seeded_generator
from repair_core.selection.augment import augmentation_set
from repair_core.selection.distances import DEFAULT_MEMORY_BUDGET_BYTES
from repair_core.selection.features import FeatureModel, extract_features
from repair_core.selection.kcenter import check_features, k_center_greedy, k_center_static
from repair_core.selection.random_select import random_selection
from repair_core.selection.split import split_halves

SELECTION_METHODS: tuple[str, ...] = SELECTION_CHOICES
# "augment" selects no failures: it stands in augmented training images for C.
FAILURE_SELECTION_METHODS: tuple[str, ...] = tuple(m for m in SELECTION_METHODS if m != "augment")


@dataclass(frozen=True)
class CoreSetSelection:
    method: str
    indices: torch.Tensor  # int64 (b,) rows of the failure set in pick order, on the CPU
    radii: torch.Tensor | None  # k-center: coverage radius after each pick; random: None
    budget_clipped: bool  # the budget exceeded the failure set, so all of it was selected


@dataclass(frozen=True)
class Selection:
    core: ImageDataset  # C: selected failures, or augmented training images for "augment"
    core_train: torch.Tensor  # rows of `core` forming C_t
    core_val: torch.Tensor  # rows of `core` forming C_v
    selected: torch.Tensor  # rows of the failures in C, pick order (empty for "augment")
    radii: torch.Tensor  # coverage radius after each pick (empty when not k-center)
    budget_clipped: bool


def select(
    method: str,
    model: FeatureModel,
    train: ImageDataset,
    failures: ImageDataset,
    budget: int,
    *,
    seed: int,
    device: torch.device,
    batch_size: int,
    on_progress: ProgressCallback = ignore_progress,
    cancel: CancelToken | None = None,
) -> Selection:
    """C for `method` (one of SELECTION_METHODS), split into seeded, stratified halves."""
    if method not in SELECTION_METHODS:
        raise RepairInputError(
            f"unknown selection method {method!r}; methods are {', '.join(SELECTION_METHODS)}"
        )
    if method == "augment":
        au = augmentation_set(train.images, train.labels, budget, seed=seed)
        core = ImageDataset(au.images, au.labels, train.class_names)
        selected = torch.empty(0, dtype=torch.int64)
        radii = torch.empty(0)
        clipped = budget > len(train)
    else:

        def features(images: torch.Tensor) -> torch.Tensor:
            return extract_features(
                model, images, batch_size=batch_size, device=device, cancel=cancel
            )

        result = select_core_set(
            method, features(failures.images), features(train.images), budget,
            seed=seed, on_progress=on_progress, cancel=cancel,
        )  # fmt: skip
        selected = result.indices
        radii = result.radii if result.radii is not None else torch.empty(0)
        core = failures.subset(selected)
        clipped = result.budget_clipped
    halves = split_halves(torch.arange(len(core)), core.labels, seed=seed)
    return Selection(core, halves.train, halves.val, selected, radii.cpu(), clipped)


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
            ": 'augment' selects no failures, build it with augmentation_set(train images) "
            "or call select()"
            if method == "augment"
            else ""
        )
        raise RepairInputError(
            f"unknown selection method {method!r}; failure selection methods are "
            f"{', '.join(FAILURE_SELECTION_METHODS)}{hint}"
        )
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
            failure_features, train_features, budget,
            memory_budget_bytes=memory_budget_bytes, generator=seeded_generator(seed),
            on_progress=on_progress, cancel=cancel,
        )  # fmt: skip
    else:
        result = k_center_static(
            failure_features, train_features, budget,
            memory_budget_bytes=memory_budget_bytes, on_progress=on_progress, cancel=cancel,
        )  # fmt: skip
    return CoreSetSelection(method, result.indices, result.radii, result.budget_clipped)
