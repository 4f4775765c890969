"""Batched image operations the corruptions share, written in torch so they run on any device.

Every function takes float images (N, C, H, W) and keeps their device and dtype. Where a
function mirrors a numpy/scipy/OpenCV call of the original CIFAR-10-C code, the docstring
names it, because the border mode and rounding details decide whether numbers match.
"""

from __future__ import annotations

import math
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor

# How an index outside [0, n) maps back inside:
#   "replicate": a a a | a b c d | d d d   (scipy "nearest", OpenCV BORDER_REPLICATE)
#   "symmetric": c b a | a b c d | d c b   (scipy "reflect")
#   "reflect101": d c b | a b c d | c b a  (OpenCV's default BORDER_REFLECT_101)
BorderMode = Literal["replicate", "symmetric", "reflect101"]


def size_scale(x: Tensor) -> float:
    """Factor for the pixel-sized parameters (blur radii and sigmas): min(H, W) / 32, at least 1.

    Images larger than CIFAR's 32x32 get proportionally larger kernels. Smaller images keep the
    32x32 values: those are already at the one-pixel limit (defocus radius 0.3-1.5, glass
    sigma 0.05-0.4), and shrinking them further turns the blurs into no-ops.
    """
    return max(1.0, min(int(x.shape[-2]), int(x.shape[-1])) / 32.0)


def border_index(n: int, pad: int, mode: BorderMode, device: torch.device) -> Tensor:
    """Source indices for a 1-d axis of length n padded by `pad` on both sides.

    Works for any pad, also pad >= n (torch's reflect padding refuses that, tiny images need it).
    """
    i = torch.arange(-pad, n + pad, device=device)
    if mode == "replicate" or n == 1:
        return i.clamp(0, n - 1)
    if mode == "symmetric":
        i = i.remainder(2 * n)
        return torch.where(i >= n, 2 * n - 1 - i, i)
    period = 2 * n - 2
    i = i.remainder(period)
    return torch.where(i >= n, period - i, i)


def pad2d(x: Tensor, pad_h: int, pad_w: int, mode: BorderMode) -> Tensor:
    rows = border_index(int(x.shape[-2]), pad_h, mode, x.device)
    cols = border_index(int(x.shape[-1]), pad_w, mode, x.device)
    return x.index_select(-2, rows).index_select(-1, cols)


