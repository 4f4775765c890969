"""Seeded random generators: every random draw in `repair_core` comes from one of these.

No stage touches torch's global RNG for its own draws: a seed is an explicit argument at
every entry point and becomes a generator here, so a run depends on its seed alone.
"""

from __future__ import annotations

import torch

from repair_core.errors import RepairInputError


def seeded_generator(seed: int, device: torch.device | str | None = None) -> torch.Generator:
    """A generator on `device` (default: the CPU) seeded with `seed`.

    CPU draws are the same on every machine; CUDA generators give other streams than the CPU
    for the same seed, so draw on the CPU where results must not depend on the device.
    """
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise RepairInputError(f"seed must be an integer, got {seed!r}")
    generator = torch.Generator(device=device if device is not None else "cpu")
    generator.manual_seed(seed)
    return generator


def seeded_permutation(n: int, seed: int) -> torch.Tensor:
    """`torch.randperm(n)` drawn on the CPU from `seed` (int64)."""
    return torch.randperm(n, generator=seeded_generator(seed))
