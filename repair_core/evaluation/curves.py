"""What the search and the retraining recorded per epoch, as the report's curves read it.

The variant's ledger keeps one `search_epoch` dict per search epoch (losses, normal-cell
skip connections, softmax(alpha) per edge) and the retraining history per iteration;
`curves_of` gathers the primary variant's. Plain Python: JSON in, dataclasses out.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any


def search_epoch(record: Mapping[str, Any]) -> dict[str, Any]:
    """One search epoch (`EpochRecord.to_dict()`) as the ledger keeps it: the genotypes
    are kept elsewhere."""
    return {k: v for k, v in record.items() if k != "genotype"}


@dataclass(frozen=True)
class RepairCurves:
    # Per search epoch, over all iterations (iteration k continues the search of k - 1).
    search: tuple[dict[str, Any], ...] = ()
    # Per retraining iteration, its per-epoch history (loss, train_acc, eval_acc, lr, ...).
    retrain: tuple[tuple[dict[str, float], ...], ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {"search": list(self.search), "retrain": [list(h) for h in self.retrain]}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> RepairCurves:
        return cls(
            tuple(dict(e) for e in data.get("search", [])),
            tuple(tuple(dict(e) for e in h) for h in data.get("retrain", [])),
        )


def curves_of(stages: Mapping[str, Mapping[str, Any]], iterations: int) -> RepairCurves:
    """The curves in a variant's ledger stages; the last search holds every epoch, since
    each iteration continues the previous one. Older ledgers have none: empty curves."""
    search: list[dict[str, Any]] = []
    for k in range(iterations, 0, -1):
        history = stages.get(f"searching@{k}", {}).get("history")
        if history:
            search = [dict(e) for e in history]
            break
    retrain = [
        tuple(dict(e) for e in stages[f"retraining@{k}"].get("history", []))
        for k in range(1, iterations + 1)
        if f"retraining@{k}" in stages
    ]
    return RepairCurves(tuple(search), tuple(h for h in retrain if h))
