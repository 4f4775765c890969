"""The collapse guard's figures become metric rows of the job."""

from __future__ import annotations

from repair_core.evaluation.report import EvaluationReport
from tests.repair_core.evaluation.samples import sample_report
from worker.results import search_metrics


def test_search_metrics_flag_a_skip_dominated_cell_and_drop_missing_values() -> None:
    old = sample_report()
    assert search_metrics(old) == {}
    health = {"skip_connections_normal": 5, "parameter_free_normal": 6, "edges_normal": 8,
              "dominated_by_parameter_free": True, "eigenvalue_last": None,
              "eigenvalue_max": 0.3, "early_stopped_epoch": 4}  # fmt: skip
    report = EvaluationReport(
        old.models, old.failure_corruption, {"variants": {"CF-DARTS": {"search_health": health}}}
    )
    assert search_metrics(report) == {
        "search.skip_connections_normal": 5.0,
        "search.parameter_free_normal": 6.0,
        "search.eigenvalue_max": 0.3,
        "search.early_stopped_epoch": 4.0,
        "search.collapse_warning": 1.0,
    }
