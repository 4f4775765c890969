"""DARTS-PT: perturbation-based selection keeps what removal hurts most, not the largest
alpha; the phase ends in the decided genotype and resumes mid-selection exactly."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest
import torch

from repair_core.datasets.types import ImageDataset
from repair_core.errors import RepairInputError
from repair_core.progress import CancelToken, Progress, RepairCancelled
from repair_core.rng import seeded_generator
from repair_core.search.collapse import search_health
from repair_core.search.dartspt import decision_points, tuning_epochs
from repair_core.search.discretize import discretize, num_edges
from repair_core.search.ops import PRIMITIVES
from repair_core.search.perturbation import choose_inputs, choose_op, score
from repair_core.search.projection import Projection
from repair_core.search.search_state import STATE_FORMAT
from repair_core.search.searcher import SearchResult, SearchSettings, search
from repair_core.search.supernet import SearchConfig, SuperNet
from repair_core.train.state import read_state_file
from tests.repair_core.search.test_searcher import FAST, _dataset

SEP3, SEP5, DIL3 = (PRIMITIVES.index(n) for n in ("sep_conv_3x3", "sep_conv_5x5", "dil_conv_3x3"))
PT = SearchSettings(
    epochs=1, batch_size=16, order="first", report_every=100, projection=True,
    proj_interval=1, proj_steps_per_epoch=1, proj_eval_batches=1,
)  # fmt: skip


def _self_labelled(model: SuperNet, n: int = 64) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Random images labelled by the supernet itself: its accuracy is 1 by construction."""
    x = torch.rand(n, 3, 8, 8, generator=torch.Generator().manual_seed(5))
    model.train()
    with torch.no_grad():
        y = model(x).argmax(dim=1)
    return [(x, y)]


def _dead(model: SuperNet, row: int, op: int) -> None:
    """Zero an op's weights on an edge of the (only) reduction cell: it outputs exact zeros."""
    with torch.no_grad():
        for p in model.cells[0]._ops[row]._ops[op].parameters():
            p.zero_()


def _supernet(steps: int) -> SuperNet:
    # One cell, a reduction cell; its output is the last node alone.
    config = SearchConfig(init_channels=4, layers=1, steps=steps, multiplier=1, num_classes=10)
    model = SuperNet(config, generator=seeded_generator(0))
    with torch.no_grad():
        model.classifier.bias.zero_()  # predictions follow the cell's output, not a bias
    return model


def test_an_edge_keeps_the_op_whose_removal_hurts_most_not_the_largest_alpha() -> None:
    model = _supernet(steps=1)
    with torch.no_grad():
        model.alphas_reduce.fill_(-10.0)
        model.alphas_reduce[0, SEP3] = 3.0  # the largest alpha, on an op that outputs zeros
        model.alphas_reduce[0, DIL3] = 1.0  # the only op that carries the input
    _dead(model, 0, SEP3)
    for op in range(len(PRIMITIVES)):
        _dead(model, 1, op)  # the other input edge carries nothing
    batches = _self_labelled(model)
    assert score(model, batches).accuracy == 1.0
    argmax = discretize(model.alphas_normal, model.alphas_reduce, 1, 1).reduce
    assert argmax[0] == ("sep_conv_3x3", 0)

    candidates = [k for k in range(len(PRIMITIVES)) if k != PRIMITIVES.index("none")]
    kept, scores = choose_op(model, batches, reduction=True, row=0, candidates=candidates)
    assert PRIMITIVES[kept] == "dil_conv_3x3"
    assert scores[SEP3].accuracy == 1.0  # removing the largest alpha changes nothing
    assert scores[DIL3].accuracy < min(s.accuracy for k, s in scores.items() if k != DIL3)
    assert model.projection is None  # scoring leaves the supernet as it found it


def test_a_node_keeps_the_two_inputs_whose_removal_hurts_most() -> None:
    model = _supernet(steps=2)
    with torch.no_grad():
        model.alphas_reduce[2:].fill_(-10.0)  # node 1's inputs: rows 2, 3, 4
        model.alphas_reduce[2, SEP3] = 5.0  # strongest edge by alpha, but it outputs zeros
        for row in (3, 4):
            model.alphas_reduce[row, DIL3] = 0.5
            model.alphas_reduce[row, SEP5] = 0.5
    _dead(model, 2, SEP3)
    batches = _self_labelled(model)
    before = [b.clone() for b in model.buffers()]
    argmax = discretize(model.alphas_normal, model.alphas_reduce, 2, 1).reduce
    assert sorted(i for _, i in argmax[2:]) == [0, 1]  # DARTS keeps inputs s0 and s1

    kept, scores = choose_inputs(model, batches, reduction=True, node=1)
    assert kept == (3, 4)  # inputs s1 and node 2
    assert scores[2].accuracy == 1.0 and max(scores[3].accuracy, scores[4].accuracy) < 1.0
    assert all(torch.equal(a, b) for a, b in zip(before, model.buffers(), strict=True))


