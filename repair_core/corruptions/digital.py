"""Digital corruptions of CIFAR-10-C: contrast, elastic transform, pixelate and JPEG.

Float images (N, C, H, W) in [0, 1] in and out, severity 1..5, a generator on the images'
device. Elastic displacements are fractions of the image size, so they scale by construction.
"""

from __future__ import annotations

import io

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch import Tensor

from repair_core.corruptions.filters import box_resize, gaussian_blur

CONTRAST = (0.75, 0.5, 0.4, 0.3, 0.15)  # factor applied to each channel's deviation from its mean
# (alpha, sigma, affine) as fractions of the image size: displacement scale, smoothness of the
# displacement field, and the maximal random shift of the three affine anchor points.
ELASTIC = (
    (0.0, 0.0, 0.08),
    (0.05, 0.2, 0.07),
    (0.08, 0.06, 0.06),
    (0.1, 0.04, 0.05),
    (0.1, 0.03, 0.03),
)
PIXELATE = (0.95, 0.9, 0.85, 0.75, 0.65)  # size of the box-downscaled image, relative
JPEG_QUALITY = (80, 65, 58, 50, 40)  # libjpeg quality, 0..100


def contrast(x: Tensor, severity: int, generator: torch.Generator) -> Tensor:
    factor = CONTRAST[severity - 1]
    means = x.mean(dim=(2, 3), keepdim=True)
    return (x - means) * factor + means


def _random_affine_grid(x: Tensor, shift: float, generator: torch.Generator) -> Tensor:
    """Sampling grid of OpenCV `warpAffine` for the affine map that moves three anchor points
    (around the centre, a third of the size away) by up to `shift` pixels each."""
    n, _, h, w = x.shape
    centre = torch.tensor([w // 2, h // 2], device=x.device, dtype=torch.float32)
    arm = min(h, w) // 3
    anchors = torch.stack(
        [centre + arm, centre + torch.tensor([arm, -arm], device=x.device), centre - arm]
    )
    moved = anchors + (torch.rand((n, 3, 2), generator=generator, device=x.device) * 2 - 1) * shift
    # warpAffine pulls each output pixel from the inverse map: solve moved -> anchors.
    ones = torch.ones(n, 3, 1, device=x.device)
    inverse = torch.linalg.solve(torch.cat([moved, ones], dim=2), anchors.expand(n, 3, 2))
    yy, xx = torch.meshgrid(
        torch.arange(h, device=x.device, dtype=torch.float32),
        torch.arange(w, device=x.device, dtype=torch.float32),
        indexing="ij",
    )
    pixels = torch.stack([xx, yy, torch.ones_like(xx)], dim=-1).reshape(1, h * w, 3)
    source = (pixels @ inverse).reshape(n, h, w, 2)
    # align_corners=True puts -1/+1 on the edge pixel centres: "reflection" is BORDER_REFLECT_101.
    size = torch.tensor([max(w - 1, 1), max(h - 1, 1)], device=x.device, dtype=torch.float32)
    grid: Tensor = source / size * 2 - 1
    return grid


def elastic_transform(x: Tensor, severity: int, generator: torch.Generator) -> Tensor:
    alpha, sigma, affine = ELASTIC[severity - 1]
    n, _, h, w = x.shape
    size = min(h, w)
    alpha, sigma, affine = alpha * size, sigma * size, affine * size
    grid = _random_affine_grid(x, affine, generator).to(x.dtype)
    x = F.grid_sample(x, grid, mode="bilinear", padding_mode="reflection", align_corners=True)
    # Smooth random displacements (skimage gaussian, mode "reflect", truncate 3), in pixels.
    noise = torch.rand((n, 2, h, w), generator=generator, device=x.device, dtype=x.dtype) * 2 - 1
    displacement = gaussian_blur(noise, sigma, truncate=3.0, mode="symmetric") * alpha
    yy, xx = torch.meshgrid(
        torch.arange(h, device=x.device, dtype=x.dtype),
        torch.arange(w, device=x.device, dtype=x.dtype),
        indexing="ij",
    )
    src_x = xx + displacement[:, 0]
    src_y = yy + displacement[:, 1]
    # scipy map_coordinates(order=1, mode="reflect") reflects about the outer pixel edges,
    # which is grid_sample's reflection with align_corners=False.
    grid = torch.stack([(2 * src_x + 1) / w - 1, (2 * src_y + 1) / h - 1], dim=-1)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="reflection", align_corners=False)


def pixelate(x: Tensor, severity: int, generator: torch.Generator) -> Tensor:
    """PIL BOX downscale then BOX upscale (nearest), each step stored as uint8 like a PIL image."""
    factor = PIXELATE[severity - 1]
    h, w = int(x.shape[-2]), int(x.shape[-1])
    small = box_resize(x, max(1, int(h * factor)), max(1, int(w * factor)))
    small = torch.round(small.clamp(0, 1) * 255) / 255
    return box_resize(small, h, w)


def jpeg_compression(x: Tensor, severity: int, generator: torch.Generator) -> Tensor:
    """PIL's JPEG encoder at the published quality, as the reference: same codec, same default
    4:2:0 chroma subsampling. Runs on the CPU, one image at a time, whatever the input device
    (torchvision's batched codec is deprecated from 0.29 on)."""
    quality = JPEG_QUALITY[severity - 1]
    pixels = torch.round(x.clamp(0, 1) * 255).to(torch.uint8).cpu()
    mode = "L" if pixels.shape[1] == 1 else "RGB"
    out = torch.empty_like(pixels)
    for i, image in enumerate(pixels.permute(0, 2, 3, 1).numpy()):
        buffer = io.BytesIO()
        # A 2-d array becomes an "L" image, (H, W, 3) an "RGB" one.
        Image.fromarray(image[:, :, 0] if mode == "L" else image).save(
            buffer, format="JPEG", quality=quality
        )
        buffer.seek(0)
        with Image.open(buffer, formats=["JPEG"]) as decoded:
            array = np.array(decoded.convert(mode))
        out[i] = torch.from_numpy(array.reshape(array.shape[0], array.shape[1], -1)).permute(
            2, 0, 1
        )
    return out.to(device=x.device, dtype=x.dtype) / 255
