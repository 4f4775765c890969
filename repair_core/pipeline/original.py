"""Training a deployed model phi0 from scratch: for demos, tests and the benchmarks."""

from __future__ import annotations

import torch

from repair_core.datasets.types import ImageDataset
from repair_core.progress import ProgressCallback, ignore_progress
from repair_core.rng import seeded_generator
from repair_core.search.genotype import DARTS_V2, Genotype
from repair_core.search.network import EvalNetwork, NetworkConfig
from repair_core.train import TrainSettings, train_model


def dataset_normalization(data: ImageDataset) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Per-channel mean and std of the images in [0, 1] (the network's input normalisation)."""
    x = data.images.float().div_(255)
    mean = x.mean(dim=(0, 2, 3))
    std = x.std(dim=(0, 2, 3)).clamp_min(1e-3)
    return tuple(float(m) for m in mean), tuple(float(s) for s in std)


def train_original(
    train: ImageDataset,
    *,
    settings: TrainSettings,
    genotype: Genotype = DARTS_V2,
    init_channels: int = 36,
    layers: int = 20,
    auxiliary: bool = False,
    device: torch.device | str = "cpu",
    on_progress: ProgressCallback = ignore_progress,
) -> EvalNetwork:
    """A DARTS-genotype network trained on `train`, in eval mode on `device`."""
    c, h, _ = train.image_shape
    mean, std = dataset_normalization(train)
    config = NetworkConfig(
        init_channels=init_channels,
        layers=layers,
        num_classes=len(train.class_names),
        in_channels=c,
        image_size=h,
        auxiliary=auxiliary,
        drop_path_prob=settings.drop_path_prob,
        mean=mean,
        std=std,
    )
    model = EvalNetwork(genotype, config, generator=seeded_generator(settings.seed)).to(device)
    train_model(model, train, settings.scaled_to(h), device=device, on_progress=on_progress)
    return model.eval()
