"""The augmentation set (the paper's AU baseline): training images, one op each, in place of C.

Ops are the AugMix set the paper names: rotation, solarization, shear, translation,
auto-contrast and equalization, from torchvision's functional API on uint8 tensors.
Parameters are drawn from a CPU generator, so a seed gives the same set on any device.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import torch
import torchvision.transforms.v2.functional as TF
from torchvision.transforms import InterpolationMode

from repair_core.errors import RepairInputError
from repair_core.rng import seeded_generator
from repair_core.selection.random_select import check_budget

AugmentOp = Callable[[torch.Tensor, torch.Generator], torch.Tensor]

# A drawn op can leave an image unchanged (auto-contrast of an image already spanning 0..255,
# a rotation of a flat image); it is redrawn this many times before the solarize fallback.
_MAX_DRAWS = 4


class AugmentationSet(NamedTuple):
    images: torch.Tensor  # uint8 (b, C, H, W), each differs from its source image
    labels: torch.Tensor  # (b,) the source images' labels
    source_indices: torch.Tensor  # int64 (b,) rows of the training set, on the CPU
    op_names: tuple[str, ...]  # the op applied to each image (a key of AUGMENT_OPS)


def _uniform(generator: torch.Generator, low: float, high: float) -> float:
    return low + (high - low) * float(torch.rand((), generator=generator))


def _sign(generator: torch.Generator) -> float:
    return 1.0 if bool(torch.randint(2, (), generator=generator)) else -1.0


def rotation(image: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    angle = _sign(generator) * _uniform(generator, 5.0, 30.0)  # degrees
    out: torch.Tensor = TF.rotate(image, angle, interpolation=InterpolationMode.BILINEAR)
    return out


def solarization(image: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    # Pixels at or above the threshold are inverted; 255 - v != v for every uint8 v.
    threshold = float(torch.randint(96, 225, (), generator=generator))
    out: torch.Tensor = TF.solarize(image, threshold)
    return out


def shear(image: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    angle = _sign(generator) * _uniform(generator, 5.0, 17.0)  # degrees; tan(17°) ≈ 0.3
    amount = [angle, 0.0] if bool(torch.randint(2, (), generator=generator)) else [0.0, angle]
    out: torch.Tensor = TF.affine(
        image,
        angle=0.0,
        translate=[0.0, 0.0],
        scale=1.0,
        shear=amount,
        interpolation=InterpolationMode.BILINEAR,
    )
    return out


def translation(image: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    horizontal = bool(torch.randint(2, (), generator=generator))
    size = image.shape[-1] if horizontal else image.shape[-2]
    # Up to a third of the side (AugMix's range), at least one pixel.
    pixels = int(torch.randint(1, max(2, size // 3 + 1), (), generator=generator))
    shift = _sign(generator) * pixels
    offset = [shift, 0.0] if horizontal else [0.0, shift]
    out: torch.Tensor = TF.affine(image, angle=0.0, translate=offset, scale=1.0, shear=[0.0, 0.0])
    return out


def auto_contrast(image: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    out: torch.Tensor = TF.autocontrast(image)
    return out


def equalization(image: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    out: torch.Tensor = TF.equalize(image)
    return out


AUGMENT_OPS: dict[str, AugmentOp] = {
    "rotation": rotation,
    "solarization": solarization,
    "shear": shear,
    "translation": translation,
    "auto_contrast": auto_contrast,
    "equalization": equalization,
}


def augment_image(image: torch.Tensor, generator: torch.Generator) -> tuple[torch.Tensor, str]:
    """One op drawn uniformly and applied to a uint8 (C, H, W) image, which must change.

    Draws (op and parameters) are repeated until the image changes; after _MAX_DRAWS
    no-ops the image is solarized at its own maximum, which always inverts some pixels.
    """
    names = tuple(AUGMENT_OPS)
    for _ in range(_MAX_DRAWS):
        name = names[int(torch.randint(len(names), (), generator=generator))]
        out = AUGMENT_OPS[name](image, generator)
        if not torch.equal(out, image):
            return out, name
    fallback: torch.Tensor = TF.solarize(image, float(image.max()))
    return fallback, "solarization"


def augmentation_set(
    images_uint8: torch.Tensor, labels: torch.Tensor, budget: int, *, seed: int
) -> AugmentationSet:
    """min(budget, N) distinct training images drawn with the seed, each transformed once.

    images_uint8 (N, C, H, W) and labels (N,) are the clean training set; the work runs on
    their device. A budget above N uses every training image once.
    """
    check_budget(budget)
    if (
        not isinstance(images_uint8, torch.Tensor)
        or images_uint8.dtype != torch.uint8
        or images_uint8.dim() != 4
    ):
        raise RepairInputError("images must be a uint8 tensor (N, C, H, W)")
    n = images_uint8.shape[0]
    if n == 0:
        raise RepairInputError("the training set is empty: there is nothing to augment")
    if not isinstance(labels, torch.Tensor) or labels.dim() != 1 or labels.shape[0] != n:
        raise RepairInputError(f"labels must be a 1-D tensor with one entry per image ({n})")
    generator = seeded_generator(seed)
    sources = torch.randperm(n, generator=generator)[:budget]
    outputs: list[torch.Tensor] = []
    op_names: list[str] = []
    for index in sources.tolist():
        out, name = augment_image(images_uint8[index], generator)
        outputs.append(out)
        op_names.append(name)
    return AugmentationSet(
        images=torch.stack(outputs),
        labels=labels[sources.to(labels.device)],
        source_indices=sources,
        op_names=tuple(op_names),
    )
