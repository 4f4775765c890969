"""A small real repair problem: sklearn digits, a tiny deployed DARTS network, noisy failures."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from repair_core.checkpoint import LoadedModel, load_model, save_model
from repair_core.corruptions import corrupt
from repair_core.datasets.digits import load_digits_splits
from repair_core.datasets.types import DatasetSplits, ImageDataset
from repair_core.pipeline.original import train_original
from repair_core.train import TrainSettings


@dataclass(frozen=True)
class RepairProblem:
    data: DatasetSplits
    failures: ImageDataset  # Gaussian-noise test images; some the model still gets right
    checkpoint: Path  # the deployed model phi0

    def deployed(self) -> LoadedModel:
        return load_model(self.checkpoint)


def make_digits_problem(folder: Path) -> RepairProblem:
    data = load_digits_splits(seed=0)
    settings = TrainSettings(epochs=4, batch_size=64, drop_path_prob=0.0, report_every_steps=0)
    model = train_original(data.train, settings=settings, init_channels=4, layers=3)
    checkpoint = folder / "phi0.safetensors"
    save_model(checkpoint, model, class_names=data.class_names)
    noisy = corrupt(data.test.images, "gaussian_noise", 5, seed=1)
    failures = ImageDataset(noisy, data.test.labels.clone(), data.class_names)
    return RepairProblem(data, failures, checkpoint)
