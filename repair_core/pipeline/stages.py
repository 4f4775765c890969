"""The stages of one repair variant as functions over tensors: confirm, select, search, retrain.

Each returns plain values; `repair.py` decides what is persisted and when a stage is skipped.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

import torch
from torch import nn

from repair_core.datasets.ops import concat_datasets
from repair_core.datasets.types import DatasetSplits, ImageDataset
from repair_core.errors import RepairInputError
from repair_core.pipeline.profiles import StagePlan
from repair_core.progress import CancelToken, ProgressCallback
from repair_core.search.genotype import Genotype
from repair_core.search.network import EvalNetwork, NetworkConfig
from repair_core.search.searcher import SearchResult, search
from repair_core.search.supernet import SearchConfig
from repair_core.selection import select_core_set
from repair_core.selection.augment import augmentation_set
from repair_core.selection.features import FeatureModel, extract_features
from repair_core.selection.split import split_halves
from repair_core.train import TrainResult, train_model


def seeded_subset(dataset: ImageDataset, limit: int | None, seed: int) -> ImageDataset:
    if limit is None or len(dataset) <= limit:
        return dataset
    generator = torch.Generator().manual_seed(seed)
    index = torch.randperm(len(dataset), generator=generator)[:limit].sort().values
    return dataset.subset(index)


def confirm_failures(
    model: nn.Module,
    failures: ImageDataset,
    *,
    device: torch.device,
    batch_size: int,
    cancel: CancelToken | None,
) -> torch.Tensor:
    """Rows of `failures` the deployed model really misclassifies (int64, ascending)."""
    wrong: list[torch.Tensor] = []
    model.eval()
    with torch.no_grad():
        for start in range(0, len(failures), batch_size):
            if cancel is not None:
                cancel.check()
            images = failures.images[start : start + batch_size].to(device).float().div_(255)
            labels = failures.labels[start : start + batch_size].to(device)
            wrong.append((model(images).argmax(1) != labels).cpu())
    return torch.cat(wrong).nonzero().squeeze(1)


@dataclass(frozen=True)
class Selection:
    core: ImageDataset  # C: selected failures, or augmented training images for "augment"
    core_train: torch.Tensor  # rows of `core` forming C_t
    core_val: torch.Tensor  # rows of `core` forming C_v
    selected: torch.Tensor  # rows of the confirmed failures in C, pick order (empty: augment)
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
    on_progress: ProgressCallback,
    cancel: CancelToken | None,
) -> Selection:
    if method == "augment":
        au = augmentation_set(train.images, train.labels, budget, seed=seed)
        core = ImageDataset(au.images, au.labels, train.class_names)
        selected = torch.empty(0, dtype=torch.int64)
        radii = torch.empty(0)
        clipped = budget > len(train)
    else:

        def features(images: torch.Tensor) -> torch.Tensor:
            return extract_features(
                model,
                images,
                batch_size=batch_size,
                device=device,
                cancel=cancel,
            )

        result = select_core_set(
            method,
            features(failures.images),
            features(train.images),
            budget,
            seed=seed,
            on_progress=on_progress,
            cancel=cancel,
        )
        selected = result.indices
        radii = result.radii if result.radii is not None else torch.empty(0)
        core = failures.subset(selected)
        clipped = result.budget_clipped
    halves = split_halves(torch.arange(len(core)), core.labels, seed=seed)
    return Selection(core, halves.train, halves.val, selected, radii.cpu(), clipped)


def search_data(
    data: DatasetSplits, selection: Selection, plan: StagePlan, seed: int
) -> tuple[ImageDataset, ImageDataset]:
    """(D_train ∪ C_t, D_val ∪ C_v); without a val split D_train is halved, as DARTS does."""
    train = seeded_subset(data.train, plan.data.search_max_images, seed)
    if data.val is not None:
        val = seeded_subset(data.val, plan.data.search_max_images, seed + 1)
    else:
        order = torch.randperm(len(train), generator=torch.Generator().manual_seed(seed))
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
    reference: NetworkConfig,
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
        num_classes=reference.num_classes,
        in_channels=reference.in_channels,
        mean=reference.mean,
        std=reference.std,
    )
    settings = replace(plan.search, epochs=epochs)
    return search(
        train, val, config, settings,
        device=device, on_progress=on_progress, cancel=cancel, state_path=state_path,
    )  # fmt: skip


def network_config(reference: NetworkConfig, plan: StagePlan) -> NetworkConfig:
    return NetworkConfig(
        init_channels=plan.net.init_channels,
        layers=plan.net.layers,
        num_classes=reference.num_classes,
        in_channels=reference.in_channels,
        image_size=reference.image_size,
        auxiliary=plan.net.auxiliary,
        drop_path_prob=plan.train.drop_path_prob,
        mean=reference.mean,
        std=reference.std,
    )


def retrain(
    genotype: Genotype,
    config: NetworkConfig,
    train: ImageDataset,
    plan: StagePlan,
    *,
    seed: int,
    device: torch.device,
    state_path: Path,
    on_progress: ProgressCallback,
    cancel: CancelToken | None,
) -> tuple[EvalNetwork, TrainResult]:
    if len(train) < 2:
        raise RepairInputError("retraining needs at least 2 training images")
    model = EvalNetwork(genotype, config, generator=torch.Generator().manual_seed(seed)).to(device)
    settings = plan.train.scaled_to(config.image_size)
    result = train_model(
        model, train, settings,
        device=device, state_path=state_path, on_progress=on_progress, cancel=cancel,
    )  # fmt: skip
    return model, result
