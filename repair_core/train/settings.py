"""Retraining settings: the DARTS evaluation protocol as defaults, every value overridable."""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

from repair_core.choices import AUGMENTATION_CHOICES
from repair_core.errors import RepairInputError


@dataclass(frozen=True)
class TrainSettings:
    """DARTS evaluation protocol (Liu et al. 2019, CIFAR-10) as defaults; all overridable."""

    epochs: int = 600  # full passes over the training set
    batch_size: int = 96  # images per SGD step
    lr: float = 0.025  # initial SGD learning rate, cosine-annealed per epoch ...
    lr_min: float = 0.0  # ... down to this at the end of `epochs`
    momentum: float = 0.9
    weight_decay: float = 3e-4  # L2 penalty on all parameters, as DARTS applies it
    grad_clip: float = 5.0  # max global L2 norm of the gradients per step
    cutout_length: int = 16  # px, side of the cutout square; 0 disables (16 is for 32x32)
    crop_padding: int = 4  # px of zero padding before the random crop; 0 disables
    flip: bool = True  # random horizontal flip with probability 1/2
    drop_path_prob: float = 0.2  # final drop-path probability, ramped as prob * epoch / epochs
    auxiliary_weight: float = 0.4  # weight of the auxiliary head's loss (when there is one)
    label_smoothing: float = 0.0  # cross-entropy label smoothing, in [0, 1)
    seed: int = 0  # seeds data order, augmentation, and the model's dropout / drop path
    bf16: bool = False  # bfloat16 autocast; CUDA only, ignored on CPU
    channels_last: bool = False  # NHWC memory format; CUDA only, ignored on CPU
    # Speed switches (see `train.fastpath`); each falls back to eager where it cannot work.
    compile: bool = False  # torch.compile (inductor) of the forward + backward
    cuda_graph: bool = False  # the whole step as one CUDA graph (CUDA, standard augmentation)
    fused_optimizer: bool = False  # SGD as one fused kernel (CUDA only)
    report_every_steps: int = 50  # steps between progress reports (each is one host sync)
    eval_batch_size: int = 256  # images per forward pass when measuring eval accuracy
    # "standard": crop, flip, cutout (the DARTS protocol). The baselines replace cutout with
    # CutMix, or with AugMix views and the JSD loss ("fourier-style": AugMix whose op list
    # also restyles toward failure images), see `train.mixing`.
    augmentation: str = "standard"
    augmix_severity: int = 3  # op level ~ U(0.1, severity), 1..10
    augmix_width: int = 3  # chains mixed per view
    augmix_depth: int = -1  # ops per chain; -1: uniform in 1..3
    augmix_alpha: float = 1.0  # Beta/Dirichlet concentration of the mixing weights
    augmix_chunk: int = 16  # images that share one drawn op chain
    jsd_weight: float = 12.0  # weight of the Jensen-Shannon consistency loss
    cutmix_alpha: float = 1.0  # Beta(alpha, alpha) of the kept area
    cutmix_prob: float = 0.5  # probability a batch is cut-mixed
    style_strength_min: float = 0.5  # λ ~ U(min, max): how far the amplitude moves to the style
    style_strength_max: float = 1.0

    def __post_init__(self) -> None:
        problems = []
        for name in ("epochs", "batch_size", "eval_batch_size"):
            if getattr(self, name) < 1:
                problems.append(f"{name} must be >= 1")
        for name in ("lr", "lr_min", "momentum", "weight_decay", "grad_clip", "auxiliary_weight"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value >= 0):
                problems.append(f"{name} must be a finite number >= 0")
        for name in ("cutout_length", "crop_padding", "report_every_steps"):
            if getattr(self, name) < 0:
                problems.append(f"{name} must be >= 0")
        if not 0.0 <= self.drop_path_prob < 1.0:
            problems.append("drop_path_prob must be in [0, 1)")
        if not 0.0 <= self.label_smoothing < 1.0:
            problems.append("label_smoothing must be in [0, 1)")
        if self.augmentation not in AUGMENTATION_CHOICES:
            problems.append(f"augmentation must be one of {', '.join(AUGMENTATION_CHOICES)}")
        if not 1 <= self.augmix_severity <= 10:
            problems.append("augmix_severity must be in [1, 10]")
        for name in ("augmix_width", "augmix_chunk"):
            if getattr(self, name) < 1:
                problems.append(f"{name} must be >= 1")
        if self.augmix_depth == 0 or self.augmix_depth < -1:
            problems.append("augmix_depth must be -1 (random 1..3) or >= 1")
        for name in ("augmix_alpha", "cutmix_alpha"):
            if not (math.isfinite(getattr(self, name)) and getattr(self, name) > 0):
                problems.append(f"{name} must be a finite number > 0")
        if not (math.isfinite(self.jsd_weight) and self.jsd_weight >= 0):
            problems.append("jsd_weight must be a finite number >= 0")
        for name in ("cutmix_prob", "style_strength_min", "style_strength_max"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                problems.append(f"{name} must be in [0, 1]")
        if self.style_strength_min > self.style_strength_max:
            problems.append("style_strength_min must be <= style_strength_max")
        if problems:
            raise RepairInputError("invalid TrainSettings: " + "; ".join(problems))

    def scaled_to(self, image_size: int) -> TrainSettings:
        """Scale the size-dependent augmentation (crop padding, cutout) from 32 px images."""
        scale = image_size / 32
        return dataclasses.replace(
            self,
            crop_padding=round(self.crop_padding * scale),
            cutout_length=round(self.cutout_length * scale),
        )
