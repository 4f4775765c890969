"""DARTS-PT's selection rule: keep what the supernet's validation accuracy misses most.

An op is scored by removing it from its edge (its weight zeroed, the others unchanged)
and measuring the supernet's accuracy on validation batches; the edge keeps the op whose
removal lowers the accuracy most. A node's input edges are scored the same way, the whole
edge removed, and the node keeps the two whose removal hurts most. The alphas' magnitudes
play no part (Wang et al., ICLR 2021, Section 4).

As the reference measures it: batch-norm in training mode (batch statistics), no grad.
Running statistics are restored afterwards, so scoring never changes the supernet.
Ties (frequent on small validation sets) go to the higher loss, then to the lower index.
The reference scores a node's remaining inputs again after dropping the weakest; with
the dropped edge still in the network those scores are the same, so we score once and keep
the two strongest.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from repair_core.precision import autocast
from repair_core.progress import CancelToken
from repair_core.search.projection import Projection, node_rows
from repair_core.search.supernet import SuperNet

Batch = tuple[torch.Tensor, torch.Tensor]


@dataclass(frozen=True)
class Score:
    accuracy: float  # fraction of the validation images classified correctly
    loss: float  # their mean cross entropy

    def hurt(self) -> tuple[float, float]:
        """Sort key: smaller means the removal scored hurt the supernet more."""
        return (self.accuracy, -self.loss)


def score(model: SuperNet, batches: Sequence[Batch], *, bf16: bool = False) -> Score:
    """Accuracy and loss of `model` (under its current projection) on `batches`."""
    device = model.alphas_normal.device
    sums = torch.zeros(2, dtype=torch.float64, device=device)
    count = 0
    with torch.no_grad():
        for x, y in batches:
            with autocast(x.device, bf16):
                logits = model(x)
            logits = logits.float()
            correct = (logits.argmax(dim=1) == y).sum()
            loss = F.cross_entropy(logits, y, reduction="sum")
            sums += torch.stack([correct.double(), loss.double()])
            count += len(y)
    accuracy, loss = (sums / max(1, count)).tolist()  # one host sync per score
    return Score(accuracy, loss)


class _Scoring:
    """Scores removals from the supernet's current projection; restores it and the BN
    running statistics on exit."""

    def __init__(self, model: SuperNet, batches: Sequence[Batch], bf16: bool,
                 cancel: CancelToken | None) -> None:  # fmt: skip
        self.model, self.batches, self.bf16, self.cancel = model, batches, bf16, cancel
        self.original = model.projection
        self.base = model.projection or Projection.empty(model.config.steps)

    def __enter__(self) -> _Scoring:
        self.buffers = {n: b.detach().clone() for n, b in self.model.named_buffers()}
        self.training, self.drop = self.model.training, self.model.drop_path_prob
        self.model.train()
        self.model.drop_path_prob = 0.0
        return self

    def removal(self, reduction: bool, row: int, op: int | None) -> Score:
        if self.cancel is not None:
            self.cancel.check()
        self.model.projection = self.base.without(reduction, row, op)
        return score(self.model, self.batches, bf16=self.bf16)

    def __exit__(self, *exc: object) -> None:
        self.model.projection = self.original
        self.model.train(self.training)
        self.model.drop_path_prob = self.drop
        with torch.no_grad():
            for name, b in self.model.named_buffers():
                b.copy_(self.buffers[name])


def choose_op(
    model: SuperNet,
    batches: Sequence[Batch],
    *,
    reduction: bool,
    row: int,
    candidates: Sequence[int],
    bf16: bool = False,
    cancel: CancelToken | None = None,
) -> tuple[int, dict[int, Score]]:
    """The candidate op of edge `row` whose removal hurts most, and every candidate's score."""
    with _Scoring(model, batches, bf16, cancel) as scoring:
        scores = {k: scoring.removal(reduction, row, k) for k in candidates}
    return min(candidates, key=lambda k: (*scores[k].hurt(), k)), scores


def choose_inputs(
    model: SuperNet,
    batches: Sequence[Batch],
    *,
    reduction: bool,
    node: int,
    bf16: bool = False,
    cancel: CancelToken | None = None,
) -> tuple[tuple[int, int], dict[int, Score]]:
    """The two input rows of `node` whose removal hurts most, and every input's score."""
    rows = list(node_rows(node))
    with _Scoring(model, batches, bf16, cancel) as scoring:
        scores = {r: scoring.removal(reduction, r, None) for r in rows}
    first, second = sorted(rows, key=lambda r: (*scores[r].hurt(), r))[:2]
    return (min(first, second), max(first, second)), scores
