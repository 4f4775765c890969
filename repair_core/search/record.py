"""`EpochRecord`: what one search epoch leaves in the history (and in the saved state)."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from repair_core.search.genotype import Genotype


@dataclass(frozen=True)
class EpochRecord:
    epoch: int  # 1-based
    lr: float  # weight learning rate used in this epoch
    loss: float  # mean train cross entropy of the weight steps
    val_loss: float | None  # mean val cross entropy of the alpha steps; None in warm-up
    train_acc: float  # fraction of train batch images classified correctly
    genotype: Genotype  # discretized at the end of the epoch (skip cap applied)
    eigenvalue: float | None = None  # dominant Hessian eigenvalue, where computed
    skip_normal: int = 0  # skip connections in the normal cell before any cap
    phase: str = "search"  # "projection": a fine-tuning epoch of DARTS-PT's selection
    # softmax(alpha) per edge at the end of the epoch, [edge][primitive] (the report's
    # search curves); None in states written before they were recorded.
    alphas_normal: list[list[float]] | None = None
    alphas_reduce: list[list[float]] | None = None

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "genotype": self.genotype.to_json()}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> EpochRecord:
        return cls(**{**data, "genotype": Genotype.from_json(data["genotype"])})
