"""`select`, the one dispatcher for every selection method, the augmentation set included."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from repair_core.datasets.types import ImageDataset
from repair_core.errors import RepairInputError
from repair_core.selection import (
    SELECTION_METHODS,
    Selection,
    augmentation_set,
    select,
    select_core_set,
)


class MeanFeatures(nn.Module):
    """Per-channel mean brightness as a 3-d feature vector."""

    def __init__(self) -> None:
        super().__init__()
        self.scale = nn.Parameter(torch.ones(()))

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return x.mean(dim=(2, 3)) * self.scale


def images(n: int, seed: int) -> ImageDataset:
    g = torch.Generator().manual_seed(seed)
    pixels = torch.randint(0, 256, (n, 3, 8, 8), generator=g, dtype=torch.uint8)
    return ImageDataset(pixels, torch.arange(n) % 2, ("a", "b"))


def run(method: str, budget: int = 6) -> Selection:
    return select(
        method, MeanFeatures(), images(20, 0), images(12, 1), budget,
        seed=3, device=torch.device("cpu"), batch_size=5,
    )  # fmt: skip


@pytest.mark.parametrize("method", SELECTION_METHODS)
def test_every_method_gives_a_core_set_split_into_two_seeded_halves(method: str) -> None:
    chosen = run(method)
    again = run(method)
    assert len(chosen.core) == 6
    assert sorted([*chosen.core_train.tolist(), *chosen.core_val.tolist()]) == list(range(6))
    assert torch.equal(chosen.core.images, again.core.images)
    assert torch.equal(chosen.core_train, again.core_train)
    assert not chosen.budget_clipped


def test_failure_methods_pick_failures_and_the_augment_method_training_images() -> None:
    failures, train = images(12, 1), images(20, 0)
    for method in ("kcenter", "kcenter-static", "random"):
        chosen = run(method)
        assert torch.equal(chosen.core.images, failures.images[chosen.selected])
    kcenter = run("kcenter")
    with torch.no_grad():
        features = [MeanFeatures().features(d.images.float() / 255) for d in (failures, train)]
    direct = select_core_set("kcenter", *features, 6, seed=3)
    assert torch.equal(kcenter.selected, direct.indices)
    assert kcenter.radii.shape == (6,)
    augment = run("augment")
    expected = augmentation_set(train.images, train.labels, 6, seed=3)
    assert torch.equal(augment.core.images, expected.images)
    assert augment.selected.numel() == 0 and augment.radii.numel() == 0


def test_a_budget_above_the_set_is_reported_and_an_unknown_method_refused() -> None:
    assert run("random", budget=50).budget_clipped
    assert run("augment", budget=50).budget_clipped
    with pytest.raises(RepairInputError, match="kcenter, kcenter-static, random, augment"):
        run("kmeans")
