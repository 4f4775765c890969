"""The collapse guard: health of a searched cell, its warning and its report block."""

from __future__ import annotations

from dataclasses import replace

import torch

from repair_core.evaluation.report import EvaluationReport
from repair_core.search.collapse import health_warning, search_health
from repair_core.search.genotype import Genotype
from repair_core.search.searcher import EpochRecord, SearchResult
from tests.repair_core.evaluation.samples import sample_report

CONCAT = (2, 3, 4, 5)
SKIPPY = Genotype(
    normal=(("skip_connect", 0), ("skip_connect", 1), ("max_pool_3x3", 0), ("skip_connect", 2),
            ("sep_conv_3x3", 0), ("sep_conv_3x3", 1), ("sep_conv_3x3", 2), ("dil_conv_3x3", 3)),
    normal_concat=CONCAT,
    reduce=(("max_pool_3x3", 0), ("max_pool_3x3", 1)) * 4,
    reduce_concat=CONCAT,
)  # fmt: skip


def _result(genotype: Genotype, eigenvalues: list[float | None]) -> SearchResult:
    history = tuple(
        EpochRecord(e + 1, 0.1, 1.0, 1.0, 0.5, genotype, eigenvalue=v, skip_normal=e)
        for e, v in enumerate(eigenvalues)
    )
    return SearchResult(genotype, torch.zeros(14, 8), torch.zeros(14, 8), history, None)


def test_health_counts_parameter_free_edges_and_summarises_the_eigenvalues() -> None:
    health = search_health(_result(SKIPPY, [0.5, None, 0.25]))
    assert health["skip_connections_normal"] == 3
    assert health["parameter_free_normal"] == 4 and health["edges_normal"] == 8
    assert health["dominated_by_parameter_free"] is True
    assert health["skip_per_epoch"] == [0, 1, 2]
    assert health["eigenvalues"] == [[1, 0.5], [3, 0.25]]
    assert (health["eigenvalue_last"], health["eigenvalue_max"]) == (0.25, 0.5)
    warning = health_warning("CF-DARTS", health)
    assert warning is not None and "4 of 8" in warning
    convs = replace(SKIPPY, normal=(("sep_conv_3x3", 0), ("sep_conv_3x3", 1)) * 4)
    assert health_warning("CF-DARTS", search_health(_result(convs, [None]))) is None


def test_the_report_shows_health_and_warnings_only_when_present() -> None:
    old = sample_report()
    health = search_health(_result(SKIPPY, [0.5]))
    info = {**old.info, "variants": {"CF-RobDARTS": {"search_health": health}},
            "warnings": [health_warning("CF-RobDARTS", health)]}  # fmt: skip
    new = EvaluationReport(old.models, old.failure_corruption, info)
    text = new.to_markdown()
    assert text.startswith(old.to_markdown().rstrip("\n"))
    assert "| CF-RobDARTS | 3 | 4/8 | 0.5 | 0.5 | — |" in text
    assert "Warnings:" in text and "parameter-free" in text
    assert "Search health" not in old.to_markdown()
