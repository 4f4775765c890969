"""The 15 CIFAR-10-C corruptions by name, and the uint8 entry points that apply them.

`corrupt(images, name, severity, seed=...)` is the one function callers need: uint8
(N, C, H, W) in, uint8 of the same shape on the same device out, deterministic for a given
seed and device (CPU and CUDA random streams differ, so the same seed gives different noise).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor

from repair_core.choices import CORRUPTION_CHOICES, SEVERITY_CHOICES
from repair_core.corruptions.blur import defocus_blur, glass_blur, motion_blur, zoom_blur
from repair_core.corruptions.digital import contrast, elastic_transform, jpeg_compression, pixelate
from repair_core.corruptions.noise import gaussian_noise, impulse_noise, shot_noise
from repair_core.corruptions.weather import brightness, fog, frost, snow
from repair_core.errors import RepairInputError
from repair_core.registry import Registry
from repair_core.rng import seeded_generator

CorruptionFn = Callable[[Tensor, int, torch.Generator], Tensor]

SEVERITIES = SEVERITY_CHOICES
MIN_SIZE = 8  # px; below this the size-scaled kernels and affine anchors degenerate
MAX_SEED = 2**63 - 1


@dataclass(frozen=True)
class Corruption:
    name: str
    group: str  # "noise" | "blur" | "weather" | "digital", the paper's column groups
    apply: CorruptionFn  # float [0, 1] images -> float images (clipped and rounded by `corrupt`)
    random: bool  # False when the output depends on the image alone, not on the seed

    def __call__(self, images: Tensor, severity: int, *, seed: int) -> Tensor:
        return corrupt(images, self.name, severity, seed=seed)


def _entry(group: str, fn: CorruptionFn, random: bool) -> tuple[str, Corruption]:
    name = fn.__name__
    return name, Corruption(name, group, fn, random)


# In the order of docs/method.md (and of the paper's tables).
CORRUPTIONS: Registry[Corruption] = Registry(
    "corruption",
    dict(
        [
            _entry("noise", gaussian_noise, True),
            _entry("noise", shot_noise, True),
            _entry("noise", impulse_noise, True),
            _entry("blur", defocus_blur, False),
            _entry("blur", glass_blur, True),
            _entry("blur", motion_blur, True),
            _entry("blur", zoom_blur, False),
            _entry("weather", snow, True),
            _entry("weather", frost, True),
            _entry("weather", fog, True),
            _entry("weather", brightness, False),
            _entry("digital", contrast, False),
            _entry("digital", elastic_transform, True),
            _entry("digital", pixelate, False),
            _entry("digital", jpeg_compression, False),
        ]
    ),
)
CORRUPTION_NAMES: tuple[str, ...] = tuple(CORRUPTIONS)
# The torch-free copy the API and the profiles read must name exactly these, in this order.
assert CORRUPTION_NAMES == CORRUPTION_CHOICES, "choices.CORRUPTION_CHOICES is out of date"


def get_corruption(name: str) -> Corruption:
    """The corruption called `name`; an unknown name's error lists the valid ones."""
    return CORRUPTIONS[name]


def check_severity(severity: object) -> int:
    if isinstance(severity, bool) or not isinstance(severity, int) or severity not in SEVERITIES:
        raise RepairInputError(f"severity must be an integer 1..5, got {severity!r}")
    return severity


def check_seed(seed: object) -> int:
    if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed <= MAX_SEED:
        raise RepairInputError(f"seed must be an integer in [0, 2**63), got {seed!r}")
    return seed


def check_images(images: object) -> Tensor:
    if not isinstance(images, Tensor) or images.dtype != torch.uint8 or images.dim() != 4:
        shape = tuple(images.shape) if isinstance(images, Tensor) else type(images).__name__
        dtype = images.dtype if isinstance(images, Tensor) else ""
        raise RepairInputError(f"images must be a uint8 tensor (N, C, H, W), got {dtype} {shape}")
    _, c, h, w = images.shape
    if c not in (1, 3):
        raise RepairInputError(f"images must have 1 or 3 channels, got C={c} (shape (N, C, H, W))")
    if min(h, w) < MIN_SIZE:
        raise RepairInputError(f"images must be at least {MIN_SIZE}x{MIN_SIZE}, got {h}x{w}")
    return images


def corrupt(images: Tensor, name: str, severity: int, *, seed: int) -> Tensor:
    """Apply corruption `name` at `severity` (1..5) to uint8 images (N, C, H, W), C = 1 or 3."""
    corruption = get_corruption(name)
    check_severity(severity)
    check_seed(seed)
    check_images(images)
    if images.shape[0] == 0:
        return images.clone()
    generator = seeded_generator(seed, images.device)
    with torch.no_grad():
        out = corruption.apply(images.float() / 255, severity, generator)
        # Rounded, where CIFAR-10-C truncates (np.uint8): truncation darkens every image by
        # half a level on average and turns exact no-ops into a 1-level change.
        return (out.clamp(0, 1) * 255).round().to(torch.uint8)


def chunk_seed(seed: int, name: str, severity: int, chunk: int) -> int:
    """An independent, stable seed per (seed, corruption, severity, chunk)."""
    digest = hashlib.blake2b(f"{seed}/{name}/{severity}/{chunk}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") & MAX_SEED


def corrupt_in_chunks(
    images: Tensor,
    name: str,
    severity: int,
    *,
    seed: int,
    chunk_size: int = 1000,
    device: torch.device | None = None,
) -> Tensor:
    """Corrupt a large set `chunk_size` images at a time, on `device` (default: the images').

    Chunk k uses `chunk_seed(seed, name, severity, k)`, so the result depends on the seed and
    chunk size but not on how the caller batches anything else; it lands on the images' device.
    """
    get_corruption(name)
    check_severity(severity)
    check_seed(seed)
    check_images(images)
    if chunk_size < 1:
        raise RepairInputError(f"chunk_size must be >= 1, got {chunk_size}")
    work_device = images.device if device is None else device
    out = torch.empty_like(images)
    for k, start in enumerate(range(0, int(images.shape[0]), chunk_size)):
        chunk = images[start : start + chunk_size].to(work_device)
        result = corrupt(chunk, name, severity, seed=chunk_seed(seed, name, severity, k))
        out[start : start + chunk_size] = result.to(images.device)
    return out
