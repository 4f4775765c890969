"""DARTS-PT's selection phase: decisions one at a time, the supernet fine-tuned between.

After the supernet's epochs (DARTS as usual), Wang et al. (ICLR 2021) replace argmax-alpha
by perturbation: at each decision point one edge of the normal cell, then one of the
reduction cell, keeps the op whose removal lowers the supernet's validation accuracy most
(`perturbation.choose_op`); once every edge has its op, one node per cell at a time keeps
the two input edges whose removal hurts most (`choose_inputs`). Between two points the
supernet is fine-tuned for `proj_interval` epochs (weights and the alphas of undecided
edges, as in the search) with a fresh SGD at `proj_lr` (the reference: lr / 10),
cosine-annealed over the whole phase.

Order: edges and nodes in a random order, as the reference's `edge_decision=random`, drawn
from the seed alone (the same order on every device and after a resume). The validation
images scored at a point are a seeded draw of `proj_eval_batches` batches of the search's
val set, `D_val ∪ C_v`, which is how the core failure set guides the selection exactly as
it guides the alpha steps; None scores all of it, as the reference does. The reference
tunes one more epoch after its last decision; it cannot change the architecture, so we
stop there. With `max_skip_normal` set, a normal-cell edge may not pick a skip once that
many normal edges have (a bound on the final cell, which only drops edges later).

The phase's state (decisions, scores, fine-tuning epochs, its optimizer) is saved after
every decision point and every fine-tuning epoch through `save`, into the search state.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import torch

from repair_core.datasets.types import ImageDataset
from repair_core.progress import CancelToken, Progress, ProgressCallback
from repair_core.search.batches import EpochBatches
from repair_core.search.collapse import skip_count
from repair_core.search.discretize import num_edges
from repair_core.search.epoch import StepSettings, run_epoch
from repair_core.search.ops import PRIMITIVES
from repair_core.search.perturbation import Batch, Score, choose_inputs, choose_op
from repair_core.search.projection import Projection
from repair_core.search.record import EpochRecord
from repair_core.search.supernet import SuperNet
from repair_core.train.schedule import cosine_lr

_NONE = PRIMITIVES.index("none")
_SKIP = PRIMITIVES.index("skip_connect")


class PhaseSettings(StepSettings, Protocol):
    # What the phase reads of `searcher.SearchSettings` (the searcher imports this module).
    @property
    def seed(self) -> int: ...
    @property
    def epochs(self) -> int: ...
    @property
    def batch_size(self) -> int: ...
    @property
    def momentum(self) -> float: ...
    @property
    def weight_decay(self) -> float: ...
    @property
    def lr_min(self) -> float: ...
    @property
    def augment(self) -> bool: ...
    @property
    def channels_last(self) -> bool: ...
    @property
    def max_skip_normal(self) -> int | None: ...
    @property
    def proj_interval(self) -> int: ...
    @property
    def proj_lr(self) -> float: ...
    @property
    def proj_steps_per_epoch(self) -> int | None: ...
    @property
    def proj_eval_batches(self) -> int | None: ...


Decision = tuple[str, bool, int]  # ("op", reduction, edge row) or ("inputs", reduction, node)


def decision_points(steps: int, seed: int) -> list[tuple[Decision, ...]]:
    """Every decision point in order: (normal-cell decision, reduction-cell decision)."""
    g = torch.Generator().manual_seed(seed * 100_003 + 4_999)
    rows = {red: torch.randperm(num_edges(steps), generator=g).tolist() for red in (False, True)}
    # Node 0 has two inputs only: nothing to choose.
    nodes = {red: (torch.randperm(steps - 1, generator=g) + 1).tolist() for red in (False, True)}
    cells = (False, True)
    points = [tuple(("op", red, rows[red][i]) for red in cells) for i in range(len(rows[False]))]
    points += [tuple(("inputs", red, nodes[red][i]) for red in cells) for i in range(steps - 1)]
    return points


def tuning_epochs(steps: int, interval: int) -> int:
    """Fine-tuning epochs of the whole phase: `interval` between two decision points."""
    return interval * (len(decision_points(steps, 0)) - 1)


class ScoreBatches(Sequence[Batch]):
    """The validation batches of one decision point: a seeded draw, unaugmented, made as
    they are read (a whole val set as floats would be hundreds of MB)."""

    def __init__(self, val: ImageDataset, batch: int, limit: int | None, seed: int,
                 channels_last: bool) -> None:  # fmt: skip
        order = torch.randperm(len(val), generator=torch.Generator().manual_seed(seed))
        if limit is not None:
            order = order[: limit * batch]
        self._val = val
        self._parts = torch.split(order.to(val.images.device), batch)
        self._format = torch.channels_last if channels_last else torch.contiguous_format

    def __len__(self) -> int:
        return len(self._parts)

    def __getitem__(self, i: int) -> Batch:  # type: ignore[override]
        index = self._parts[i]
        x = self._val.images[index].float().div_(255.0).contiguous(memory_format=self._format)
        return x, self._val.labels[index]

    def __iter__(self) -> Iterator[Batch]:
        return (self[i] for i in range(len(self)))


@dataclass
class _State:
    projection: Projection
    points: int  # decision points done
    tuned: int  # fine-tuning epochs done
    decisions: list[dict[str, Any]]  # what each decision chose, from which scores
    argmax: str  # the supernet's DARTS-rule genotype before any decision (JSON)
    optimizer: dict[str, Any] | None  # the fine-tuning optimizer's state

    def to_dict(self) -> dict[str, Any]:
        return {
            "projection": self.projection.to_dict(), "points": self.points,
            "tuned": self.tuned, "decisions": self.decisions, "argmax": self.argmax,
            "optimizer": self.optimizer,
        }  # fmt: skip

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> _State:
        return cls(
            Projection.from_dict(d["projection"]), int(d["points"]), int(d["tuned"]),
            list(d["decisions"]), str(d["argmax"]), d["optimizer"],
        )  # fmt: skip


@dataclass(frozen=True)
class PhaseResult:
    projection: Projection
    decisions: tuple[dict[str, Any], ...]
    argmax_genotype: str  # JSON of the genotype argmax-alpha would have given


def _decide(
    model: SuperNet,
    decision: Decision,
    batches: ScoreBatches,
    settings: PhaseSettings,
    cancel: CancelToken | None,
) -> dict[str, Any]:
    kind, reduction, where = decision
    base = model.projection or Projection.empty(model.config.steps)
    cell = "reduce" if reduction else "normal"
    scores: dict[int, Score]
    if kind == "op":
        candidates = [k for k in range(len(PRIMITIVES)) if k != _NONE]
        cap = settings.max_skip_normal
        if not reduction and cap is not None and sum(o == _SKIP for o in base.normal.ops) >= cap:
            candidates.remove(_SKIP)
        op, scores = choose_op(
            model, batches, reduction=reduction, row=where, candidates=candidates,
            bf16=settings.bf16, cancel=cancel,
        )  # fmt: skip
        model.projection = base.with_op(reduction, where, op)
        chosen: Any = PRIMITIVES[op]
        named = {PRIMITIVES[k]: [s.accuracy, s.loss] for k, s in scores.items()}
    else:
        rows, scores = choose_inputs(
            model, batches, reduction=reduction, node=where, bf16=settings.bf16, cancel=cancel
        )
        model.projection = base.with_inputs(reduction, where, rows)
        chosen = list(rows)
        named = {str(r): [s.accuracy, s.loss] for r, s in scores.items()}
    # Scores are of the removals: [accuracy, loss] without that op (or input edge).
    return {"cell": cell, "kind": kind, "at": where, "chosen": chosen, "removal_scores": named}


def select_architecture(
    model: SuperNet,
    alpha_optimizer: torch.optim.Optimizer,
    train: ImageDataset,
    val: ImageDataset,
    settings: PhaseSettings,
    *,
    generator: torch.Generator,
    history: list[dict[str, Any]],
    saved: dict[str, Any] | None,
    save: Callable[[dict[str, Any]], None],
    first_step: int,
    total: int,
    on_progress: ProgressCallback,
    cancel: CancelToken | None,
) -> PhaseResult:
    """Run (or resume from `saved`) the phase on the trained supernet, in place; appends a
    record per fine-tuning epoch to `history`."""
    steps = model.config.steps
    points = decision_points(steps, settings.seed)
    train_bs, val_bs = min(settings.batch_size, len(train)), min(settings.batch_size, len(val))
    tune_steps = settings.proj_steps_per_epoch or max(1, len(train) // train_bs)
    tune_total = tuning_epochs(steps, settings.proj_interval)
    opt = torch.optim.SGD(
        model.weight_parameters(), lr=settings.proj_lr,
        momentum=settings.momentum, weight_decay=settings.weight_decay,
    )  # fmt: skip
    if saved is None:
        state = _State(Projection.empty(steps), 0, 0, [], model.genotype().to_json(), None)
    else:
        state = _State.from_dict(saved)
        if state.optimizer is not None:
            opt.load_state_dict(state.optimizer)
    model.projection = state.projection
    while state.points < len(points):
        if state.tuned == state.points * settings.proj_interval:
            seed = settings.seed * 100_003 + 1_009 + state.points
            batches = ScoreBatches(val, val_bs, settings.proj_eval_batches, seed,
                                   settings.channels_last)  # fmt: skip
            for decision in points[state.points]:
                state.decisions.append(_decide(model, decision, batches, settings, cancel))
            state.points += 1
            assert model.projection is not None
            state.projection = model.projection
            on_progress(Progress(
                "searching", first_step + state.tuned * tune_steps, total,
                {"decision_point": float(state.points), "decision_points": float(len(points))},
            ))  # fmt: skip
        else:
            lr = cosine_lr(state.tuned, tune_total, settings.proj_lr,
                           min(settings.lr_min, settings.proj_lr))  # fmt: skip
            for group in opt.param_groups:
                group["lr"] = lr
            batches_ = EpochBatches(
                train, val, tune_steps, train_bs, val_bs, settings.augment, generator,
                channels_last=settings.channels_last,
            )  # fmt: skip
            loss, val_loss, acc = run_epoch(
                model, opt, alpha_optimizer, batches_, settings,
                first_step=first_step + state.tuned * tune_steps, steps=tune_steps, total=total,
                batch_size=train_bs, on_progress=on_progress, cancel=cancel,
                extra={"epoch": settings.epochs + state.tuned + 1.0, "lr": lr},
                arch_step=True,
            )  # fmt: skip
            state.tuned += 1
            uncapped = model.genotype()
            history.append(EpochRecord(
                settings.epochs + state.tuned, lr, loss, val_loss, acc,
                model.genotype(settings.max_skip_normal), skip_normal=skip_count(uncapped),
                phase="projection",
            ).to_dict())  # fmt: skip
            state.optimizer = opt.state_dict()
        save(state.to_dict())
    return PhaseResult(state.projection, tuple(state.decisions), state.argmax)
