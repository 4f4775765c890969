"""The report cannot flatter: the whole-split column, verdicts against the control, and
mean ± std over seeds."""

from __future__ import annotations

import math

import pytest

from repair_core.evaluation.aggregate import aggregate_verdicts, summarise, summary_markdown
from repair_core.evaluation.report import EvaluationReport, ModelScores
from repair_core.evaluation.verdict import NO_CONTROL, verdict_word


def _scores(clean: float, fail: float, noise: float, fog: float) -> ModelScores:
    return ModelScores(clean, fail, {"gaussian_noise": {5: noise}, "fog": {5: fog}})


def _report(rows: dict[str, tuple[float, float, float, float]], control: bool) -> EvaluationReport:
    info = {"test_images": 1000, "held_out_failures": 200}
    if control:
        info["control"] = "Control"
    return EvaluationReport(
        {name: _scores(*values) for name, values in rows.items()}, "gaussian_noise", info
    )


def test_the_all_column_is_the_whole_split_under_the_failure_corruption() -> None:
    report = _report({"original": (90, 0, 30, 60), "CF-DARTSE": (89, 50, 55, 61)}, False)
    columns = dict(report.columns(5))
    assert list(columns) == ["Clean", "Gauss_fail", "Gauss_all", "Fog", "Mean"]
    assert columns["Gauss_all"] == {"original": 30, "CF-DARTSE": 55}
    assert columns["Mean"] == {"original": 60, "CF-DARTSE": 61}  # the failure column is not in it
    text = report.to_markdown(5)
    assert "Gauss_all: the whole test split under gaussian_noise" in text
    unnamed = EvaluationReport(
        {"original": ModelScores(90, 0, {"fog": {5: 60}})}, None, {"test_images": 10}
    )
    assert [h for h, _ in unnamed.columns(5)] == ["Clean", "Failures_fail", "Fog", "Mean"]
    assert "no _all column" in unnamed.to_markdown(5)


def test_verdict_word_uses_a_binomial_margin_for_one_seed_and_two_se_for_several() -> None:
    # One seed, p = 0.5 on 1000 images: margin 2*100*sqrt(2*0.25/1000) = 4.47 points.
    margin = 200 * math.sqrt(0.5 / 1000)
    assert verdict_word(margin + 0.01, None, 1, 0.5, 1000) == "better"
    assert verdict_word(margin - 0.01, None, 1, 0.5, 1000) == "no clear change"
    assert verdict_word(-margin - 0.01, None, 1, 0.5, 1000) == "worse"
    # Three seeds, std 3: se = 1.73, so 2 se = 3.46.
    assert verdict_word(3.5, 3.0, 3, 0.5, 10) == "better"
    assert verdict_word(3.4, 3.0, 3, 0.5, 10) == "no clear change"
    assert verdict_word(-3.5, 3.0, 3, 0.5, 10) == "worse"
    assert verdict_word(5.0, None, 1, 0.5, 0) == "no clear change"  # nothing was measured


def test_verdicts_compare_against_the_control_row_when_there_is_one() -> None:
    rows = {
        "original": (90.0, 0.0, 30.0, 60.0),
        "Control": (90.0, 40.0, 32.0, 60.0),
        "CF-DARTSE": (89.0, 70.0, 60.0, 60.5),  # +28 on the whole split, clean and fog flat
        "RF-DARTSE": (80.0, 70.0, 60.0, 60.0),  # clean -10: a trade
        "CF-DARTS": (90.0, 42.0, 33.0, 60.0),  # what a mere retrain also gets
    }
    report = _report(rows, control=True)
    found = {v.model: v for v in report.verdicts(5)}
    assert set(found) == {"CF-DARTSE", "RF-DARTSE", "CF-DARTS"}  # not original, not control
    cf = found["CF-DARTSE"]
    assert cf.baseline == "Control" and cf.n_seeds == 1
    assert cf.deltas["Gauss_all"] == (28.0, None) and cf.deltas["Gauss_fail"] == (30.0, None)
    assert cf.words == {
        "Gauss_all": "better", "Gauss_fail": "better", "Clean": "no clear change",
        "Mean": "no clear change",
    }  # fmt: skip
    assert cf.summary == "repairs Gauss beyond retraining"
    assert found["RF-DARTSE"].summary == "trades: Gauss better, Clean worse"
    assert found["CF-DARTS"].summary == "no repair beyond retraining"
    text = report.to_markdown(5)
    assert "**CF-DARTSE** vs Control" in text and NO_CONTROL not in text


def test_without_a_control_the_verdict_says_it_is_against_phi0() -> None:
    report = _report({"original": (90, 0, 30, 60), "CF-DARTS": (90, 40, 33, 60)}, False)
    (verdict,) = report.verdicts(5)
    assert verdict.baseline == "original"
    assert NO_CONTROL in report.to_markdown(5)


def test_report_json_round_trip_keeps_the_control_row() -> None:
    report = _report({"original": (90, 0, 30, 60), "Control": (90, 1, 31, 60)}, True)
    again = EvaluationReport.from_json(report.to_json())
    assert again.info["control"] == "Control" and again.control == "Control"
    assert again.verdicts(5) == []  # nothing but the baseline rows to judge


def _seed(cf_all: float, control_all: float, cf_clean: float) -> EvaluationReport:
    return _report(
        {
            "original": (90.0, 0.0, 30.0, 60.0),
            "Control": (90.0, 40.0, control_all, 60.0),
            "CF-DARTSE": (cf_clean, 70.0, cf_all, 60.0),
        },
        control=True,
    )


def test_aggregate_gives_mean_and_std_per_cell_and_verdicts_on_paired_deltas() -> None:
    reports = [_seed(60.0, 32.0, 89.0), _seed(64.0, 34.0, 91.0), _seed(62.0, 30.0, 90.0)]
    table = summarise(reports, 5).splitlines()
    assert table[0] == "| model | Clean | Gauss_fail | Gauss_all | Fog | Mean |"
    cf = next(line for line in table if line.startswith("| CF-DARTSE"))
    assert cf.split("|")[2].strip() == "90.00 ± 1.00"  # clean 89, 91, 90
    assert cf.split("|")[4].strip() == "62.00 ± 2.00"  # whole split 60, 64, 62
    assert table[1 + 1].startswith("| original | 90.00 ± 0.00")
    (verdict,) = aggregate_verdicts(reports, 5)
    assert verdict.n_seeds == 3
    mean, std = verdict.deltas["Gauss_all"]  # paired deltas 28, 30, 32
    assert mean == pytest.approx(30.0) and std == pytest.approx(2.0)
    assert verdict.words["Gauss_all"] == "better"
    assert verdict.words["Clean"] == "no clear change"  # deltas -1, 1, 0
    assert "**CF-DARTSE** vs Control (3 seeds): repairs Gauss" in summary_markdown(reports, 5)
    one = summarise(reports[:1], 5)
    assert "62.00 ±" not in one and "| 60.00 |" in one