def test_a_decided_edge_carries_its_op_alone_and_a_dropped_input_nothing() -> None:
    p = Projection.empty(2).with_op(False, 0, SEP3).with_inputs(False, 1, (4, 2))
    keep, fixed = p.masks(False, torch.zeros(num_edges(2), len(PRIMITIVES)))
    assert fixed[0].tolist() == [float(k == SEP3) for k in range(len(PRIMITIVES))]
    assert keep[0].sum() == 0 and keep[3].sum() == 0 and fixed[3].sum() == 0  # row 3 dropped
    assert keep[1].sum() == len(PRIMITIVES) and keep[2].sum() == len(PRIMITIVES)
    assert Projection.from_dict(p.to_dict()) == p
    cut, _ = p.without(False, 1, DIL3).masks(False, torch.zeros(num_edges(2), len(PRIMITIVES)))
    assert cut[1, DIL3] == 0 and cut[1].sum() == len(PRIMITIVES) - 1


def test_the_decision_order_is_every_edge_then_every_node_both_cells_drawn_from_the_seed() -> None:
    points = decision_points(4, seed=0)
    assert len(points) == 14 + 3 and points == decision_points(4, seed=0)
    assert points != decision_points(4, seed=1)
    for cell in (0, 1):
        assert sorted(p[cell][2] for p in points[:14]) == list(range(14))
        assert sorted(p[cell][2] for p in points[14:]) == [1, 2, 3]
        assert {p[cell][1] for p in points} == {bool(cell)}
    assert tuning_epochs(4, 5) == 80  # the reference's 81 less the epoch after the last


@pytest.fixture(scope="module")
def uninterrupted() -> tuple[SearchResult, list[Progress]]:
    reports: list[Progress] = []
    result = search(*_data(), FAST, PT, device="cpu", on_progress=reports.append)
    return result, reports


def _data() -> tuple[ImageDataset, ImageDataset]:
    return _dataset(32, 0), _dataset(32, 1)


def test_a_search_with_projection_ends_in_its_decisions_and_records_them(
    uninterrupted: tuple[SearchResult, list[Progress]],
) -> None:
    result, reports = uninterrupted
    assert result.perturbation is not None
    decisions = result.perturbation["decisions"]
    assert len(decisions) == 2 * (num_edges(2) + 1)
    ops = {(d["cell"], d["at"]): d["chosen"] for d in decisions if d["kind"] == "op"}
    inputs = {d["cell"]: d["chosen"] for d in decisions if d["kind"] == "inputs"}
    starts = {0: 0, 1: 2}  # the first row of each node
    for cell, genotype in (("normal", result.genotype.normal), ("reduce", result.genotype.reduce)):
        rows = [0, 1, *inputs[cell]]
        assert [op for op, _ in genotype] == [ops[(cell, r)] for r in rows]
        assert [i for _, i in genotype] == [r - starts[0 if r < 2 else 1] for r in rows]
    assert [h.phase for h in result.history] == ["search"] + ["projection"] * 5
    assert (reports[-1].step, reports[-1].total) == (2 + 5, 2 + 5)
    assert json.loads(json.dumps(result.perturbation)) == result.perturbation  # ledger-ready
    health = search_health(result)
    assert health["perturbation_decisions"] == len(decisions)
    assert len(health["skip_per_epoch"]) == 6


def test_resume_in_the_middle_of_the_selection_equals_an_uninterrupted_run(
    tmp_path: Path, uninterrupted: tuple[SearchResult, list[Progress]]
) -> None:
    train, val = _data()
    full = uninterrupted[0]
    state = tmp_path / "search_state.pt"
    token = CancelToken()

    def stop_at_the_third_point(p: Progress) -> None:
        if p.metrics.get("decision_point") == 3.0:
            token.cancel()

    with pytest.raises(RepairCancelled):
        search(train, val, FAST, PT, device="cpu", on_progress=stop_at_the_third_point,
               cancel=token, state_path=state)  # fmt: skip
    saved = read_state_file(state, file_format=STATE_FORMAT, version=1, what="search state")
    assert saved["extra"]["projection"]["points"] == 3  # stopped mid-selection
    resumed = search(train, val, FAST, PT, device="cpu", state_path=state)
    assert resumed.genotype == full.genotype
    assert resumed.perturbation == full.perturbation
    assert torch.equal(resumed.alphas_normal, full.alphas_normal)
    assert resumed.history == full.history
    with pytest.raises(RepairInputError, match="cannot continue"):
        search(train, val, FAST, replace(PT, epochs=2), device="cpu", state_path=state)


def test_a_skip_cap_keeps_the_normal_cell_under_it() -> None:
    capped = search(*_data(), FAST, replace(PT, proj_interval=0, max_skip_normal=0),
                    device="cpu")  # fmt: skip
    assert all(op != "skip_connect" for op, _ in capped.genotype.normal)


def test_projection_settings_are_validated() -> None:
    with pytest.raises(RepairInputError, match="exclude each other"):
        SearchSettings(projection=True, early_stop=True, hessian_every=1)
    with pytest.raises(RepairInputError, match="proj_interval"):
        SearchSettings(proj_interval=-1)
    with pytest.raises(RepairInputError, match="proj_eval_batches"):
        SearchSettings(proj_eval_batches=0)
