"""Blur corruptions of CIFAR-10-C: defocus, glass, motion and zoom blur.

Float images (N, C, H, W) in [0, 1] in and out, severity 1..5, a generator on the images'
device. Radii and sigmas are in pixels of a 32x32 image; larger images scale them by
min(H, W) / 32 (see `filters.size_scale`).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from repair_core.corruptions.filters import (
    clipped_zoom,
    filter2d,
    gaussian_blur,
    gaussian_weights,
    line_blur,
    size_scale,
)

DEFOCUS = ((0.3, 0.4), (0.4, 0.5), (0.5, 0.6), (1.0, 0.2), (1.5, 0.1))  # (disk radius, alias sd)
GLASS = ((0.05, 1, 1), (0.25, 1, 1), (0.4, 1, 1), (0.25, 1, 2), (0.4, 1, 2))  # (sd, delta, iters)
MOTION = ((6, 1.0), (6, 1.5), (6, 2.0), (8, 2.0), (9, 2.5))  # (radius, sigma); angle +/-45 deg
ZOOM_MAX = (1.06, 1.11, 1.16, 1.21, 1.26)  # zoom factors 1, 1.01, ... below this bound


def disk_kernel(radius: float, alias_sigma: float) -> Tensor:
    """CIFAR-10-C's `disk`: a normalised disk, softened by a 3x3 Gaussian (OpenCV GaussianBlur).

    A small CPU tensor. The reference builds a 17x17 grid whatever the radius; ours holds the
    disk, the one-pixel spread of the softening, and one ring of zeros (so that the border
    reflection of the softening reads zeros, as on the reference's large grid), which is
    cropped off again.
    """
    half = math.floor(radius) + 2
    offsets = torch.arange(-half, half + 1, dtype=torch.float64)
    yy, xx = torch.meshgrid(offsets, offsets, indexing="ij")
    disk = (xx**2 + yy**2 <= radius**2).double()
    disk = disk / disk.sum()
    soft = torch.tensor(gaussian_weights(alias_sigma, 1), dtype=torch.float64)
    softened = filter2d(disk[None, None], soft[:, None] * soft[None, :], "reflect101")[0, 0]
    return (softened / softened.sum())[1:-1, 1:-1]


def defocus_blur(x: Tensor, severity: int, generator: torch.Generator) -> Tensor:
    radius, alias_sigma = DEFOCUS[severity - 1]
    scale = size_scale(x)
    kernel = disk_kernel(radius * scale, alias_sigma * scale)
    return filter2d(x, kernel, "reflect101")


def glass_blur(x: Tensor, severity: int, generator: torch.Generator) -> Tensor:
    """Blur, locally scramble pixels, blur again.

    The reference loops over pixels from the bottom-right and "swaps" each with a random
    neighbour up/left, but numpy views turn the swap into a copy: pixel (h, w) takes the value
    of (h+dy, w+dx) with dy, dx in [-delta, delta) and the neighbour keeps its own. With
    delta = 1 (every image under 48 px) every source is still unvisited when read, so one
    gather per iteration reproduces it exactly; for larger images (delta > 1) we read all
    sources from the previous iteration, where the reference's in-place loop can pass one
    pixel along several times.
    """
    sigma, delta, iterations = GLASS[severity - 1]
    scale = size_scale(x)
    sigma *= scale
    delta = max(1, round(delta * scale))
    n, c, h, w = x.shape
    # The reference stores the first blur as uint8 (truncating), then blurs that again.
    x = torch.floor(gaussian_blur(x, sigma).clamp(0, 1) * 255) / 255
    # Pixels the reference visits: rows/cols delta+1 .. size-delta (inclusive).
    rows = torch.arange(h, device=x.device)
    cols = torch.arange(w, device=x.device)
    row_in = (rows > delta) & (rows <= h - delta)
    col_in = (cols > delta) & (cols <= w - delta)
    visited = (row_in[:, None] & col_in[None, :]).reshape(-1)
    base = (rows[:, None] * w + cols[None, :]).reshape(-1)
    for _ in range(iterations):
        dy = torch.randint(-delta, delta, (n, h * w), generator=generator, device=x.device)
        dx = torch.randint(-delta, delta, (n, h * w), generator=generator, device=x.device)
        source = torch.where(visited, base + dy * w + dx, base)
        flat = x.reshape(n, c, h * w)
        x = flat.gather(2, source[:, None, :].expand(n, c, h * w)).reshape(n, c, h, w)
    return gaussian_blur(x, sigma)


def motion_blur(x: Tensor, severity: int, generator: torch.Generator) -> Tensor:
    """See `line_blur` for how this differs from the ImageMagick motion blur of CIFAR-10-C."""
    radius, sigma = MOTION[severity - 1]
    scale = size_scale(x)
    angle = torch.rand(x.shape[0], generator=generator, device=x.device) * 90 - 45
    return line_blur(x, radius * scale, sigma * scale, angle)


def zoom_factors(severity: int) -> list[float]:
    """np.arange(1, bound, 0.01) as the reference computes it (float steps and all)."""
    bound = ZOOM_MAX[severity - 1]
    count = math.ceil((bound - 1.0) / 0.01)
    return [1.0 + 0.01 * i for i in range(count)]


def zoom_blur(x: Tensor, severity: int, generator: torch.Generator) -> Tensor:
    """Average of the image and its centre zooms; zoom factors are relative, so size-free."""
    factors = zoom_factors(severity)
    out = x.clone()
    for factor in factors:
        out = out + clipped_zoom(x, factor)
    return out / (len(factors) + 1)
