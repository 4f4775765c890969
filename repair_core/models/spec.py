"""What a deployed model is, whatever its family: its input, its classes, its two outputs.

Every family's network takes float images in [0, 1], (N, C, H, W), and normalises inside
(as every model in repair_core), so the pipeline never needs to know where it came from.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from torch import nn

from repair_core.choices import MODEL_FAMILIES, TRAINABLE_FAMILIES
from repair_core.errors import RepairInputError
from repair_core.search.config_checks import check_int
from repair_core.search.genotype import Genotype
from repair_core.search.normalize import check_normalization

FAMILIES = MODEL_FAMILIES
__all__ = ["FAMILIES", "TRAINABLE_FAMILIES", "DeployedModel", "InputSpec", "check_family"]


@dataclass(frozen=True)
class InputSpec:
    """The deployed model's input: image shape and the normalisation it was trained with."""

    channels: int  # 1 (grayscale) or 3
    height: int  # pixels
    width: int  # pixels
    mean: tuple[float, ...] = (0.0,)  # per channel (or one value), of images in [0, 1]
    std: tuple[float, ...] = (1.0,)

    def __post_init__(self) -> None:
        check_int("InputSpec", "channels", self.channels, 1, 64)
        check_int("InputSpec", "height", self.height, 1, 4096)
        check_int("InputSpec", "width", self.width, 1, 4096)
        mean, std = check_normalization(self.mean, self.std, self.channels)
        object.__setattr__(self, "mean", mean)
        object.__setattr__(self, "std", std)

    @property
    def shape(self) -> tuple[int, int, int]:
        """(C, H, W), the image shape of datasets here."""
        return (self.channels, self.height, self.width)

    def to_dict(self) -> dict[str, Any]:
        return {
            "channels": self.channels,
            "height": self.height,
            "width": self.width,
            "mean": list(self.mean),
            "std": list(self.std),
        }

    @classmethod
    def from_dict(cls, data: Any) -> InputSpec:
        if not isinstance(data, dict) or set(data) - {"channels", "height", "width", "mean", "std"}:
            raise RepairInputError(
                "input spec must be an object with channels, height, width, mean, std"
            )
        try:
            return cls(
                channels=data["channels"],
                height=data["height"],
                width=data["width"],
                mean=tuple(data.get("mean", (0.0,))),
                std=tuple(data.get("std", (1.0,))),
            )
        except (KeyError, TypeError) as exc:
            raise RepairInputError(f"invalid input spec: {exc}") from None


@dataclass(frozen=True)
class DeployedModel:
    """A deployed classifier of any family, ready to run.

    `model` is an nn.Module with `forward(x) -> logits (N, num_classes)` and
    `features(x) -> (N, D)` (the final classifier's input: confirmation and K-center work
    in that space), x float in [0, 1] of `spec.shape`.
    """

    model: nn.Module
    family: str  # one of FAMILIES
    architecture: str  # the registry name (timm, torchvision); "" for darts and onnx
    spec: InputSpec
    num_classes: int
    class_names: tuple[str, ...]
    genotype: Genotype | None = None  # darts only

    @property
    def trainable(self) -> bool:
        """Whether the architecture can be rebuilt fresh and trained (not ONNX)."""
        return self.family in TRAINABLE_FAMILIES


def check_family(family: str) -> str:
    if family not in FAMILIES:
        raise RepairInputError(f"unknown model family {family!r}; known: {', '.join(FAMILIES)}")
    return family
