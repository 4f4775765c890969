"""DARTS bilevel architecture search: weights on "train", alphas on "val", alternating.

Each step draws one train batch and one val batch (seeded), takes one weight step and
one alpha step, and checks for cancellation. State is saved at every epoch end when a
`state_path` is given, and a later call with the same path resumes from it exactly.

The other strategies are settings of this one loop: PC-DARTS's weights-only warm-up
(`warmup_epochs`; its partial channels and edge normalisation are `SearchConfig`
options), RobustDARTS's eigenvalue tracking and early stop (`hessian_every`,
`early_stop`) and its regularised variant's scheduled drop path (`drop_path_prob`,
with a larger `weight_decay`). Every epoch records the skip connections of the normal
cell, the collapse guard's signal.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch

from repair_core.datasets.ops import data_fingerprint
from repair_core.datasets.types import ImageDataset
from repair_core.device import resolve_device
from repair_core.errors import RepairInputError
from repair_core.precision import to_channels_last
from repair_core.progress import CancelToken, Progress, ProgressCallback, ignore_progress
from repair_core.rng import seeded_generator
from repair_core.search.batches import EpochBatches
from repair_core.search.collapse import skip_count
from repair_core.search.dartspt import select_architecture, tuning_epochs
from repair_core.search.early_stop import early_stop_epoch
from repair_core.search.epoch import run_epoch
from repair_core.search.genotype import Genotype
from repair_core.search.hessian import dominant_eigenvalue
from repair_core.search.record import EpochRecord
from repair_core.search.search_state import load_search_state, save_search_state
from repair_core.search.settings import SearchSettings
from repair_core.search.supernet import SearchConfig, SuperNet
from repair_core.train.fastpath import compile_forward, make_sgd
from repair_core.train.schedule import cosine_lr


@dataclass(frozen=True)
class SearchResult:
    genotype: Genotype
    alphas_normal: torch.Tensor  # (edges, primitives), CPU, detached
    alphas_reduce: torch.Tensor
    history: tuple[EpochRecord, ...]
    stopped_epoch: int | None = None  # 1-based epoch whose architecture early stop returned
    # DARTS-PT: its decisions (with the removal scores behind them) and the argmax genotype.
    perturbation: dict[str, Any] | None = None
    fast_path: dict[str, str] = field(default_factory=dict)  # how steps ran, fallback reasons


def _check_data(train: ImageDataset, val: ImageDataset, config: SearchConfig) -> None:
    for name, data in (("train", train), ("val", val)):
        if len(data) == 0:
            raise RepairInputError(f"search {name} set is empty")
        if data.image_shape[0] != config.in_channels:
            raise RepairInputError(
                f"search {name} images have {data.image_shape[0]} channels; "
                f"the supernet expects {config.in_channels}"
            )
        if len(data.class_names) > config.num_classes:
            raise RepairInputError(
                f"search {name} set has {len(data.class_names)} classes; "
                f"the supernet has {config.num_classes} outputs"
            )
    if train.image_shape != val.image_shape:
        raise RepairInputError(
            f"train images are {train.image_shape} but val images are {val.image_shape}"
        )


def _fingerprint(
    train: ImageDataset, val: ImageDataset, config: SearchConfig, settings: SearchSettings
) -> str:
    # What a resumed run must share with the one that saved the state. `epochs` may grow:
    # a finished search continued for more epochs refines W and alpha further (paper §4.7);
    # the speed switches may change.
    # Fields added after states were first written count only when set, so those states
    # still resume.
    relevant = {
        k: v
        for k, v in asdict(settings).items()
        if k not in _SPEED_SETTINGS and not (k in _LATER_SETTINGS and v == _DEFAULTS[k])
    }
    net = {
        k: v
        for k, v in config.to_dict().items()
        if not (k in _LATER_CONFIG and v == getattr(_DEFAULT_CONFIG, k))
    }
    data = {"train": data_fingerprint(train), "val": data_fingerprint(val)}
    return json.dumps({"config": net, "settings": relevant, "data": data})


# How steps run, not what they compute: a run may resume with these changed.
_SPEED_SETTINGS = ("report_every", "epochs", "compile", "fused_optimizer")
_DEFAULTS = asdict(SearchSettings())
_LATER_SETTINGS = (
    "warmup_epochs", "drop_path_prob", "hessian_every", "power_iters", "early_stop",
    "es_window", "es_delta", "es_factor", "es_start_epoch", "max_skip_normal",
    "projection", "proj_interval", "proj_lr", "proj_steps_per_epoch", "proj_eval_batches",
)  # fmt: skip
_DEFAULT_CONFIG = SearchConfig()
_LATER_CONFIG = ("partial_channels", "edge_normalization")


def search(
    train: ImageDataset,
    val: ImageDataset,
    config: SearchConfig,
    settings: SearchSettings,
    *,
    device: torch.device | str,
    on_progress: ProgressCallback = ignore_progress,
    cancel: CancelToken | None = None,
    state_path: Path | None = None,
) -> SearchResult:
    """Run (or resume) the search; raises `RepairCancelled` when `cancel` fires."""
    dev = resolve_device(device) if isinstance(device, str) else device
    _check_data(train, val, config)
    generator = seeded_generator(settings.seed)
    model = SuperNet(config, generator=generator).to(dev)
    if settings.channels_last:
        to_channels_last(model)
    compiled = compile_forward(model, enabled=settings.compile, what="search forward")
    weight_opt = make_sgd(
        model.weight_parameters(),
        lr=settings.lr,
        momentum=settings.momentum,
        weight_decay=settings.weight_decay,
        fused=settings.fused_optimizer,
        device=dev,
    )
    alpha_opt = torch.optim.Adam(
        model.arch_parameters(),
        lr=settings.arch_lr,
        betas=settings.arch_betas,
        weight_decay=settings.arch_weight_decay,
    )
    # Drop path masks come from their own generator: the batch draws stay those of DARTS.
    drop_gen = None
    if settings.drop_path_prob > 0:
        drop_gen = torch.Generator(device=dev).manual_seed(settings.seed + 1)
        model.drop_generator = drop_gen
    fingerprint = _fingerprint(train, val, config, settings)
    start, history, extra = 0, list[dict[str, Any]](), dict[str, Any]()
    if state_path is not None and state_path.exists():
        start, history, extra = load_search_state(
            state_path,
            model=model,
            weight_optimizer=weight_opt,
            alpha_optimizer=alpha_opt,
            generator=generator,
            fingerprint=fingerprint,
        )
        if drop_gen is not None and "drop_generator" in extra:
            drop_gen.set_state(extra["drop_generator"])
    snapshots: list[list[torch.Tensor]] = list(extra.get("arch_snapshots", []))
    stopped: int | None = extra.get("stopped")
    if "projection" in extra and start < settings.epochs:
        raise RepairInputError(
            f"search state {state_path} is in DARTS-PT's selection after {start} epochs: "
            f"it cannot continue for {settings.epochs}"
        )

    def state_extra() -> dict[str, Any]:
        out: dict[str, Any] = {"stopped": stopped}
        if drop_gen is not None:
            out["drop_generator"] = drop_gen.get_state()
        if settings.early_stop:
            out["arch_snapshots"] = snapshots
        return out

    train_bs, val_bs = min(settings.batch_size, len(train)), min(settings.batch_size, len(val))
    steps = settings.steps_per_epoch or max(1, len(train) // train_bs)
    search_total = settings.epochs * steps
    total = search_total
    if settings.projection:
        total += tuning_epochs(config.steps, settings.proj_interval) * (
            settings.proj_steps_per_epoch or steps
        )
    train_dev, val_dev = train.to(dev), val.to(dev)
    # A search stopped early stays stopped, also when continued for more epochs.
    for epoch in range(start, settings.epochs if stopped is None else start):
        lr = cosine_lr(epoch, settings.epochs, settings.lr, settings.lr_min)
        for group in weight_opt.param_groups:
            group["lr"] = lr
        batches = EpochBatches(
            train_dev, val_dev, steps, train_bs, val_bs, settings.augment, generator,
            channels_last=settings.channels_last,
        )  # fmt: skip
        model.drop_path_prob = settings.drop_path_prob * epoch / max(1, settings.epochs - 1)
        try:
            loss, val_loss, acc = run_epoch(
                model, weight_opt, alpha_opt, batches, settings,
                first_step=epoch * steps, steps=steps, total=total, batch_size=train_bs,
                on_progress=on_progress, cancel=cancel, extra={"epoch": epoch + 1.0, "lr": lr},
                arch_step=epoch >= settings.warmup_epochs,
            )  # fmt: skip
        finally:
            model.drop_path_prob = 0.0
        eigenvalue = _eigenvalue(model, batches, steps, settings, epoch)
        uncapped = model.genotype()
        genotype = model.genotype(settings.max_skip_normal)
        record = EpochRecord(
            epoch + 1, lr, loss, val_loss, acc, genotype,
            eigenvalue=eigenvalue, skip_normal=skip_count(uncapped),
            alphas_normal=_weights(model.alphas_normal),
            alphas_reduce=_weights(model.alphas_reduce),
        )  # fmt: skip
        history.append(record.to_dict())
        if settings.early_stop:
            snapshots.append([a.detach().cpu().clone() for a in model.arch_parameters()])
        if eigenvalue is not None:
            on_progress(
                Progress(
                    "searching",
                    (epoch + 1) * steps,
                    total,
                    {
                        "epoch": epoch + 1.0,
                        "eigenvalue": eigenvalue,
                        "skip_normal": float(record.skip_normal),
                    },
                )
            )
            if settings.early_stop and epoch != settings.epochs - 1:
                series = [
                    (h["epoch"] - 1, h["eigenvalue"])
                    for h in history
                    if h.get("eigenvalue") is not None
                ]
                stopped = early_stop_epoch(series, settings.early_stop_rule)
        if state_path is not None:
            save_search_state(
                state_path,
                model=model,
                weight_optimizer=weight_opt,
                alpha_optimizer=alpha_opt,
                generator=generator,
                epoch=epoch + 1,
                history=history,
                fingerprint=fingerprint,
                extra=state_extra(),
            )
        if stopped is not None:
            on_progress(Progress("searching", total, total, {"stopped_epoch": stopped + 1.0}))
            break
    records = tuple(EpochRecord.from_dict(h) for h in history)
    if stopped is not None:
        alphas = snapshots[stopped]
        return SearchResult(
            genotype=records[stopped].genotype,
            alphas_normal=alphas[0],
            alphas_reduce=alphas[1],
            history=records,
            stopped_epoch=stopped + 1,
            fast_path=compiled.report(),
        )
    perturbation = None
    if settings.projection:

        def save_phase(phase: dict[str, Any]) -> None:
            if state_path is not None:
                save_search_state(
                    state_path, model=model, weight_optimizer=weight_opt,
                    alpha_optimizer=alpha_opt, generator=generator, epoch=settings.epochs,
                    history=history, fingerprint=fingerprint,
                    extra={**state_extra(), "projection": phase},
                )  # fmt: skip

        phase = select_architecture(
            model, alpha_opt, train_dev, val_dev, settings,
            generator=generator, history=history, saved=extra.get("projection"),
            save=save_phase, first_step=search_total, total=total,
            on_progress=on_progress, cancel=cancel,
        )  # fmt: skip
        records = tuple(EpochRecord.from_dict(h) for h in history)
        perturbation = {
            "decisions": list(phase.decisions),
            "argmax_genotype": Genotype.from_json(phase.argmax_genotype).to_dict(),
        }
    return SearchResult(
        genotype=model.genotype(settings.max_skip_normal),
        alphas_normal=model.alphas_normal.detach().cpu().clone(),
        alphas_reduce=model.alphas_reduce.detach().cpu().clone(),
        history=records,
        perturbation=perturbation,
        fast_path=compiled.report(),
    )


def _weights(alphas: torch.Tensor) -> list[list[float]]:
    # Once per epoch: a host sync of (edges x primitives) numbers.
    weights: list[list[float]] = torch.softmax(alphas.detach().float(), dim=-1).cpu().tolist()
    return weights


def _eigenvalue(
    model: SuperNet, batches: EpochBatches, steps: int, settings: SearchSettings, epoch: int
) -> float | None:
    """RobustDARTS's eigenvalue at this epoch's end, on its last val batch, when due."""
    every = settings.hessian_every
    if every == 0 or not (epoch % every == 0 or epoch == settings.epochs - 1):
        return None
    # Its own generator, seeded by epoch: no draw from the search generator, so tracking
    # leaves the search unchanged and a resumed run draws the same start vector.
    start_vector = torch.Generator().manual_seed(settings.seed * 100_003 + epoch)
    x, y = batches.val(steps - 1)
    return dominant_eigenvalue(
        model, x.float(), y, iters=settings.power_iters, generator=start_vector
    )
