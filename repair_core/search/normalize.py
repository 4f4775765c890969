"""Input normalisation inside the network: models take float images in [0, 1]."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from repair_core.errors import RepairInputError

# The CIFAR-10 statistics the reference DARTS code normalises with.
CIFAR10_MEAN: tuple[float, ...] = (0.49139968, 0.48215827, 0.44653124)
CIFAR10_STD: tuple[float, ...] = (0.24703233, 0.24348505, 0.26158768)


def check_normalization(
    mean: Sequence[float], std: Sequence[float], in_channels: int
) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Validate per-channel statistics; one value stands for every channel."""
    mean_t = tuple(float(m) for m in mean)
    std_t = tuple(float(s) for s in std)
    for name, values in (("mean", mean_t), ("std", std_t)):
        if len(values) not in (1, in_channels):
            raise RepairInputError(
                f"normalisation {name} has {len(values)} values; the network has "
                f"{in_channels} input channels (give {in_channels} values or 1)"
            )
        if not all(v == v and abs(v) != float("inf") for v in values):
            raise RepairInputError(f"normalisation {name} must be finite, got {values}")
    if any(s <= 0 for s in std_t):
        raise RepairInputError(f"normalisation std must be positive, got {std_t}")
    return mean_t, std_t


class Normalize(nn.Module):
    """(x - mean) / std per channel. Buffers are not persistent: the checkpoint metadata
    carries the statistics, so state dicts stay plain weights (reference-compatible)."""

    mean: torch.Tensor
    std: torch.Tensor

    def __init__(self, mean: Sequence[float], std: Sequence[float]) -> None:
        super().__init__()
        self.register_buffer("mean", torch.tensor(mean).view(1, -1, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(std).view(1, -1, 1, 1), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean.to(x.dtype)) / self.std.to(x.dtype)
