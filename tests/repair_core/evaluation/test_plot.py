"""The report's Figure 3 PNG, drawn by `plot_report` (the report itself never draws)."""

from __future__ import annotations

from pathlib import Path

import pytest
from PIL import Image

from repair_core.errors import RepairInputError
from repair_core.evaluation.plot import plot_report
from repair_core.evaluation.report import EvaluationReport
from tests.repair_core.evaluation.samples import sample_report, scores


@pytest.fixture
def report() -> EvaluationReport:
    return sample_report()


def test_plot_report_is_a_valid_image_of_plausible_size(
    report: EvaluationReport, tmp_path: Path
) -> None:
    path = plot_report(report, tmp_path / "figures" / "figure3.png")
    with Image.open(path) as image:
        assert image.format == "PNG"
        width, height = image.size
        colours = image.convert("RGB").getcolors(maxcolors=1 << 16)
    assert 800 <= width <= 3000 and 500 <= height <= 2000
    assert colours is None or len(colours) > 10  # bars and text, not a blank canvas


def test_plot_report_of_a_single_model_has_one_panel(tmp_path: Path) -> None:
    single = EvaluationReport({"original": scores(0.0, None)})
    with Image.open(plot_report(single, tmp_path / "one.png")) as image:
        one_panel_height = image.size[1]
    two = EvaluationReport({"original": scores(0.0, None), "repaired": scores(1.0, None)})
    with Image.open(plot_report(two, tmp_path / "two.png")) as image:
        assert image.size[1] > one_panel_height


def test_plot_report_rejects_an_unknown_baseline(report: EvaluationReport, tmp_path: Path) -> None:
    with pytest.raises(RepairInputError, match="baseline"):
        plot_report(report, tmp_path / "x.png", baseline="nobody")
