"""`bench.reproduce --budgets ...` and `--iterations ...` on a tiny synthetic problem:
each sweep writes a table, a chart and one point per value and seed."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pytest
import torch

from bench import reproduce
from repair_core.datasets.types import DatasetSplits, ImageDataset

TINY = [
    ("search.epochs", "1"), ("search.steps_per_epoch", "2"), ("train.epochs", "1"),
    ("evaluation.corruptions", "fog"), ("evaluation.severities", "5"),
    ("evaluation.max_images", "40"),
]  # fmt: skip


def _stripes(n: int, seed: int) -> ImageDataset:
    """3-class 8x8 RGB images: the class is the channel that carries a bright stripe."""
    g = torch.Generator().manual_seed(seed)
    images = torch.randint(0, 80, (n, 3, 8, 8), generator=g, dtype=torch.uint8)
    labels = torch.arange(n) % 3
    for i, c in enumerate(labels.tolist()):
        images[i, c, :, 2:5] = 230
    return ImageDataset(images, labels, ("r", "g", "b"))


def synthetic(args: argparse.Namespace, seed: int) -> DatasetSplits:
    return DatasetSplits(train=_stripes(120, seed), test=_stripes(120, seed + 100))


def _run(tmp_path: Path, *sweep: str) -> tuple[str, dict[str, list[dict[str, object]]]]:
    argv = ["--profile", "smoke", "--phi0-epochs", "2", "--device", "cpu", "--seeds", "0"]
    argv += [a for key, value in TINY for a in ("--set", key, value)]
    reproduce.main([*argv, *sweep, "--out", str(tmp_path)], load=synthetic)
    results = json.loads((tmp_path / "results.json").read_text())
    return (tmp_path / "summary.md").read_text(), results["sweeps"]


def test_a_budget_sweep_scores_the_variant_at_each_budget_in_a_table_and_a_chart(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    summary, sweeps = _run(tmp_path, "--budgets", "16", "4")
    points = sweeps["budget"]
    assert [p["value"] for p in points] == [4, 16]
    assert all(p["row"] == "CF-DARTS" for p in points)
    # A larger B selects more failures, so fewer are held out to score.
    assert points[0]["held_out_count"] > points[1]["held_out_count"]
    for p in points:
        # The whole test split under the failures' corruption is scored whatever the list.
        assert p["corrupted"] is not None
        assert 0.0 <= float(p["clean"]) <= 100.0  # type: ignore[arg-type]
    assert "synthetic problem (not CIFAR-10)" in summary and "B swept" in summary
    assert "| B (core failures) | held-out failures | corrupted test split | clean |" in summary
    assert "\n| 4 | " in summary and "\n| 16 | " in summary
    assert (tmp_path / "sweep-budget.png").read_bytes()[:4] == b"\x89PNG"
    assert "CF-DARTS vs budget" in capsys.readouterr().out


def test_an_iteration_sweep_scores_each_iteration_of_one_continued_search(
    tmp_path: Path,
) -> None:
    summary, sweeps = _run(tmp_path, "--iterations", "1", "2", "--budget", "8")
    points = sweeps["iterations"]
    assert [(p["value"], p["row"]) for p in points] == [(1, "CF-DARTS-1"), (2, "CF-DARTS-2")]
    # Both rows are scored on the same held-out failures and on the whole corrupted split.
    assert len({p["held_out_count"] for p in points}) == 1
    assert all(p["corrupted"] is not None for p in points)
    assert "| iterations | held-out failures |" in summary
    assert (tmp_path / "sweep-iterations.png").read_bytes()[:4] == b"\x89PNG"
    ledger = json.loads((tmp_path / "seed0/sweep-iterations/CF-DARTS/ledger.json").read_text())
    assert {"searching@1", "searching@2", "retraining@1", "retraining@2"} <= set(ledger["stages"])
