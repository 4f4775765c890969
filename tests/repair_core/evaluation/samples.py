"""Test inputs for evaluation: tiny classifiers with known accuracies, a dataset they
separate, and a sample report."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from repair_core.corruptions import CORRUPTION_NAMES
from repair_core.datasets.types import ImageDataset
from repair_core.evaluation.report import EvaluationReport, ModelScores


class BrightnessClassifier(nn.Module):
    """Class 1 when the image's mean is above 0.5; a parameter so it has a device."""

    def __init__(self) -> None:
        super().__init__()
        self.threshold = nn.Parameter(torch.tensor(0.5))
        self.seen: list[Tensor] = []

    def forward(self, x: Tensor) -> Tensor:
        self.seen.append(x.clone())
        score = x.mean(dim=(1, 2, 3)) - self.threshold
        return torch.stack([-score, score], dim=1)


class AlwaysZero(nn.Module):
    """Predicts class 0 and returns (logits, aux) like a DARTS network with an auxiliary head."""

    def __init__(self) -> None:
        super().__init__()
        self.bias = nn.Parameter(torch.tensor([1.0, 0.0]))
        self.seen: list[Tensor] = []

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        self.seen.append(x.clone())
        logits = self.bias.expand(x.shape[0], 2)
        return logits, logits


def dark_and_bright(n: int, seed: int = 0) -> ImageDataset:
    """Half dark images (class 0, values 60..129), half bright (class 1, values 160..229)."""
    g = torch.Generator().manual_seed(seed)
    labels = torch.arange(n) % 2
    noise = torch.randint(0, 70, (n, 3, 16, 16), generator=g)
    images = (60 + 100 * labels[:, None, None, None] + noise).to(torch.uint8)
    return ImageDataset(images, labels, ("dark", "bright"))


def scores(offset: float, failures: float | None) -> ModelScores:
    return ModelScores(
        clean=90.0 + offset / 3,
        held_out_failures=failures,
        corruptions={
            name: {s: 80.0 - 7 * s + i / 7 + offset for s in (1, 2, 3, 4, 5)}
            for i, name in enumerate(CORRUPTION_NAMES)
        },
    )


def sample_report() -> EvaluationReport:
    """An original and a repaired model on every corruption x severity, failures from noise."""
    return EvaluationReport(
        models={"original": scores(0.0, 0.0), "repaired": scores(2.5, 18.27)},
        failure_corruption="gaussian_noise",
        info={"test_images": 10000, "seconds_per_corruption": {"fog": 1.25}, "note": None},
    )
