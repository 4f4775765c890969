"""The searcher end to end on CPU: tiny data, progress, cancellation, exact resume."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest
import torch

from repair_core.datasets.types import ImageDataset
from repair_core.errors import RepairInputError
from repair_core.progress import CancelToken, Progress, RepairCancelled
from repair_core.search.batches import EpochBatches
from repair_core.search.genotype import Genotype
from repair_core.search.searcher import SearchSettings, search
from repair_core.search.supernet import SearchConfig

CLASSES = ("a", "b", "c")
FAST = SearchConfig(init_channels=4, layers=3, steps=2, multiplier=2, num_classes=3)


def _dataset(n: int, seed: int, size: int = 8, channels: int = 3) -> ImageDataset:
    """Noise plus a class-dependent brightness band: learnable in a few steps."""
    gen = torch.Generator().manual_seed(seed)
    labels = torch.randint(0, 3, (n,), generator=gen)
    images = torch.randint(0, 80, (n, channels, size, size), generator=gen, dtype=torch.uint8)
    images[:, :, : size // 2] += (labels * 80).to(torch.uint8)[:, None, None, None]
    return ImageDataset(images, labels, CLASSES)


@pytest.mark.slow  # about 4 s on an idle core: real 4-node cells, a few hundred images
def test_tiny_search_runs_end_to_end_and_yields_a_valid_genotype() -> None:
    train, val = _dataset(192, 0), _dataset(128, 1)
    config = SearchConfig(init_channels=4, layers=3, num_classes=3)  # 4-node DARTS cells
    settings = SearchSettings(epochs=2, batch_size=64, order="first", report_every=2)
    reports: list[Progress] = []
    result = search(train, val, config, settings, device="cpu", on_progress=reports.append)
    assert isinstance(result.genotype, Genotype)
    assert Genotype.from_json(result.genotype.to_json()) == result.genotype
    assert len(result.genotype.normal) == 8 and result.genotype.normal_concat == (2, 3, 4, 5)
    assert result.alphas_normal.shape == (14, 8) and result.alphas_normal.device.type == "cpu"
    assert [h.epoch for h in result.history] == [1, 2]
    assert result.history[-1].genotype == result.genotype
    assert result.history[0].lr == pytest.approx(0.025)
    # softmax(alpha) per edge at each epoch end, the last equal to the final alphas'.
    last = result.history[-1]
    assert last.alphas_normal is not None and last.alphas_reduce is not None
    assert len(last.alphas_normal) == 14 and all(len(row) == 8 for row in last.alphas_normal)
    final = torch.softmax(result.alphas_normal, dim=-1)
    assert torch.tensor(last.alphas_normal) == pytest.approx(final, abs=1e-6)
    # 3 steps an epoch, reported every 2 steps and at each epoch end.
    assert [(p.step, p.total) for p in reports] == [(2, 6), (3, 6), (5, 6), (6, 6)]
    assert all(p.stage == "searching" for p in reports)
    assert {"loss", "val_loss", "train_acc"} <= set(reports[-1].metrics)
    assert 0.0 <= reports[-1].metrics["train_acc"] <= 1.0


def test_same_seed_gives_the_same_search_and_another_seed_does_not() -> None:
    train, val = _dataset(64, 0), _dataset(64, 1)
    settings = SearchSettings(epochs=1, batch_size=32, order="first")
    a = search(train, val, FAST, settings, device="cpu")
    b = search(train, val, FAST, settings, device="cpu")
    c = search(train, val, FAST, replace(settings, seed=1), device="cpu")
    assert torch.equal(a.alphas_normal, b.alphas_normal)
    assert torch.equal(a.alphas_reduce, b.alphas_reduce)
    assert not torch.equal(a.alphas_normal, c.alphas_normal)


def test_cancel_stops_at_the_next_step_boundary() -> None:
    train, val = _dataset(64, 0), _dataset(64, 1)
    token = CancelToken()
    seen: list[int] = []

    def on_progress(p: Progress) -> None:
        seen.append(p.step)
        token.cancel()

    settings = SearchSettings(epochs=3, batch_size=16, order="first", report_every=1)
    with pytest.raises(RepairCancelled):
        search(train, val, FAST, settings, device="cpu", on_progress=on_progress, cancel=token)
    assert seen == [1]


def test_resume_after_a_killed_run_matches_an_uninterrupted_run_exactly(tmp_path: Path) -> None:
    train, val = _dataset(64, 0), _dataset(64, 1)
    settings = SearchSettings(epochs=2, batch_size=32, order="first", report_every=100)
    full = search(train, val, FAST, settings, device="cpu")

    state = tmp_path / "search_state.pt"
    token = CancelToken()

    def stop_after_first_epoch(p: Progress) -> None:
        if p.metrics["epoch"] == 1.0:
            token.cancel()

    with pytest.raises(RepairCancelled):
        search(
            train, val, FAST, settings, device="cpu",
            on_progress=stop_after_first_epoch, cancel=token, state_path=state,
        )  # fmt: skip
    assert state.exists()
    steps: list[int] = []
    resumed = search(
        train, val, FAST, settings, device="cpu", state_path=state,
        on_progress=lambda p: steps.append(p.step),
    )  # fmt: skip
    assert steps == [4]  # only the second epoch ran
    assert torch.equal(resumed.alphas_normal, full.alphas_normal)
    assert torch.equal(resumed.alphas_reduce, full.alphas_reduce)
    assert resumed.history == full.history
    # A finished state resumes to the same result without running a step.
    again = search(train, val, FAST, settings, device="cpu", state_path=state)
    assert torch.equal(again.alphas_normal, full.alphas_normal)


def test_a_state_from_another_search_is_refused(tmp_path: Path) -> None:
    train, val = _dataset(32, 0), _dataset(32, 1)
    settings = SearchSettings(epochs=1, batch_size=32, order="first")
    state = tmp_path / "state.pt"
    search(train, val, FAST, settings, device="cpu", state_path=state)
    with pytest.raises(RepairInputError, match="other data, config or settings"):
        search(train, val, FAST, replace(settings, seed=5), device="cpu", state_path=state)
    state.write_bytes(b"garbage")
    with pytest.raises(RepairInputError, match="cannot be read"):
        search(train, val, FAST, settings, device="cpu", state_path=state)


def test_mismatched_data_is_rejected_before_searching() -> None:
    gray = _dataset(16, 0, channels=1)
    rgb = _dataset(16, 1)
    settings = SearchSettings(epochs=1, order="first")
    with pytest.raises(RepairInputError, match="channels"):
        search(gray, rgb, FAST, settings, device="cpu")
    with pytest.raises(RepairInputError, match="val images"):
        search(rgb, _dataset(16, 1, size=16), FAST, settings, device="cpu")


def test_epoch_batches_cover_small_sets_by_cycling_and_scale_to_unit_range() -> None:
    train, val = _dataset(20, 0), _dataset(6, 1)
    batches = EpochBatches(train, val, 3, 4, 4, True, torch.Generator().manual_seed(0))
    for step in range(3):
        x, y = batches.val(step)
        assert x.shape == (4, 3, 8, 8) and y.shape == (4,)
        assert x.dtype == torch.float32 and float(x.min()) >= 0.0 and float(x.max()) <= 1.0
