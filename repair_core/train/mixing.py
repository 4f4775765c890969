"""Batch augmentations of the baselines: AugMix with its Jensen-Shannon loss, CutMix, and a
Fourier-amplitude style transfer from failure images (the idea of DeepRepair).

All run on the batch's device. Per-image random weights come from the loop's device
generator; host-side scalar choices (which op, its level and sign, CutMix's box) come from
the global CPU RNG, which the training loop seeds and checkpoints inside its `fork_rng`, so
a resumed run draws the same values. torchvision is imported inside the functions so that
`import repair_core.train` stays light.

**AugMix** (Hendrycks et al. 2020, google-research/augmix): `width` chains of 1..3 ops
(`depth=-1`) from `AUGMIX_OPS` (the reference CIFAR list: no brightness/contrast/color/
sharpness, which overlap the test corruptions), mixed with Dirichlet weights w and blended
with the clean image by m ~ Beta(alpha, alpha): x_aug = (1-m) x + m Σ w_i chain_i(x). The
weights are drawn per image; the ops take scalar parameters, so one op chain is drawn per
chunk of `chunk` images (the reference draws one per image; torchvision's `v2.AugMix` one
per batch).

**CutMix** (Yun et al. 2019) is torchvision's `v2.CutMix`, applied to a batch with
probability `prob`.

**Fourier style** replaces DeepRepair's (Yu et al. 2021) WCT2 style transfer, whose VGG
encoder/decoder weights cannot be downloaded here: a training image keeps the phase of its
spectrum (its content) and moves its amplitude (noise, blur, contrast: the style) toward a
random failure image of C, `A = (1-λ)|F_x| + λ|F_s|`, λ ~ U(min, max) per image. As in
DeepRepair it is one more op of the AugMix list, with the JSD loss. Unlike DeepRepair: no
neural style transfer, the style is the global Fourier amplitude (not VGG feature
statistics), it is applied on the fly (not offline), and failure styles are not clustered.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor
from torch.nn import functional as F

AUGMIX_OPS: tuple[str, ...] = (
    "autocontrast", "equalize", "posterize", "rotate", "solarize",
    "shear_x", "shear_y", "translate_x", "translate_y",
)  # fmt: skip
STYLE_OP = "fourier_style"


def _uniform(low: float, high: float) -> float:
    return low + (high - low) * float(torch.rand(()))


def apply_op(name: str, images_u8: Tensor, severity: int) -> Tensor:
    """One AugMix op on a uint8 (N, C, H, W) batch, at a level ~ U(0.1, severity)."""
    out: Tensor = _op(name, images_u8, severity)
    return out


def _op(name: str, images_u8: Tensor, severity: int) -> Any:
    from torchvision.transforms import InterpolationMode
    from torchvision.transforms.v2 import functional as TF

    if name == "identity":  # for tests: a chain that changes nothing
        return images_u8
    level = _uniform(0.1, severity)
    sign = 1.0 if float(torch.rand(())) < 0.5 else -1.0
    width = images_u8.shape[-1]
    bilinear = InterpolationMode.BILINEAR
    if name == "autocontrast":
        return TF.autocontrast(images_u8)
    if name == "equalize":
        return TF.equalize(images_u8)
    if name == "posterize":
        return TF.posterize(images_u8, bits=4 - int(level * 4 / 10))
    if name == "solarize":
        return TF.solarize(images_u8, threshold=256 - int(level * 256 / 10))
    if name == "rotate":
        return TF.rotate(images_u8, angle=sign * int(level * 30 / 10), interpolation=bilinear)
    if name in ("shear_x", "shear_y"):
        degrees = math.degrees(math.atan(sign * level * 0.3 / 10))
        shear = [degrees, 0.0] if name == "shear_x" else [0.0, degrees]
        return TF.affine(
            images_u8, angle=0.0, translate=[0, 0], scale=1.0, shear=shear,
            interpolation=bilinear,
        )  # fmt: skip
    if name in ("translate_x", "translate_y"):
        pixels = int(sign * int(level * (width / 3) / 10))
        move = [pixels, 0] if name == "translate_x" else [0, pixels]
        return TF.affine(
            images_u8, angle=0.0, translate=move, scale=1.0, shear=[0.0, 0.0],
            interpolation=bilinear,
        )  # fmt: skip
    raise ValueError(f"unknown AugMix op {name!r}")


def _dirichlet(alpha: float, n: int, k: int, generator: torch.Generator) -> Tensor:
    concentration = torch.full((n, k), float(alpha), device=generator.device)
    return torch._sample_dirichlet(concentration, generator=generator)


def augmix(
    images_u8: Tensor,
    generator: torch.Generator,
    *,
    severity: int = 3,
    width: int = 3,
    depth: int = -1,
    alpha: float = 1.0,
    chunk: int = 16,
    ops: tuple[str, ...] = AUGMIX_OPS,
    style: Callable[[Tensor], Tensor] | None = None,
    return_weights: bool = False,
) -> Tensor | tuple[Tensor, Tensor, Tensor]:
    """One AugMix view of a uint8 batch, float in [0, 1]; with `return_weights` also (m, w).

    `style` (uint8 -> uint8) adds the op `fourier_style` to the list. Chains stay uint8 (the
    posterize/solarize thresholds are uint8 levels); the mixing is done in float."""
    n = images_u8.shape[0]
    m = _dirichlet(alpha, n, 2, generator)[:, 1]  # Beta(alpha, alpha) as a 2-way Dirichlet
    w = _dirichlet(alpha, n, width, generator)
    names = ops + ((STYLE_OP,) if style is not None else ())
    mixed = torch.zeros(images_u8.shape, dtype=torch.float32, device=images_u8.device)
    for branch in range(width):
        parts = []
        for start in range(0, n, chunk):
            x = images_u8[start : start + chunk]
            steps = depth if depth > 0 else int(torch.randint(1, 4, ()))
            for _ in range(steps):
                name = names[int(torch.randint(len(names), ()))]
                x = (
                    style(x)
                    if name == STYLE_OP and style is not None
                    else apply_op(name, x, severity)
                )
            parts.append(x)
        mixed += w[:, branch, None, None, None] * torch.cat(parts).float().div_(255.0)
    clean = images_u8.float().div_(255.0)
    out = (1.0 - m)[:, None, None, None] * clean + m[:, None, None, None] * mixed
    return (out, m, w) if return_weights else out


def jsd_consistency(logits_clean: Tensor, logits_a: Tensor, logits_b: Tensor) -> Tensor:
    """Jensen-Shannon divergence of the three predictions (AugMix's consistency loss), in
    float32 even under bf16 autocast."""
    p = [F.softmax(x.float(), dim=1) for x in (logits_clean, logits_a, logits_b)]
    mixture = torch.clamp((p[0] + p[1] + p[2]) / 3.0, 1e-7, 1.0).log()
    return sum(F.kl_div(mixture, q, reduction="batchmean") for q in p) / 3.0  # type: ignore[return-value]


def cutmix(
    images: Tensor, labels: Tensor, num_classes: int, *, alpha: float, prob: float
) -> tuple[Tensor, Tensor]:
    """(images, soft targets (N, K)): torchvision's CutMix with probability `prob`, else the
    batch unchanged with one-hot targets."""
    from torchvision.transforms import v2

    if float(torch.rand(())) >= prob:
        return images, F.one_hot(labels, num_classes).to(torch.float32)
    mixed: Tensor
    soft: Tensor
    mixed, soft = v2.CutMix(alpha=alpha, num_classes=num_classes)(images, labels)
    return mixed, soft.to(torch.float32)


def fourier_amplitude_mix(x: Tensor, style: Tensor, lam: Tensor) -> Tensor:
    """x's phase with the amplitude (1-λ)|F_x| + λ|F_style| per channel; float, unclamped.
    `lam` is one value per image (N,)."""
    spectrum = torch.fft.fft2(x.float())
    amplitude = torch.fft.fft2(style.float()).abs()
    weight = lam.float()[:, None, None, None]
    mixed = (1.0 - weight) * spectrum.abs() + weight * amplitude
    out: Tensor = torch.fft.ifft2(torch.polar(mixed, spectrum.angle())).real
    return out


def fourier_style(
    images_u8: Tensor,
    bank_u8: Tensor,
    generator: torch.Generator,
    *,
    strength: tuple[float, float] = (0.5, 1.0),
) -> Tensor:
    """Each uint8 image restyled toward a random image of `bank_u8` (the failures of C)."""
    n = images_u8.shape[0]
    rows = torch.randint(0, bank_u8.shape[0], (n,), generator=generator, device=bank_u8.device)
    low, high = strength
    lam = low + (high - low) * torch.rand(n, generator=generator, device=images_u8.device)
    out = fourier_amplitude_mix(images_u8.float() / 255.0, bank_u8[rows].float() / 255.0, lam)
    return out.clamp_(0.0, 1.0).mul_(255.0).round_().to(torch.uint8)
