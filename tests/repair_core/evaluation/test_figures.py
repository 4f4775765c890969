"""The report's figures: cell graphs, the heatmap, the search and retraining curves."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from repair_core.choices import FIGURE_FORMATS, FIGURE_NAMES
from repair_core.evaluation.cell_graph import GraphEdge, cell_graph
from repair_core.evaluation.curves import RepairCurves, curves_of
from repair_core.evaluation.figures import (
    FigureInputs,
    alphas_figure,
    build_figures,
    cell_figure,
    edge_names,
    write_figures,
)
from repair_core.evaluation.heatmap import draw_heatmaps, heatmap_grid
from repair_core.search.genotype import DARTS_V1, DARTS_V2
from repair_core.search.ops import PRIMITIVES
from tests.repair_core.evaluation.samples import sample_report


def test_darts_v2_normal_cell_has_the_published_nodes_and_edge_labels() -> None:
    graph = cell_graph(DARTS_V2, "normal")
    assert graph.nodes == ("c_{k-2}", "c_{k-1}", "0", "1", "2", "3", "c_{k}")
    ops = [e for e in graph.edges if e.label != "concat"]
    assert ops == [
        GraphEdge("c_{k-2}", "0", "sep_conv_3x3"),
        GraphEdge("c_{k-1}", "0", "sep_conv_3x3"),
        GraphEdge("c_{k-2}", "1", "sep_conv_3x3"),
        GraphEdge("c_{k-1}", "1", "sep_conv_3x3"),
        GraphEdge("c_{k-1}", "2", "sep_conv_3x3"),
        GraphEdge("c_{k-2}", "2", "skip_connect"),
        GraphEdge("c_{k-2}", "3", "skip_connect"),
        GraphEdge("0", "3", "dil_conv_3x3"),
    ]
    assert [e.source for e in graph.edges if e.label == "concat"] == ["0", "1", "2", "3"]


def test_reduction_cell_edges_come_from_the_reduce_list() -> None:
    graph = cell_graph(DARTS_V2, "reduce")
    labels = [e.label for e in graph.edges if e.target != "c_{k}"]
    assert labels == [op for op, _ in DARTS_V2.reduce]


def test_the_drawn_cell_shows_every_node_and_operation() -> None:
    figure = cell_figure(DARTS_V1, "normal", "deployed genotype, normal cell")
    texts = [t.get_text() for t in figure.axes[0].texts]
    for node in cell_graph(DARTS_V1, "normal").nodes:
        assert node in texts
    assert sorted(t for t in texts if "_" in t and not t.startswith("c_")) == sorted(
        op for op, _ in DARTS_V1.normal
    )


def test_heatmap_cells_equal_the_report_numbers() -> None:
    report = sample_report()
    grid = heatmap_grid(report)
    figure = draw_heatmaps(grid)
    panels = [np.asarray(axis.images[0].get_array()) for axis in figure.axes if axis.images]
    assert len(panels) == 3
    for i, corruption in enumerate(report.corruptions):
        for j, severity in enumerate(report.severities):
            deployed = report.models["original"].at(corruption, severity)
            repaired = report.models["repaired"].at(corruption, severity)
            assert panels[0][i, j] == pytest.approx(deployed)
            assert panels[1][i, j] == pytest.approx(repaired)
            assert panels[2][i, j] == pytest.approx(repaired - deployed)
    assert grid.repaired_name == "repaired"


def test_heatmap_follows_the_primary_variant_not_the_control() -> None:
    report = sample_report()
    models = {"original": report.models["original"], "Control": report.models["original"]}
    models["CF-DARTS"] = report.models["repaired"]
    roled = type(report)(
        models, report.failure_corruption,
        {"rows": {"CF-DARTS": ["CF-DARTS"], "Control": ["Control"]}, "primary": "CF-DARTS",
         "control": "Control"},
    )  # fmt: skip
    assert heatmap_grid(roled).repaired_name == "CF-DARTS"


def _epoch(k: int, edges: int = 14) -> dict[str, object]:
    weights = [[(p + k) / 100 for p in range(len(PRIMITIVES))] for _ in range(edges)]
    return {
        "epoch": k, "lr": 0.1, "loss": 2.0 / k, "val_loss": 2.1 / k, "train_acc": 0.1 * k,
        "eigenvalue": None, "skip_normal": k % 3, "alphas_normal": weights,
        "alphas_reduce": weights,
    }  # fmt: skip


def test_alpha_curves_plot_every_primitive_of_every_edge_over_the_epochs() -> None:
    curves = RepairCurves(search=tuple(_epoch(k) for k in (1, 2, 3)))
    figure = alphas_figure(curves, "normal")
    assert figure is not None
    drawn = [axis for axis in figure.axes if axis.lines]
    assert [axis.get_title() for axis in drawn] == edge_names(4)
    first = drawn[0].lines
    assert [line.get_label() for line in first] == list(PRIMITIVES)
    assert list(first[3].get_ydata()) == pytest.approx([0.04, 0.05, 0.06])


def test_curves_of_a_ledger_take_the_last_search_and_every_retraining() -> None:
    stages = {
        "searching@1": {"history": [_epoch(1)]},
        "searching@2": {"history": [_epoch(1), _epoch(2)]},
        "retraining@1": {"history": [{"epoch": 1.0, "loss": 1.0, "train_acc": 0.5}]},
        "retraining@2": {"history": [{"epoch": 1.0, "loss": 0.9, "train_acc": 0.6}]},
    }
    curves = curves_of(stages, 2)
    assert [e["epoch"] for e in curves.search] == [1, 2]
    assert [h[0]["loss"] for h in curves.retrain] == [1.0, 0.9]
    assert curves_of({"confirming": {}}, 1) == RepairCurves()
    assert RepairCurves.from_dict(curves.to_dict()) == curves


def test_write_figures_writes_png_and_svg_of_each_figure_it_has_data_for(tmp_path: Path) -> None:
    curves = RepairCurves(
        search=(_epoch(1), _epoch(2)),
        retrain=(({"epoch": 1.0, "loss": 1.0, "train_acc": 0.5, "eval_acc": 0.4},),),
    )
    written = write_figures(FigureInputs(sample_report(), DARTS_V1, DARTS_V2, curves), tmp_path)
    assert sorted(written) == sorted(f"{n}.{f}" for n in FIGURE_NAMES for f in FIGURE_FORMATS)
    assert (tmp_path / "robustness-heatmap.png").read_bytes().startswith(b"\x89PNG")
    assert b"<svg" in (tmp_path / "cell-repaired-normal.svg").read_bytes()[:500]


def test_a_repair_without_a_search_has_no_search_figures(tmp_path: Path) -> None:
    written = write_figures(
        FigureInputs(sample_report(), DARTS_V1, DARTS_V1, RepairCurves()), tmp_path
    )
    assert {w.rsplit(".", 1)[0] for w in written} == {
        "cell-deployed-normal", "cell-deployed-reduce", "cell-repaired-normal",
        "cell-repaired-reduce", "robustness-heatmap",
    }  # fmt: skip
    assert set(build_figures(FigureInputs(sample_report(), DARTS_V1, DARTS_V1, RepairCurves())))


def test_epoch_records_written_before_alphas_were_recorded_still_load() -> None:
    from repair_core.search.searcher import EpochRecord

    record = EpochRecord.from_dict(
        {"epoch": 1, "lr": 0.1, "loss": 1.0, "val_loss": None, "train_acc": 0.5,
         "genotype": DARTS_V2.to_json()}
    )  # fmt: skip
    assert record.alphas_normal is None  # states written before alphas were recorded