def filter2d(x: Tensor, kernel: Tensor, mode: BorderMode) -> Tensor:
    """Correlate every channel with one 2-d kernel of odd size (OpenCV `filter2D`)."""
    kh, kw = int(kernel.shape[0]), int(kernel.shape[1])
    n, c, h, w = x.shape
    padded = pad2d(x.reshape(n * c, 1, h, w), kh // 2, kw // 2, mode)
    weight = kernel.to(x.dtype).reshape(1, 1, kh, kw)
    return F.conv2d(padded, weight).reshape(n, c, h, w)


def gaussian_kernel1d(sigma: float, radius: int, device: torch.device) -> Tensor:
    offsets = torch.arange(-radius, radius + 1, device=device, dtype=torch.float32)
    kernel = torch.exp(-0.5 * (offsets / sigma) ** 2)
    return kernel / kernel.sum()


def gaussian_blur(
    x: Tensor, sigma: float, *, truncate: float = 4.0, mode: BorderMode = "replicate"
) -> Tensor:
    """scipy.ndimage.gaussian_filter over H and W (skimage `gaussian` defaults: nearest, 4 sd)."""
    radius = int(truncate * sigma + 0.5)
    if sigma <= 0 or radius == 0:
        return x
    kernel = gaussian_kernel1d(sigma, radius, x.device).to(x.dtype)
    n, c, h, w = x.shape
    flat = x.reshape(n * c, 1, h, w)
    flat = F.conv2d(pad2d(flat, radius, 0, mode), kernel.reshape(1, 1, -1, 1))
    flat = F.conv2d(pad2d(flat, 0, radius, mode), kernel.reshape(1, 1, 1, -1))
    return flat.reshape(n, c, h, w)


def clipped_zoom(x: Tensor, zoom: float) -> Tensor:
    """Zoom into the centre by `zoom` and crop back to the input size.

    Mirrors CIFAR-10-C's `clipped_zoom`: centre crop of ceil(size/zoom), scipy `zoom(order=1)`
    (bilinear, corners aligned) to round(crop*zoom), then a centre trim.
    """
    h, w = int(x.shape[-2]), int(x.shape[-1])
    ch, cw = math.ceil(h / zoom), math.ceil(w / zoom)
    top, left = (h - ch) // 2, (w - cw) // 2
    crop = x[..., top : top + ch, left : left + cw]
    out_h, out_w = round(ch * zoom), round(cw * zoom)
    zoomed = F.interpolate(crop, size=(out_h, out_w), mode="bilinear", align_corners=True)
    trim_h, trim_w = (out_h - h) // 2, (out_w - w) // 2
    return zoomed[..., trim_h : trim_h + h, trim_w : trim_w + w]


def shift_batch(x: Tensor, dy: Tensor, dx: Tensor) -> Tensor:
    """out[n, :, y, x] = x[n, :, y - dy[n], x - dx[n]] with edge pixels repeated past the border."""
    n, _, h, w = x.shape
    rows = (torch.arange(h, device=x.device)[None, :] - dy[:, None]).clamp(0, h - 1)
    cols = (torch.arange(w, device=x.device)[None, :] - dx[:, None]).clamp(0, w - 1)
    batch = torch.arange(n, device=x.device)[:, None, None]
    # Advanced indexing puts the indexed dims first: (N, H, W, C) -> back to (N, C, H, W).
    return x.permute(0, 2, 3, 1)[batch, rows[:, :, None], cols[:, None, :]].permute(0, 3, 1, 2)


def line_blur(x: Tensor, radius: float, sigma: float, angle_deg: Tensor) -> Tensor:
    """A one-sided line kernel with Gaussian weights along a per-image angle.

    Our stand-in for ImageMagick's `-motion-blur radius x sigma + angle` (used by CIFAR-10-C via
    Wand), following the re-implementation in the ImageNet-C repository: taps at whole-pixel
    offsets 0..2*radius along the direction, weights exp(-i^2 / 2 sigma^2), edges repeated.
    ImageMagick samples the same offsets but interpolates sub-pixel positions and treats the
    border with its virtual-pixel method, so values differ slightly along diagonals and edges.
    """
    r = max(1, math.ceil(radius))
    width = 2 * r + 1
    taps = torch.arange(width, device=x.device, dtype=torch.float32)
    weights = torch.exp(-0.5 * (taps / max(sigma, 1e-6)) ** 2)
    weights = weights / weights.sum()
    angle = torch.deg2rad(angle_deg.to(device=x.device, dtype=torch.float32))
    out = torch.zeros_like(x)
    for i in range(width):
        # Taps that leave the image read the edge pixel (the reference stops there instead;
        # with the published radii and sigmas those weights are negligible either way).
        dy = -torch.ceil(i * torch.sin(angle) - 0.5).long()
        dx = -torch.ceil(i * torch.cos(angle) - 0.5).long()
        out = out + weights[i].to(x.dtype) * shift_batch(x, dy, dx)
    return out


def box_resize_matrix(n_in: int, n_out: int, device: torch.device) -> Tensor:
    """(n_out, n_in) weights of PIL's BOX resampling along one axis.

    PIL evaluates the box filter at input pixel centres (it does not integrate overlaps):
    input j counts for output i when its centre lies within half a (scaled) box of i's centre.
    """
    scale = n_in / n_out
    centres = (torch.arange(n_out, device=device, dtype=torch.float64) + 0.5) * scale
    inputs = torch.arange(n_in, device=device, dtype=torch.float64) + 0.5
    offset = (inputs[None, :] - centres[:, None]) / max(scale, 1.0)
    weights = ((offset > -0.5) & (offset <= 0.5)).to(torch.float64)
    weights = weights / weights.sum(dim=1, keepdim=True).clamp_min(1.0)
    return weights.to(torch.float32)


def box_resize(x: Tensor, height: int, width: int) -> Tensor:
    """PIL `Image.resize(..., Image.BOX)` on float images, as two matrix products."""
    rows = box_resize_matrix(int(x.shape[-2]), height, x.device).to(x.dtype)
    cols = box_resize_matrix(int(x.shape[-1]), width, x.device).to(x.dtype)
    return rows @ x @ cols.T


def plasma_fractal(
    n: int, mapsize: int, decay: float, generator: torch.Generator, device: torch.device
) -> Tensor:
    """(n, mapsize, mapsize) diamond-square plasma in [0, 1], as CIFAR-10-C's `plasma_fractal`.

    Kept faithful, including the reference's wibble * uniform(-wibble, wibble) (an amplitude that
    is squared, probably unintended, but it is what shaped the published fog).
    """
    if mapsize & (mapsize - 1):
        raise ValueError(f"plasma mapsize must be a power of two, got {mapsize}")
    grid = torch.zeros(n, mapsize, mapsize, dtype=torch.float64, device=device)
    step, wibble = mapsize, 100.0

    def wibbled_mean(a: Tensor) -> Tensor:
        noise = torch.rand(a.shape, generator=generator, device=device, dtype=torch.float64)
        return a / 4 + wibble * (noise * 2 * wibble - wibble)

    while step >= 2:
        half = step // 2
        corners = grid[:, 0::step, 0::step]
        squares = corners + corners.roll(-1, dims=1)
        squares = squares + squares.roll(-1, dims=2)
        grid[:, half::step, half::step] = wibbled_mean(squares)
        centres = grid[:, half::step, half::step]
        corners = grid[:, 0::step, 0::step]
        left = centres + centres.roll(1, dims=1) + corners + corners.roll(-1, dims=2)
        grid[:, 0::step, half::step] = wibbled_mean(left)
        top = centres + centres.roll(1, dims=2) + corners + corners.roll(-1, dims=1)
        grid[:, half::step, 0::step] = wibbled_mean(top)
        step //= 2
        wibble /= decay
    flat = grid.reshape(n, -1)
    low = flat.min(dim=1, keepdim=True).values
    flat = flat - low
    high = flat.max(dim=1, keepdim=True).values.clamp_min(1e-12)
    return (flat / high).reshape(n, mapsize, mapsize).float()


def next_power_of_two(n: int) -> int:
    return 1 << max(0, (n - 1).bit_length())


def rgb_to_gray(x: Tensor) -> Tensor:
    """OpenCV COLOR_RGB2GRAY weights; a 1-channel image is already gray. Returns (N, 1, H, W)."""
    if x.shape[1] == 1:
        return x
    weights = torch.tensor([0.299, 0.587, 0.114], device=x.device, dtype=x.dtype)
    return (x * weights.reshape(1, 3, 1, 1)).sum(dim=1, keepdim=True)
