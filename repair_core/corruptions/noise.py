"""Noise corruptions of CIFAR-10-C: Gaussian, shot (Poisson) and impulse (salt-and-pepper).

Each function takes float images (N, C, H, W) in [0, 1], a severity 1..5 and a generator on
the images' device, and returns float images (clipping and uint8 rounding happen in the
registry). Noise is per pixel, so nothing here depends on the image size.
"""

from __future__ import annotations

import torch
from torch import Tensor

GAUSSIAN_STD = (0.04, 0.06, 0.08, 0.09, 0.10)  # std of additive noise, on [0, 1] pixels
SHOT_PHOTONS = (500.0, 250.0, 100.0, 75.0, 50.0)  # photons at full intensity; fewer = noisier
IMPULSE_AMOUNT = (0.01, 0.02, 0.03, 0.05, 0.07)  # fraction of values set to 0 or 1


def gaussian_noise(x: Tensor, severity: int, generator: torch.Generator) -> Tensor:
    std = GAUSSIAN_STD[severity - 1]
    noise = torch.randn(x.shape, generator=generator, device=x.device, dtype=x.dtype)
    return x + std * noise


def shot_noise(x: Tensor, severity: int, generator: torch.Generator) -> Tensor:
    photons = SHOT_PHOTONS[severity - 1]
    return torch.poisson(x * photons, generator=generator) / photons


def impulse_noise(x: Tensor, severity: int, generator: torch.Generator) -> Tensor:
    """skimage `random_noise(mode="s&p")`: each value (per channel) flips with probability
    `amount`, to 1 or 0 with equal odds."""
    amount = IMPULSE_AMOUNT[severity - 1]
    flipped = torch.rand(x.shape, generator=generator, device=x.device) < amount
    salt = torch.rand(x.shape, generator=generator, device=x.device) < 0.5
    out = torch.where(flipped & salt, torch.ones_like(x), x)
    return torch.where(flipped & ~salt, torch.zeros_like(x), out)
