"""The evaluation report: exact JSON round trip, Table 2 markdown."""

from __future__ import annotations

import json

import pytest

from repair_core.corruptions import CORRUPTION_NAMES
from repair_core.errors import RepairInputError
from repair_core.evaluation.report import EvaluationReport, ModelScores
from tests.repair_core.evaluation.samples import sample_report, scores


@pytest.fixture
def report() -> EvaluationReport:
    return sample_report()


def test_report_json_round_trips_exactly(report: EvaluationReport) -> None:
    text = report.to_json()
    again = EvaluationReport.from_json(text)
    assert again == report
    assert again.to_json() == text
    assert list(again.models) == ["original", "repaired"]  # row order survives


def test_report_json_carries_the_means_for_readers_of_the_file(report: EvaluationReport) -> None:
    data = json.loads(report.to_json())
    repaired = data["models"]["repaired"]
    others = [c for c in CORRUPTION_NAMES if c != "gaussian_noise"]
    expected = sum(repaired["corruptions"][c]["5"] for c in others) / len(others)
    assert repaired["mean_by_severity"]["5"] == pytest.approx(expected)
    assert data["models"]["original"]["held_out_failures"] == 0.0


def test_report_with_a_nan_accuracy_refuses_to_write_invalid_json(report: EvaluationReport) -> None:
    broken = EvaluationReport({"m": ModelScores(float("nan"), None, {})})
    with pytest.raises(ValueError):
        broken.to_json()


@pytest.mark.parametrize(
    "text", ["not json", "[]", '{"format": "other"}', '{"format": "cf-darts-evaluation/1"}']
)
def test_malformed_report_json_is_a_repair_input_error(text: str) -> None:
    with pytest.raises(RepairInputError):
        EvaluationReport.from_json(text)


def test_models_evaluated_on_different_sets_cannot_share_a_report() -> None:
    a = ModelScores(90.0, None, {"fog": {5: 50.0}})
    b = ModelScores(90.0, None, {"snow": {5: 50.0}})
    with pytest.raises(RepairInputError, match="other corruptions"):
        EvaluationReport({"a": a, "b": b})


def test_markdown_has_the_columns_of_the_papers_table_2(report: EvaluationReport) -> None:
    lines = report.to_markdown(severity=5).splitlines()
    header = [cell.strip() for cell in lines[2].strip("|").split("|")]
    assert header == [
        "Model", "Clean", "Gauss_fail", "Gauss_all", "Shot", "Impulse", "Defocus", "Glass",
        "Motion", "Zoom", "Snow", "Frost", "Fog", "Bright", "Contrast", "Elastic", "Pixel",
        "Jpeg", "Mean",
    ]  # fmt: skip
    rows = [line for line in lines[4:] if line.startswith("|")]
    assert [row.split("|")[1].strip() for row in rows] == ["original", "repaired"]
    repaired = [cell.strip() for cell in rows[1].strip("|").split("|")]
    assert repaired[1] == f"{90.0 + 2.5 / 3:.2f}"
    assert repaired[2] == "18.27"
    assert repaired[3] == f"{80.0 - 35 + 2.5:.2f}"  # the whole split under Gaussian noise
    assert repaired[4] == f"{80.0 - 35 + 1 / 7 + 2.5:.2f}"  # shot noise at severity 5
    assert repaired[-1] == f"{report.mean('repaired', 5):.2f}"
    assert "at severity 5" in lines[0]


def test_markdown_averages_over_severities_when_asked(report: EvaluationReport) -> None:
    text = report.to_markdown(severity=None)
    assert "averaged over severities" in text
    assert f"{80.0 - 21 + 1 / 7:.2f}" in text  # shot noise, mean of severities 1..5


def test_markdown_marks_missing_failure_accuracy_and_unknown_severity(
    report: EvaluationReport,
) -> None:
    partial = EvaluationReport({"original": scores(0.0, None)}, "gaussian_noise")
    assert "| —" in partial.to_markdown()
    with pytest.raises(RepairInputError, match="severity 7"):
        partial.to_markdown(severity=7)
