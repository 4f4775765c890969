"""The stages of one repair variant as functions over tensors: confirm, search, retrain.

(Selection is `repair_core.selection.select`.) Each returns plain values; `repair.py`
decides what is persisted and when a stage is skipped.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import torch
from torch import nn

from repair_core.datasets.ops import concat_datasets, seeded_subset
from repair_core.datasets.types import DatasetSplits, ImageDataset
from repair_core.errors import RepairInputError
from repair_core.evaluation.accuracy import predict
from repair_core.models import InputSpec
from repair_core.profiles import StagePlan
from repair_core.progress import CancelToken, ProgressCallback
from repair_core.rng import seeded_generator, seeded_permutation
from repair_core.search.genotype import Genotype
from repair_core.search.network import EvalNetwork, NetworkConfig
from repair_core.search.searcher import SearchResult, search
from repair_core.search.supernet import SearchConfig
from repair_core.selection import Selection
from repair_core.train import TrainResult, train_model


def confirm_failures(
    model: nn.Module,
    failures: ImageDataset,
    *,
    device: torch.device,
    batch_size: int,
    cancel: CancelToken | None,
) -> torch.Tensor:
    """Rows of `failures` the deployed model really misclassifies (int64, ascending)."""
    predicted = predict(
        model, failures.images, batch_size=batch_size, device=device, cancel=cancel
    ).cpu()
    return (predicted != failures.labels.cpu()).nonzero().squeeze(1)


def search_data(
    data: DatasetSplits, selection: Selection, plan: StagePlan, seed: int
) -> tuple[ImageDataset, ImageDataset]:
    """(D_train ∪ C_t, D_val ∪ C_v); without a val split D_train is halved, as DARTS does."""
    train = seeded_subset(data.train, plan.data.search_max_images, seed)
    if data.val is not None:
        val = seeded_subset(data.val, plan.data.search_max_images, seed + 1)
    else:
        order = seeded_permutation(len(train), seed)
        half = len(train) // 2
        train, val = (
            train.subset(order[:half].sort().values),
            train.subset(order[half:].sort().values),
        )
    core = selection.core
    return (
        concat_datasets(train, core.subset(selection.core_train)),
        concat_datasets(val, core.subset(selection.core_val)),
    )


def run_search(
    train: ImageDataset,
    val: ImageDataset,
    reference: InputSpec,
    num_classes: int,
    plan: StagePlan,
    *,
    epochs: int,
    device: torch.device,
    state_path: Path,
    on_progress: ProgressCallback,
    cancel: CancelToken | None,
) -> SearchResult:
    config = SearchConfig(
        init_channels=plan.search_net.init_channels,
        layers=plan.search_net.layers,
        steps=plan.search_net.steps,
        multiplier=plan.search_net.multiplier,
        partial_channels=plan.search_net.partial_channels,
        edge_normalization=plan.search_net.edge_normalization,
        num_classes=num_classes,
        in_channels=reference.channels,
        mean=reference.mean,
        std=reference.std,
    )
    settings = replace(plan.search, epochs=epochs)
    return search(
        train, val, config, settings,
        device=device, on_progress=on_progress, cancel=cancel, state_path=state_path,
    )  # fmt: skip


def network_config(reference: InputSpec, num_classes: int, plan: StagePlan) -> NetworkConfig:
    """The repaired network's config: the profile's size, the deployed model's input."""
    return NetworkConfig(
        init_channels=plan.net.init_channels,
        layers=plan.net.layers,
        num_classes=num_classes,
        in_channels=reference.channels,
        image_size=reference.height,
        image_width=None if reference.width == reference.height else reference.width,
        auxiliary=plan.net.auxiliary,
        drop_path_prob=plan.train.drop_path_prob,
        mean=reference.mean,
        std=reference.std,
    )


def retrain(
    genotype: Genotype | None,
    config: NetworkConfig,
    train: ImageDataset,
    plan: StagePlan,
    *,
    seed: int,
    device: torch.device,
    state_path: Path,
    on_progress: ProgressCallback,
    cancel: CancelToken | None,
    train_seed: int | None = None,
    augmentation: str | None = None,
    style_images: ImageDataset | None = None,
    build: Callable[[int], nn.Module] | None = None,
) -> tuple[nn.Module, TrainResult]:
    """The network of `genotype` initialised from `seed`, trained by `plan.train` (whose
    seed, the data order and augmentation stream, `train_seed` replaces when given, and
    whose augmentation `augmentation` replaces; `style_images`: the fourier-style bank).
    `build(seed)`, when given, makes the network instead (a deployed registry architecture)."""
    if len(train) < 2:
        raise RepairInputError("retraining needs at least 2 training images")
    if build is not None:
        model: nn.Module = build(seed).to(device)
    elif genotype is not None:
        model = EvalNetwork(genotype, config, generator=seeded_generator(seed)).to(device)
    else:
        raise RepairInputError("retrain needs a genotype or a build function")
    settings = plan.train.scaled_to(config.image_size)
    if train_seed is not None:
        settings = replace(settings, seed=train_seed)
    if augmentation is not None:
        settings = replace(settings, augmentation=augmentation)
    result = train_model(
        model, train, settings, style_images=style_images,
        device=device, state_path=state_path, on_progress=on_progress, cancel=cancel,
    )  # fmt: skip
    return model, result
