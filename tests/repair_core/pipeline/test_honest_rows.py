"""What the rows of a repair's report were trained on, checked by ids: the control sees no
failure, CF-DARTSE sees exactly C, and iterations 2 and 3 continue the search."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import pytest
import torch
from safetensors.torch import load_file

from repair_core import choices
from repair_core.datasets.types import ImageDataset
from repair_core.pipeline import RepairConfig, compare, repair
from repair_core.pipeline import variant as variant_module
from repair_core.pipeline.config import CONTROL_SEED_OFFSET
from repair_core.search.genotype import Genotype
from repair_core.search.search_state import STATE_FORMAT, STATE_VERSION
from repair_core.search.searcher import SearchResult
from repair_core.train.state import read_state_file
from tests.digits_problem import RepairProblem

OVERRIDES = {"evaluation.corruptions": "fog", "evaluation.max_images": 60}


def _config(overrides: dict[str, Any] = OVERRIDES, **kwargs: Any) -> RepairConfig:
    return RepairConfig(
        profile="smoke", budget=40, overrides=overrides, failure_name="gaussian_noise", **kwargs
    )


def _ledger(folder: Path) -> dict[str, Any]:
    stages: dict[str, Any] = json.loads((folder / "ledger.json").read_text())["stages"]
    return stages


def _row_hashes(data: ImageDataset) -> list[str]:
    return [hashlib.sha256(image.numpy().tobytes()).hexdigest() for image in data.images]


def test_control_row_is_present_and_trained_without_failures(
    digits_problem: RepairProblem, tmp_path: Path
) -> None:
    deployed = digits_problem.deployed()
    result = repair(
        deployed, digits_problem.data, digits_problem.failures, _config(control=True),
        work_dir=tmp_path, device="cpu",
    )  # fmt: skip
    report = result.report
    assert list(report.models) == ["original", "Control", "CF-DARTS"]
    assert report.info["control"] == "Control" and report.info["primary"] == "CF-DARTS"
    assert report.has_all_column  # gaussian_noise scored on the whole test split
    control = _ledger(tmp_path / "Control")
    repaired = _ledger(tmp_path)
    assert control["retraining@1"]["train_failure_rows"] == []
    assert control["retraining@1"]["train_images"] == repaired["retraining@1"]["train_images"]
    assert (
        control["retraining@1"]["seed"] == CONTROL_SEED_OFFSET != repaired["retraining@1"]["seed"]
    )
    assert "selecting" not in control and not (tmp_path / "Control/selection.safetensors").exists()
    info = report.info["variants"]["Control"]
    assert [Genotype.from_dict(g) for g in info["genotypes"]] == [deployed.genotype]
    # The control selects nothing, so it does not shrink the held-out set of the repair.
    assert (
        report.info["held_out_failures"] == report.info["variants"]["CF-DARTS"]["held_out_failures"]
    )
    assert set(result.variant_checkpoints) == {"CF-DARTS", "Control"}
    assert "**CF-DARTS** vs Control" in (tmp_path / "report.md").read_text()


def test_cf_dartse_retrains_on_train_plus_exactly_c(
    digits_problem: RepairProblem, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen: list[ImageDataset] = []
    real_retrain = variant_module.retrain

    def recording_retrain(genotype: Genotype, config: Any, train: ImageDataset, *a: Any, **k: Any):  # type: ignore[no-untyped-def]
        seen.append(train)
        return real_retrain(genotype, config, train, *a, **k)

    monkeypatch.setattr(variant_module, "retrain", recording_retrain)
    failures = digits_problem.failures
    result = repair(
        digits_problem.deployed(), digits_problem.data, failures,
        _config(retrain="with-failures"), work_dir=tmp_path, device="cpu",
    )  # fmt: skip
    (train_set,) = seen
    ledger = _ledger(tmp_path)
    rows = load_file(str(tmp_path / "confirmed.safetensors"))["rows"]
    selected = load_file(str(tmp_path / "selection.safetensors"))["selected"]
    core_rows = rows[selected].tolist()
    assert ledger["retraining@1"]["train_failure_rows"] == core_rows
    held_out = sorted(set(rows.tolist()) - set(core_rows))
    assert result.report.info["held_out_failures"] == len(held_out) > 0
    trained = set(_row_hashes(train_set))
    core = _row_hashes(failures.subset(torch.tensor(core_rows)))
    assert set(core) <= trained  # every image of C
    assert trained.isdisjoint(_row_hashes(failures.subset(torch.tensor(held_out))))
    clean_rows = ledger["retraining@1"]["train_images"] - len(core_rows)
    assert len(train_set) == clean_rows + len(core_rows) == ledger["retraining@1"]["train_images"]
    assert clean_rows == min(len(digits_problem.data.train), 1024)  # smoke train cap


def test_iterations_continue_the_search_and_each_is_scored(
    digits_problem: RepairProblem, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[tuple[int, int | None]] = []  # (epochs asked, epochs in the state file before)
    real_search = variant_module.run_search

    def recording_search(*args: Any, epochs: int, state_path: Path, **kwargs: Any) -> SearchResult:
        before = None
        if state_path.exists():
            state = read_state_file(
                state_path, file_format=STATE_FORMAT, version=STATE_VERSION, what="search state"
            )
            before = int(state["epoch"])
        calls.append((epochs, before))
        return real_search(*args, epochs=epochs, state_path=state_path, **kwargs)

    monkeypatch.setattr(variant_module, "run_search", recording_search)
    result = repair(
        digits_problem.deployed(), digits_problem.data, digits_problem.failures,
        _config(iterations=3), work_dir=tmp_path, device="cpu",
    )  # fmt: skip
    epochs = 2  # the smoke profile's search epochs
    assert calls == [(epochs, None), (2 * epochs, epochs), (3 * epochs, 2 * epochs)]
    report = result.report
    assert list(report.models) == ["original", "CF-DARTS-1", "CF-DARTS-2", "CF-DARTS-3"]
    assert report.info["rows"]["CF-DARTS"] == ["CF-DARTS-1", "CF-DARTS-2", "CF-DARTS-3"]
    for name in ("CF-DARTS-1", "CF-DARTS-2", "CF-DARTS-3"):
        scores = report.models[name]
        assert scores.held_out_failures is not None and 0.0 <= scores.clean <= 100.0
    checkpoints = [tmp_path / f"iter{k}" / "model.safetensors" for k in (1, 2, 3)]
    assert all(c.exists() for c in checkpoints)
    assert len({c.read_bytes() for c in checkpoints}) == 3


def test_baselines_retrain_the_deployed_architecture(
    digits_problem: RepairProblem, tmp_path: Path
) -> None:
    deployed = digits_problem.deployed()
    one_epoch = {**OVERRIDES, "train.epochs": 1}
    configs = [
        RepairConfig.from_dict(
            {**_config(overrides=one_epoch).to_dict(), **choices.parse_variant(name)}
        )
        for name in ("FourierStyle", "AugMix-E", "CutMix-E")
    ]
    report, variants = compare(
        deployed, digits_problem.data, digits_problem.failures, configs,
        work_dir=tmp_path, device="cpu",
    )  # fmt: skip
    assert list(report.models) == ["original", "FourierStyle", "AugMix-E", "CutMix-E"]
    assert report.control is None  # none asked for: the verdicts say they are against phi0
    for v in variants:
        assert v.genotypes == (deployed.genotype,)
        assert _ledger(tmp_path / v.name)["retraining@1"]["seed"] == CONTROL_SEED_OFFSET
    fourier = next(v for v in variants if v.name == "FourierStyle")
    rows = load_file(str(tmp_path / "FourierStyle/confirmed.safetensors"))["rows"]
    selected = load_file(str(tmp_path / "FourierStyle/selection.safetensors"))["selected"]
    style_rows = fourier.info["style_rows"]
    assert sorted(style_rows) == sorted(rows[selected].tolist()) and style_rows
    assert fourier.info["train_failure_rows"] == []  # C styles the images, is not trained on
    for v in variants:
        assert set(style_rows).isdisjoint(v.held_out.tolist())
    augmix_e = next(v for v in variants if v.name == "AugMix-E")
    assert len(augmix_e.info["train_failure_rows"]) == augmix_e.info["core_set_size"] == 40
