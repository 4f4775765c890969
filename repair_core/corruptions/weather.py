"""Weather corruptions of CIFAR-10-C: snow, frost, fog and brightness.

Float images (N, C, H, W) in [0, 1] in and out, severity 1..5, a generator on the images'
device. Blur radii and texture feature sizes are in pixels of a 32x32 image; larger images
scale them by min(H, W) / 32 (see `filters.size_scale`).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from repair_core.corruptions.filters import (
    clipped_zoom,
    line_blur,
    next_power_of_two,
    plasma_fractal,
    rgb_to_gray,
    size_scale,
)

# (mean, std, zoom, threshold, blur radius, blur sigma, blend): a Gaussian field, zoomed,
# thresholded into flakes, motion-blurred into streaks; `blend` keeps that much of the image.
SNOW = (
    (0.1, 0.2, 1.0, 0.6, 8, 3, 0.95),
    (0.1, 0.2, 1.0, 0.5, 10, 4, 0.9),
    (0.15, 0.3, 1.75, 0.55, 10, 4, 0.9),
    (0.25, 0.3, 2.25, 0.6, 12, 6, 0.85),
    (0.3, 0.3, 1.25, 0.65, 14, 12, 0.8),
)
FROST = ((1.0, 0.2), (1.0, 0.3), (0.9, 0.4), (0.85, 0.4), (0.75, 0.45))  # (image wt, frost wt)
FOG = ((0.2, 3.0), (0.5, 3.0), (0.75, 2.5), (1.0, 2.0), (1.5, 1.75))  # (strength, plasma decay)
BRIGHTNESS = (0.05, 0.1, 0.15, 0.2, 0.3)  # added to V of HSV, on [0, 1]


def snow(x: Tensor, severity: int, generator: torch.Generator) -> Tensor:
    mean, std, zoom, threshold, radius, sigma, blend = SNOW[severity - 1]
    n, _, h, w = x.shape
    scale = size_scale(x)
    flakes = torch.randn((n, 1, h, w), generator=generator, device=x.device) * std + mean
    flakes = clipped_zoom(flakes, zoom)
    flakes = torch.where(flakes < threshold, torch.zeros_like(flakes), flakes)
    # The reference round-trips the layer through an 8-bit PNG before and after the blur.
    flakes = torch.floor(flakes.clamp(0, 1) * 255) / 255
    # Streaks falling down at +/-45 degrees; `line_blur` stands in for ImageMagick's blur.
    angle = torch.rand(n, generator=generator, device=x.device) * 90 - 135
    flakes = torch.round(line_blur(flakes, radius * scale, sigma * scale, angle) * 255) / 255
    x = blend * x + (1 - blend) * torch.maximum(x, rgb_to_gray(x) * 1.5 + 0.5)
    return x + flakes + flakes.flip(-2, -1)


FROST_POOL = 8  # textures drawn per call; the reference crops from 6 photographs


def frost_texture(
    n: int, h: int, w: int, scale: float, generator: torch.Generator, device: torch.device
) -> Tensor:
    """A procedural stand-in for the frost photographs CIFAR-10-C crops from (N, 1, H, W).

    The reference adds a random crop of one of six photographs of ice on glass (scaled down
    for CIFAR). We have no such files, so we draw a few textures per call (twice the image
    size) and give every image a random crop of one, as the reference does. A texture is a
    cloudy plasma haze with thin bright needle crystals scattered over it, brighter where
    they cross. Real frost has dendritic, branching crystals with correlated orientation and
    a brightness that varies between photographs; ours has straight, independent needles and
    one brightness range (mean about 0.45 on [0, 1]), so accuracies on this frost compare
    between our models but not with CIFAR-10-C's.
    """
    th, tw = 2 * h, 2 * w
    haze = plasma_fractal(FROST_POOL, next_power_of_two(max(th, tw)), 2.0, generator, device)
    yy = torch.arange(th, device=device, dtype=torch.float32)[None, :, None]
    xx = torch.arange(tw, device=device, dtype=torch.float32)[None, None, :]
    width = 0.6 * scale  # needle half-thickness, px
    needles = torch.zeros(FROST_POOL, th, tw, device=device)
    shape = (FROST_POOL, 1, 1)
    for _ in range(round(24 * th * tw / (32 * scale) ** 2)):  # 24 needles per 32x32 area
        cy = torch.rand(shape, generator=generator, device=device) * th
        cx = torch.rand(shape, generator=generator, device=device) * tw
        theta = torch.rand(shape, generator=generator, device=device) * math.pi
        half = (2 + 6 * torch.rand(shape, generator=generator, device=device)) * scale
        glow = 0.5 + 0.5 * torch.rand(shape, generator=generator, device=device)
        # Distance from every pixel to the segment: along-axis overshoot and across-axis offset.
        along = (xx - cx) * torch.cos(theta) + (yy - cy) * torch.sin(theta)
        across = -(xx - cx) * torch.sin(theta) + (yy - cy) * torch.cos(theta)
        overshoot = (along.abs() - half).clamp_min(0)
        # Capped at 30 (exp(-30) ~ 1e-13): far pixels would otherwise underflow to denormals,
        # which are about 100x slower on x86 CPUs.
        falloff = ((overshoot**2 + across**2) / (2 * width**2)).clamp(max=30.0)
        needles = needles + glow * torch.exp(-falloff)
    pool = (0.1 + 0.4 * haze[:, :th, :tw] + 0.5 * needles.clamp(0, 1.5)).clamp(0, 1)
    pick = torch.randint(0, FROST_POOL, (n, 1, 1), generator=generator, device=device)
    top = torch.randint(0, th - h + 1, (n, 1, 1), generator=generator, device=device)
    left = torch.randint(0, tw - w + 1, (n, 1, 1), generator=generator, device=device)
    rows = top + torch.arange(h, device=device)[None, :, None]
    cols = left + torch.arange(w, device=device)[None, None, :]
    return pool[pick, rows, cols][:, None]


def frost(x: Tensor, severity: int, generator: torch.Generator) -> Tensor:
    image_weight, frost_weight = FROST[severity - 1]
    n, c, h, w = x.shape
    texture = frost_texture(n, h, w, size_scale(x), generator, x.device).to(x.dtype)
    if c == 3:
        # Frost photographs are a slightly blue white.
        tint = torch.tensor([0.9, 0.95, 1.0], device=x.device, dtype=x.dtype)
        texture = texture * tint.reshape(1, 3, 1, 1)
    return image_weight * x + frost_weight * texture


def fog(x: Tensor, severity: int, generator: torch.Generator) -> Tensor:
    strength, decay = FOG[severity - 1]
    n, _, h, w = x.shape
    size = next_power_of_two(max(h, w))
    haze = plasma_fractal(n, size, decay, generator, x.device)[:, None, :h, :w].to(x.dtype)
    peak = x.amax(dim=(1, 2, 3), keepdim=True)
    return (x + strength * haze) * peak / (peak + strength)


def brightness(x: Tensor, severity: int, generator: torch.Generator) -> Tensor:
    """Add to V in HSV, keeping hue and saturation.

    With H and S fixed every RGB channel is proportional to V, so scaling the pixel by V'/V is
    the exact HSV round trip; black (V = 0, S = 0 by convention) becomes gray V'.
    """
    shift = BRIGHTNESS[severity - 1]
    value = x.amax(dim=1, keepdim=True)
    brighter = (value + shift).clamp(max=1.0)
    ratio = brighter / value.clamp_min(1e-12)
    return torch.where(value > 0, x * ratio, brighter.expand_as(x))
