"""The report's model-size table, export checks and the clean-accuracy-drop warning."""

from __future__ import annotations

from repair_core.evaluation.report import EvaluationReport
from repair_core.evaluation.verdict import clean_drop_warning
from tests.repair_core.evaluation.samples import scores

ONNX_CHECK = {
    "format": "onnx", "exporter": "torch.onnx (TorchScript-based)", "max_abs_diff": 3.1e-07,
    "batch_sizes": [1, 5], "input_shape": [1, 28, 28], "tolerance": 1e-4,
    "input_name": "pixels", "output_name": "logits", "file": "model.onnx",
}  # fmt: skip


def _report(original_clean: float, repaired_clean: float) -> EvaluationReport:
    original, repaired = scores(0.0, 0.0), scores(3.0, 40.0)
    models = {
        "original": type(original)(original_clean, 0.0, original.corruptions),
        "CF-DARTS": type(repaired)(repaired_clean, 40.0, repaired.corruptions),
    }
    info = {
        "primary": "CF-DARTS",
        "rows": {"CF-DARTS": ["CF-DARTS"]},
        "model_stats": {
            "original": {"params": 1_234_567, "flops": 45_600_000},
            "CF-DARTS": {"params": 20_480, "flops": 1_500},
        },
        "repaired_size": {"profile": "smoke", "init_channels": 4, "layers": 3},
        "exports": {
            "onnx": ONNX_CHECK,
            "torchscript": {"format": "torchscript", "error": "TorchScript export failed: x"},
        },
    }
    return EvaluationReport(models, "gaussian_noise", info)


def test_a_repaired_model_more_than_a_point_below_on_clean_images_is_warned_in_words() -> None:
    report = _report(original_clean=94.6, repaired_clean=91.2)
    assert report.clean_accuracy_dropped is True
    markdown = report.to_markdown(severity=5)
    warning = markdown.split("Warnings:")[1]
    assert "91.20 %" in warning and "94.60 %" in warning and "3.40 points below" in warning


def test_a_drop_of_one_point_or_a_gain_is_no_warning() -> None:
    for repaired in (93.6, 95.0):
        report = _report(original_clean=94.6, repaired_clean=repaired)
        assert report.clean_accuracy_dropped is False
        assert "Warnings:" not in report.to_markdown(severity=5)
    assert clean_drop_warning(94.6, 93.5, model="CF-DARTS") is not None


def test_the_report_tables_parameters_and_flops_side_by_side_and_the_export_checks() -> None:
    markdown = _report(90.0, 90.0).to_markdown(severity=5)
    assert "| original (deployed) | 1,234,567 | 45.6M |" in markdown
    assert "| CF-DARTS (repaired) | 20,480 | 1.5k |" in markdown
    assert "4 initial channels, 3 cells (profile smoke)" in markdown
    assert "- onnx: max abs logit difference 3.1e-07 (limit 0.0001, batches 1 and 5" in markdown
    assert "`pixels` float32 N x 1 x 28 x 28 in [0, 1]" in markdown
    assert "- torchscript: not available: TorchScript export failed: x" in markdown


def test_a_report_written_before_sizes_and_exports_has_no_such_section() -> None:
    report = EvaluationReport(
        {"original": scores(0.0, 0.0), "CF-DARTS": scores(1.0, 30.0)}, "gaussian_noise"
    )
    assert "Parameters" not in report.to_markdown(severity=5)
    assert report.repaired == "CF-DARTS"
