"""Retraining: train a network from scratch with the DARTS evaluation protocol, resumably.

Used for stage 3 of a repair (the searched genotype's network on D_train, or D_train ∪ C for
CF-DARTSE) and equally for training a deployed model phi0. The loop follows airbench rather
than a DataLoader: the uint8 training set is moved to the device once and each batch is
gathered, augmented and converted there, so a GPU is never waiting on Python workers.

Per step there is no host sync: loss and correct counts accumulate on the device and are read
only when progress is reported. At every epoch end the full state is written atomically and a
later call with the same `state_path` continues from it bit-identically (on CPU; cuDNN kernels
may not be deterministic).

Batching: each epoch draws a seeded permutation and takes `len(train) // batch_size` full
batches; the last partial batch is always dropped (a fresh permutation every epoch means no
image is dropped every time). That keeps every step's shape equal and avoids batch-norm
failing on a batch of one. A training set smaller than `batch_size` is one batch.
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.nn import functional as F

from repair_core.datasets.ops import data_fingerprint
from repair_core.datasets.types import ImageDataset
from repair_core.errors import RepairInputError
from repair_core.evaluation.accuracy import accuracy
from repair_core.precision import autocast
from repair_core.progress import CancelToken, Progress, ProgressCallback, ignore_progress
from repair_core.train.augment import augment_batch, random_crop, random_flip
from repair_core.train.fastpath import CompiledCall, CudaGraphStep, make_sgd
from repair_core.train.mixing import augmix, cutmix, fourier_style, jsd_consistency
from repair_core.train.schedule import cosine_lr
from repair_core.train.settings import TrainSettings
from repair_core.train.state import capture_rng, resume_train_state, save_train_state, seed_rng

__all__ = ["TrainResult", "TrainingDiverged", "train_model"]

STAGE = "retraining"


@dataclass(frozen=True)
class TrainResult:
    # One dict per epoch: epoch (1-based), lr, drop_path_prob, loss (mean training loss incl.
    # the auxiliary term), train_acc and eval_acc (fractions in [0, 1]; eval_acc only with an
    # eval set), seconds (wall time incl. evaluation), images_per_second (training only).
    history: list[dict[str, float]]
    resumed_from_epoch: int  # epochs already done in the state file this call started from
    # How steps ran: {"loss": "eager" | "compile", "step": "eager" | "cuda-graph"}, plus
    # "<part>_fallback": why a switch that was asked for fell back to eager.
    fast_path: dict[str, str] = field(default_factory=dict)


class TrainingDiverged(RuntimeError):
    """The training loss became NaN or infinite; the last good state file is kept."""


def train_model(
    model: nn.Module,
    train: ImageDataset,
    settings: TrainSettings,
    *,
    device: torch.device | str,
    state_path: Path | None = None,
    on_progress: ProgressCallback = ignore_progress,
    cancel: CancelToken | None = None,
    eval_set: ImageDataset | None = None,
    style_images: ImageDataset | None = None,
) -> TrainResult:
    """Train `model` in place on `train`; resume from `state_path` when that file exists.

    Uses `model.forward_with_aux(x) -> (logits, aux | None)` when the model has it (and the
    auxiliary weight is not 0), else `model(x) -> logits`; sets `model.drop_path_prob` each
    epoch when the model has that attribute, and lends it a seeded `drop_path_generator` when
    it has that one. The caller's global RNG state is left unchanged. `style_images` (the
    failures of C) is the style bank of `augmentation="fourier-style"`, required by it only.
    Returns with the model on `device`, in eval mode, in the default memory format.
    """
    device = torch.device(device)
    if len(train) < 2:
        raise RepairInputError(f"training set has {len(train)} images; at least 2 are needed")
    if eval_set is not None and eval_set.class_names != train.class_names:
        raise RepairInputError("eval_set has other class names than the training set")
    if eval_set is not None and len(eval_set) == 0:
        raise RepairInputError("eval_set is empty: give at least one image or no eval_set")
    if (settings.augmentation == "fourier-style") != (style_images is not None):
        raise RepairInputError(
            "style_images are needed by, and only by, augmentation='fourier-style'"
        )
    if style_images is not None and (
        len(style_images) == 0 or style_images.image_shape != train.image_shape
    ):
        raise RepairInputError("style_images must be non-empty and shaped like the training set")
    on_cuda = device.type == "cuda"
    callers_drop_path_generator = getattr(model, "drop_path_generator", None)
    loop = _Loop(
        model=model.to(device),
        data=train.to(device),
        eval_data=eval_set.to(device) if eval_set is not None else None,
        style=style_images.to(device) if style_images is not None else None,
        settings=settings,
        device=device,
        bf16=settings.bf16 and on_cuda,
        channels_last=settings.channels_last and on_cuda,
    )
    forked: list[int] = []
    if on_cuda:
        forked = [device.index if device.index is not None else torch.cuda.current_device()]
    try:
        with torch.random.fork_rng(devices=forked):
            resumed_from = loop.start(state_path)
            loop.run(state_path, on_progress, cancel)
    finally:
        if "drop_path" in loop.generators:
            setattr(model, "drop_path_generator", callers_drop_path_generator)  # noqa: B010
    model.eval()
    if loop.channels_last:
        model.to(memory_format=torch.contiguous_format)
    return TrainResult(
        history=loop.history, resumed_from_epoch=resumed_from, fast_path=loop.fast_path
    )


class _Loop:
    """The training loop's live state; private so the public surface stays one function."""

    def __init__(
        self,
        *,
        model: nn.Module,
        data: ImageDataset,
        eval_data: ImageDataset | None,
        style: ImageDataset | None,
        settings: TrainSettings,
        device: torch.device,
        bf16: bool,
        channels_last: bool,
    ) -> None:
        self.model, self.data, self.eval_data, self.style = model, data, eval_data, style
        self.settings, self.device = settings, device
        self.bf16, self.channels_last = bf16, channels_last
        if channels_last:
            model.to(memory_format=torch.channels_last)
        self.batch_size = min(settings.batch_size, len(data))
        self.steps_per_epoch = len(data) // self.batch_size
        self.total_steps = self.steps_per_epoch * settings.epochs
        forward_with_aux = getattr(model, "forward_with_aux", None)
        self.forward_with_aux: Callable[[torch.Tensor], tuple[torch.Tensor, Any]] | None = (
            forward_with_aux
            if settings.auxiliary_weight > 0 and callable(forward_with_aux)
            else None
        )
        self.optimizer = make_sgd(
            model.parameters(),
            lr=settings.lr,
            momentum=settings.momentum,
            weight_decay=settings.weight_decay,
            fused=settings.fused_optimizer,
            device=device,
        )
        self.loss_fn = CompiledCall(self._loss, enabled=settings.compile, what="retraining step")
        self.generator = torch.Generator(device=device)  # data order and augmentation
        self.generators = {"data": self.generator}
        if hasattr(model, "drop_path_generator"):
            # The model draws drop-path masks from this attribute (global RNG when None). The
            # loop installs its own so it is seeded and checkpointed with the other streams;
            # `train_model` puts the caller's value back afterwards.
            self.generators["drop_path"] = torch.Generator(device=device)
            setattr(model, "drop_path_generator", self.generators["drop_path"])  # noqa: B010
        # With a style bank the state is tied to it too: a resume with another bank is refused.
        self.fingerprint = data_fingerprint(data)
        if style is not None:
            self.fingerprint = {**self.fingerprint, "style": data_fingerprint(style)}
        self.epoch = 0
        self.history: list[dict[str, float]] = []
        # Only the standard augmentation keeps every step's shapes and host-side branches
        # fixed, which a replayed graph needs; the mixing baselines always run eager.
        self.graph_step = CudaGraphStep(
            self._optimise,
            enabled=settings.cuda_graph,
            device=device,
            generators=[self.generators["drop_path"]] if "drop_path" in self.generators else [],
            owners=[model, self.optimizer],
            what="retraining step",
        )
        if settings.cuda_graph and settings.augmentation != "standard":
            self.graph_step.disable(f"augmentation {settings.augmentation!r} varies per step")

    @property
    def fast_path(self) -> dict[str, str]:
        """How steps run ("eager", "compile", "cuda-graph") and why a switch fell back."""
        out = self.loss_fn.report("loss")
        out["step"] = self.graph_step.mode
        if self.graph_step.fallback_reason:
            out["step_fallback"] = self.graph_step.fallback_reason
        return out

    def start(self, state_path: Path | None) -> int:
        """Seed a fresh run, or load the state file; return the epochs already done."""
        if state_path is None or not state_path.exists():
            seed_rng(self.settings.seed, self.generators, self.device)
            return 0
        self.epoch, self.history = resume_train_state(
            state_path,
            model=self.model,
            optimizer=self.optimizer,
            generators=self.generators,
            settings=dataclasses.asdict(self.settings),
            fingerprint=self.fingerprint,
            device=self.device,
        )
        return self.epoch

    def run(
        self, state_path: Path | None, on_progress: ProgressCallback, cancel: CancelToken | None
    ) -> None:
        on_progress(Progress(STAGE, self.epoch * self.steps_per_epoch, self.total_steps, {}))
        while self.epoch < self.settings.epochs:
            record = self._train_epoch(on_progress, cancel)
            self.epoch += 1
            self.history.append(record)
            if state_path is not None:
                save_train_state(state_path, self._state())
            step = self.epoch * self.steps_per_epoch
            on_progress(Progress(STAGE, step, self.total_steps, record))

    def _train_epoch(
        self, on_progress: ProgressCallback, cancel: CancelToken | None
    ) -> dict[str, float]:
        settings, model = self.settings, self.model
        started = time.perf_counter()
        # Per-epoch cosine annealing, from the epoch alone (nothing to restore on resume).
        lr = cosine_lr(self.epoch, settings.epochs, settings.lr, settings.lr_min)
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        drop_path_prob = settings.drop_path_prob * self.epoch / settings.epochs
        if hasattr(model, "drop_path_prob"):
            # setattr: nn.Module's typing forbids assigning a float to an unknown attribute.
            setattr(model, "drop_path_prob", drop_path_prob)  # noqa: B010
        self.graph_step.invalidate()  # lr and drop path are baked into a captured graph
        model.train()
        # Running sums stay on the device; reading them is the only host sync.
        loss_sum = torch.zeros((), device=self.device)
        correct = torch.zeros((), dtype=torch.int64, device=self.device)
        order = torch.randperm(len(self.data), generator=self.generator, device=self.device)
        reported_at, reported_images = started, 0
        for index in range(self.steps_per_epoch):
            if cancel is not None:
                cancel.check()
            batch = order[index * self.batch_size : (index + 1) * self.batch_size]
            loss, logits, labels = self._step(batch)
            loss_sum += loss.detach() * labels.shape[0]
            correct += (logits.detach().argmax(1) == labels).sum()
            done = index + 1
            every = settings.report_every_steps
            if every and done % every == 0 and done < self.steps_per_epoch:
                seen = done * self.batch_size
                mean_loss = float(loss_sum) / seen  # host sync, only when reporting
                now = time.perf_counter()
                speed = (seen - reported_images) / max(now - reported_at, 1e-9)
                reported_at, reported_images = now, seen
                metrics = {
                    "epoch": float(self.epoch + 1),
                    "loss": mean_loss,
                    "train_acc": int(correct) / seen,
                    "lr": lr,
                    "images_per_second": speed,
                }
                step = self.epoch * self.steps_per_epoch + done
                on_progress(Progress(STAGE, step, self.total_steps, metrics))
        seen = self.steps_per_epoch * self.batch_size
        mean_loss = float(loss_sum) / seen
        train_seconds = time.perf_counter() - started
        if not math.isfinite(mean_loss):
            raise TrainingDiverged(
                f"training loss is {mean_loss} in epoch {self.epoch + 1}; "
                "lower the learning rate or check the data"
            )
        record = {
            "epoch": float(self.epoch + 1),
            "lr": lr,
            "drop_path_prob": drop_path_prob,
            "loss": mean_loss,
            "train_acc": int(correct) / seen,
            "images_per_second": seen / max(train_seconds, 1e-9),
        }
        if self.eval_data is not None:
            record["eval_acc"] = accuracy(
                model, self.eval_data,
                batch_size=settings.eval_batch_size, device=self.device,
                bf16=self.bf16, channels_last=self.channels_last,
            )  # fmt: skip
        record["seconds"] = time.perf_counter() - started
        return record

    def _step(self, batch: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        settings = self.settings
        labels = self.data.labels[batch]
        if settings.augmentation != "standard":
            images, targets = self._mixed_batch(batch)
            return self._optimise(images, targets, labels)
        images = augment_batch(
            self.data.images[batch],
            padding=settings.crop_padding,
            flip=settings.flip,
            cutout_length=settings.cutout_length,
            generator=self.generator,
        )
        return self.graph_step(images, labels, labels)  # type: ignore[no-any-return]

    def _mixed_batch(self, batch: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """A baseline's (images, targets): crop and flip as usual, then CutMix (soft
        targets), or the clean batch and two AugMix views stacked (3N images, N labels)."""
        settings = self.settings
        images_u8 = random_crop(self.data.images[batch], settings.crop_padding, self.generator)
        if settings.flip:
            images_u8 = random_flip(images_u8, self.generator)
        labels = self.data.labels[batch]
        if settings.augmentation == "cutmix":
            return cutmix(
                images_u8.float().div_(255.0), labels, len(self.data.class_names),
                alpha=settings.cutmix_alpha, prob=settings.cutmix_prob,
            )  # fmt: skip
        style = None
        if self.style is not None:
            bank = self.style.images
            strength = (settings.style_strength_min, settings.style_strength_max)

            def style(x: torch.Tensor) -> torch.Tensor:
                return fourier_style(x, bank, self.generator, strength=strength)

        views = [
            augmix(
                images_u8, self.generator, severity=settings.augmix_severity,
                width=settings.augmix_width, depth=settings.augmix_depth,
                alpha=settings.augmix_alpha, chunk=settings.augmix_chunk, style=style,
            )
            for _ in range(2)
        ]  # fmt: skip
        return torch.cat([images_u8.float().div_(255.0), *views]), labels  # type: ignore[list-item]

    def _optimise(
        self, images: torch.Tensor, targets: torch.Tensor, labels: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """One SGD step. `images` holds N = len(labels) images, or 3N (clean, AugMix view,
        AugMix view): then CE is on the clean third and the JSD of the three is added.
        `targets`: class indices or soft targets (CutMix). Returns (loss, clean logits,
        labels)."""
        settings = self.settings
        n = labels.shape[0]
        if self.channels_last:
            images = images.contiguous(memory_format=torch.channels_last)
        loss, logits = self.loss_fn(images, targets, n)
        self.optimizer.zero_grad(set_to_none=True)
        torch.autograd.backward(loss)
        nn.utils.clip_grad_norm_(self.model.parameters(), settings.grad_clip)
        self.optimizer.step()
        return loss, logits[:n], labels

    def _loss(
        self, images: torch.Tensor, targets: torch.Tensor, n: int
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """(training loss, logits): the part of the step torch.compile takes (it compiles the
        backward with it)."""
        settings = self.settings
        with autocast(self.device, self.bf16):
            aux: torch.Tensor | None = None
            if self.forward_with_aux is not None:
                logits, aux = self.forward_with_aux(images)
            else:
                logits = self.model(images)
            smoothing = settings.label_smoothing
            loss = F.cross_entropy(logits[:n], targets, label_smoothing=smoothing)
            if logits.shape[0] > n:
                views = logits[n : 2 * n], logits[2 * n :]
                loss = loss + settings.jsd_weight * jsd_consistency(logits[:n], *views)
            if aux is not None:
                aux_loss = F.cross_entropy(aux[:n], targets, label_smoothing=smoothing)
                loss = loss + settings.auxiliary_weight * aux_loss
        return loss, logits

    def _state(self) -> dict[str, Any]:
        return {
            "settings": dataclasses.asdict(self.settings),
            "data": self.fingerprint,
            "device_type": self.device.type,
            "epoch": self.epoch,
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "history": self.history,
            "rng": capture_rng(self.generators, self.device),
        }
