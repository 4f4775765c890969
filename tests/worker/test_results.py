"""Metric rows are named by role (original, control, repaired, iteration<k>), not position."""

from __future__ import annotations

from repair_core.evaluation.report import EvaluationReport, ModelScores
from worker.results import deployment_metrics, report_metrics


def _scores(clean: float) -> ModelScores:
    return ModelScores(clean, 10.0, {"gaussian_noise": {5: clean - 40}, "fog": {5: clean - 20}})


def test_metrics_are_prefixed_by_role_with_the_control_and_iterations() -> None:
    names = ["original", "Control", "CF-DARTS-1", "CF-DARTS-2", "CF-DARTS-3", "RF-DARTS"]
    report = EvaluationReport(
        {name: _scores(90.0 - k) for k, name in enumerate(names)},
        "gaussian_noise",
        {
            "control": "Control",
            "primary": "CF-DARTS",
            "rows": {
                "Control": ["Control"],
                "CF-DARTS": ["CF-DARTS-1", "CF-DARTS-2", "CF-DARTS-3"],
                "RF-DARTS": ["RF-DARTS"],
            },
        },
    )
    metrics = report_metrics(report)
    prefixes = {name.split(".")[0] for name in metrics}
    assert prefixes == {"original", "control", "iteration1", "iteration2", "repaired", "RF-DARTS"}
    assert metrics["control.clean"] == 89.0  # the Control row, not "repaired"
    assert metrics["repaired.clean"] == 86.0  # the primary's last iteration
    assert metrics["iteration1.clean"] == 88.0
    assert metrics["repaired.failure_corruption_all"] == 46.0
    assert metrics["repaired.corruption_mean"] == 66.0  # fog only: the failure column is not in it


def test_a_report_without_roles_is_read_by_position() -> None:
    report = EvaluationReport({"original": _scores(90.0), "CF-DARTS": _scores(80.0)}, None)
    metrics = report_metrics(report)
    assert metrics["repaired.clean"] == 80.0 and "repaired.failure_corruption_all" not in metrics


def test_sizes_export_checks_and_the_clean_drop_flag_become_metric_rows() -> None:
    report = EvaluationReport(
        {"original": _scores(94.6), "CF-DARTS": _scores(91.2)},
        "gaussian_noise",
        {
            "primary": "CF-DARTS",
            "rows": {"CF-DARTS": ["CF-DARTS"]},
            "model_stats": {
                "original": {"params": 1000, "flops": 9000},
                "CF-DARTS": {"params": 200, "flops": 700},
            },
            "exports": {
                "onnx": {"format": "onnx", "max_abs_diff": 2e-7},
                "torchscript": {"format": "torchscript", "error": "failed"},
            },
        },
    )
    assert deployment_metrics(report) == {
        "original.params": 1000.0,
        "original.flops": 9000.0,
        "repaired.params": 200.0,
        "repaired.flops": 700.0,
        "export.onnx.max_abs_diff": 2e-7,
        "repaired.clean_accuracy_dropped": 1.0,
    }
    within = EvaluationReport({"original": _scores(94.6), "CF-DARTS": _scores(94.0)}, None)
    assert deployment_metrics(within) == {"repaired.clean_accuracy_dropped": 0.0}
