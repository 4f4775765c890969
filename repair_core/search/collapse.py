"""The collapse guard: how far a searched cell leans on parameter-free operations.

DARTS tends to collapse to normal cells of skip connections and pools as the search
goes on (RobustDARTS, P-DARTS). Every epoch records the normal cell's skips and, where
computed, the dominant Hessian eigenvalue; this module sums them up for the report and
the job record, and words a warning when the final normal cell is dominated by
parameter-free operations (at least half of its edges).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, Protocol

from repair_core.search.genotype import Genotype

PARAMETER_FREE = frozenset({"skip_connect", "max_pool_3x3", "avg_pool_3x3"})


def skip_count(genotype: Genotype) -> int:
    """Skip connections in the normal cell."""
    return sum(op == "skip_connect" for op, _ in genotype.normal)


def parameter_free_count(genotype: Genotype) -> int:
    return sum(op in PARAMETER_FREE for op, _ in genotype.normal)


def genotype_health(genotype: Genotype) -> dict[str, Any]:
    edges = len(genotype.normal)
    free = parameter_free_count(genotype)
    return {
        "skip_connections_normal": skip_count(genotype),
        "parameter_free_normal": free,
        "edges_normal": edges,
        "dominated_by_parameter_free": free >= math.ceil(edges / 2),
    }


class _Epoch(Protocol):
    @property
    def epoch(self) -> int: ...
    @property
    def eigenvalue(self) -> float | None: ...
    @property
    def skip_normal(self) -> int: ...


class _Searched(Protocol):
    # What `search_health` reads of a `searcher.SearchResult` (the searcher imports this
    # module, so it is not imported back).
    @property
    def genotype(self) -> Genotype: ...
    @property
    def history(self) -> Sequence[_Epoch]: ...
    @property
    def stopped_epoch(self) -> int | None: ...
    @property
    def perturbation(self) -> dict[str, Any] | None: ...


def search_health(result: _Searched) -> dict[str, Any]:
    """JSON-ready summary of a search: the final cell, skips and eigenvalues per epoch."""
    eigenvalues = [[h.epoch, h.eigenvalue] for h in result.history if h.eigenvalue is not None]
    values = [v for _, v in eigenvalues]
    return {
        **genotype_health(result.genotype),
        "skip_per_epoch": [h.skip_normal for h in result.history],
        "eigenvalues": eigenvalues,
        "eigenvalue_last": values[-1] if values else None,
        "eigenvalue_max": max(values) if values else None,
        "early_stopped_epoch": result.stopped_epoch,
        **_perturbation_health(result),
    }


def _perturbation_health(result: _Searched) -> dict[str, Any]:
    """DARTS-PT: how many decisions it took, and whether argmax-alpha would have differed."""
    chosen = result.perturbation
    if chosen is None:
        return {"perturbation_decisions": None}
    argmax = Genotype.from_dict(chosen["argmax_genotype"])
    return {
        "perturbation_decisions": len(chosen["decisions"]),
        "argmax_genotype": argmax.to_dict(),
        "argmax_differs": argmax != result.genotype,
    }


def health_warning(variant: str, health: dict[str, Any]) -> str | None:
    """A sentence for the report when the searched normal cell looks collapsed."""
    if not health.get("dominated_by_parameter_free"):
        return None
    return (
        f"{variant}: {health['parameter_free_normal']} of {health['edges_normal']} edges of the "
        "searched normal cell are parameter-free (skip or pooling): the search may have "
        "collapsed; consider search.max_skip_normal=2 or the robdarts search"
    )
