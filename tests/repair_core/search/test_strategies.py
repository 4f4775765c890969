"""The search strategies as settings of one loop: warm-up, eigenvalues, early stop,
drop path; each resumes after an interruption exactly like an uninterrupted run."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest
import torch

from repair_core.errors import RepairInputError
from repair_core.progress import CancelToken, Progress, RepairCancelled
from repair_core.rng import seeded_generator
from repair_core.search.discretize import discretize
from repair_core.search.searcher import SearchSettings, search
from repair_core.search.supernet import SearchConfig, SuperNet
from tests.repair_core.search.test_searcher import FAST, _dataset

PC = replace(FAST, partial_channels=2, edge_normalization=True)
BASE = SearchSettings(epochs=3, batch_size=32, order="first", report_every=100)


def test_tracking_the_eigenvalue_leaves_the_search_unchanged() -> None:
    train, val = _dataset(64, 0), _dataset(64, 1)
    settings = replace(BASE, epochs=2)
    plain = search(train, val, FAST, settings, device="cpu")
    tracked = search(train, val, FAST, replace(settings, hessian_every=1, power_iters=3),
                     device="cpu")  # fmt: skip
    assert torch.equal(plain.alphas_normal, tracked.alphas_normal)
    assert torch.equal(plain.alphas_reduce, tracked.alphas_reduce)
    assert [h.eigenvalue for h in plain.history] == [None, None]
    assert all(h.eigenvalue is not None for h in tracked.history)
    assert [h.skip_normal for h in tracked.history] == [h.skip_normal for h in plain.history]


def test_early_stop_returns_the_architecture_of_the_stop_epoch_and_stays_stopped(
    tmp_path: Path,
) -> None:
    train, val = _dataset(32, 0), _dataset(32, 1)
    # A factor this small fires at the first chance: epoch 2 (0-based), returning epoch 0.
    settings = replace(BASE, epochs=5, hessian_every=1, power_iters=2, early_stop=True,
                       es_window=3, es_delta=1, es_factor=1e-9, es_start_epoch=0)  # fmt: skip
    reports: list[Progress] = []
    state = tmp_path / "state.pt"
    result = search(train, val, FAST, settings, device="cpu", on_progress=reports.append,
                    state_path=state)  # fmt: skip
    assert result.stopped_epoch == 1
    assert len(result.history) == 3
    assert result.genotype == result.history[0].genotype
    assert discretize(result.alphas_normal, result.alphas_reduce, 2, 2) == result.genotype
    assert (reports[-1].step, reports[-1].total) == (5, 5)
    steps: list[Progress] = []
    again = search(train, val, FAST, replace(settings, epochs=8), device="cpu",
                   on_progress=steps.append, state_path=state)  # fmt: skip
    assert steps == [] and again.stopped_epoch == 1
    assert torch.equal(again.alphas_normal, result.alphas_normal)


def test_warm_up_epochs_leave_the_alphas_at_their_initial_values() -> None:
    train, val = _dataset(32, 0), _dataset(32, 1)
    result = search(train, val, PC, replace(BASE, epochs=1, warmup_epochs=1), device="cpu")
    init = SuperNet(PC, generator=seeded_generator(0))
    assert torch.equal(result.alphas_normal, init.alphas_normal.detach())
    assert result.history[0].val_loss is None


@pytest.mark.parametrize(
    ("config", "settings"),
    [
        (PC, replace(BASE, warmup_epochs=1)),
        (
            FAST,
            replace(BASE, hessian_every=1, power_iters=2, drop_path_prob=0.3, weight_decay=8.1e-3),
        ),
    ],
    ids=["pcdarts", "robdarts-reg"],
)
def test_resume_after_a_killed_run_matches_an_uninterrupted_run(
    tmp_path: Path, config: SearchConfig, settings: SearchSettings
) -> None:
    train, val = _dataset(64, 0), _dataset(64, 1)
    full = search(train, val, config, settings, device="cpu")
    state = tmp_path / "search_state.pt"
    token = CancelToken()

    def stop_in_second_epoch(p: Progress) -> None:
        if p.metrics.get("epoch") == 2.0:
            token.cancel()

    with pytest.raises(RepairCancelled):
        search(train, val, config, settings, device="cpu", on_progress=stop_in_second_epoch,
               cancel=token, state_path=state)  # fmt: skip
    resumed = search(train, val, config, settings, device="cpu", state_path=state)
    assert torch.equal(resumed.alphas_normal, full.alphas_normal)
    assert torch.equal(resumed.alphas_reduce, full.alphas_reduce)
    assert resumed.history == full.history


def test_strategy_settings_are_validated() -> None:
    with pytest.raises(RepairInputError, match="hessian_every >= 1"):
        SearchSettings(early_stop=True)
    with pytest.raises(RepairInputError, match="drop_path_prob"):
        SearchSettings(drop_path_prob=1.0)
    with pytest.raises(RepairInputError, match="warmup_epochs"):
        SearchSettings(warmup_epochs=-1)
