"""The whole repair on a small real dataset: end to end, resume, cancel, bad inputs."""

from __future__ import annotations

import json
from pathlib import Path

import onnxruntime as ort
import pytest
import torch

from repair_core.checkpoint import load_model
from repair_core.datasets.types import DatasetSplits, ImageDataset
from repair_core.errors import RepairInputError
from repair_core.models import load_deployed
from repair_core.pipeline import RepairConfig, compare, repair
from repair_core.progress import CancelToken, Progress, RepairCancelled
from repair_core.search.genotype import Genotype
from tests.digits_problem import RepairProblem


@pytest.fixture
def smoke_overrides() -> dict[str, int | float | bool | str]:
    # Even smaller than the smoke profile, so each test takes a few seconds on 2 cores.
    return {"evaluation.corruptions": "gaussian_noise,fog,pixelate", "evaluation.max_images": 60}


def _config(overrides: dict[str, object], **kwargs: object) -> RepairConfig:
    return RepairConfig(profile="smoke", budget=40, overrides=overrides, **kwargs)  # type: ignore[arg-type]


def test_smoke_profile_repairs_end_to_end_and_writes_genotype_checkpoint_and_report(
    digits_problem: RepairProblem, smoke_overrides: dict[str, object], tmp_path: Path
) -> None:
    seen: list[Progress] = []
    result = repair(
        digits_problem.deployed(), digits_problem.data, digits_problem.failures,
        _config(smoke_overrides), work_dir=tmp_path, device="cpu", on_progress=seen.append,
    )  # fmt: skip
    assert isinstance(result.genotype, Genotype)
    loaded = load_model(result.checkpoint)
    assert loaded.genotype == result.genotype
    x = digits_problem.data.test.images[:5].float() / 255
    assert loaded.model(x).shape == (5, 10)
    report = result.report
    assert set(report.models) == {"original", "CF-DARTS"}
    assert report.models["original"].held_out_failures == 0.0  # confirmed failures only
    assert 0.0 <= report.models["CF-DARTS"].clean <= 100.0
    info = report.info["variants"]["CF-DARTS"]
    assert info["core_set_size"] == 40
    assert info["failures_confirmed"] + info["failures_dropped_correctly_classified"] == len(
        digits_problem.failures
    )
    assert (tmp_path / "report.json").exists() and (tmp_path / "report.png").exists()
    assert set(result.timings) >= {
        "confirming", "selecting", "searching@1", "retraining@1", "exporting"
    }  # fmt: skip
    # The exports are the checkpoint's network: onnxruntime on [0, 1] pixels matches it.
    assert set(result.exports) == {"onnx", "torchscript"}
    exports = report.info["exports"]
    assert all(exports[f]["max_abs_diff"] <= 1e-4 for f in ("onnx", "torchscript"))
    (logits,) = ort.InferenceSession(
        str(result.exports["onnx"]), providers=["CPUExecutionProvider"]
    ).run(None, {"pixels": x.numpy()})
    with torch.no_grad():
        assert float((torch.from_numpy(logits) - loaded.model(x)).abs().max()) <= 1e-4
    stats = report.info["model_stats"]
    assert set(stats) == {"original", "CF-DARTS"}
    assert stats["CF-DARTS"]["params"] == sum(p.numel() for p in loaded.model.parameters())
    assert all(s["flops"] > 0 for s in stats.values())
    markdown = (tmp_path / "report.md").read_text()
    assert "| Model | Parameters | FLOPs |" in markdown and "- onnx: max abs logit" in markdown
    assert json.loads((tmp_path / "report.json").read_text())["info"]["exports"] == exports
    # The per-epoch curves the report figures draw, kept in the ledger.
    assert result.deployed_genotype == digits_problem.deployed().genotype
    assert [e["epoch"] for e in result.curves.search] == list(
        range(1, len(result.curves.search) + 1)
    )
    assert result.curves.search and all(e["alphas_normal"] for e in result.curves.search)
    assert len(result.curves.retrain) == 1 and "loss" in result.curves.retrain[0][-1]
    stages = [p.stage for p in seen]
    assert stages.index("selecting") < stages.index("searching") < stages.index("retraining")
    percents = [p.metrics["overall_percent"] for p in seen]
    assert percents == sorted(percents) and percents[-1] == pytest.approx(100.0, abs=0.5)


def test_a_repair_interrupted_during_search_resumes_without_redoing_selection(
    digits_problem: RepairProblem, smoke_overrides: dict[str, object], tmp_path: Path
) -> None:
    config = _config({**smoke_overrides, "search.epochs": 3})

    def crash_in_second_search_epoch(progress: Progress) -> None:
        if progress.stage == "searching" and progress.metrics.get("epoch", 0) >= 2:
            raise KeyboardInterrupt("simulated crash")

    with pytest.raises(KeyboardInterrupt):
        repair(
            digits_problem.deployed(), digits_problem.data, digits_problem.failures, config,
            work_dir=tmp_path, device="cpu", on_progress=crash_in_second_search_epoch,
        )  # fmt: skip
    selection_file = tmp_path / "selection.safetensors"
    stamp = selection_file.stat().st_mtime_ns
    seen: list[Progress] = []
    result = repair(
        digits_problem.deployed(), digits_problem.data, digits_problem.failures, config,
        work_dir=tmp_path, device="cpu", on_progress=seen.append,
    )  # fmt: skip
    assert selection_file.stat().st_mtime_ns == stamp
    stages = {p.stage for p in seen}
    assert "selecting" not in stages and "confirming" not in stages
    first_search = next(p for p in seen if p.stage == "searching" and p.step > 0)
    assert first_search.step > 1, "search restarted from zero instead of its last epoch"
    assert result.checkpoint.exists()


def test_cancellation_stops_within_one_step(
    digits_problem: RepairProblem, smoke_overrides: dict[str, object], tmp_path: Path
) -> None:
    token = CancelToken()
    steps_after_cancel: list[Progress] = []

    def cancel_in_search(progress: Progress) -> None:
        if token.cancelled:
            steps_after_cancel.append(progress)
        if progress.stage == "searching" and progress.step >= 1:
            token.cancel()

    with pytest.raises(RepairCancelled):
        repair(
            digits_problem.deployed(), digits_problem.data, digits_problem.failures,
            _config(smoke_overrides), work_dir=tmp_path, device="cpu",
            on_progress=cancel_in_search, cancel=token,
        )  # fmt: skip
    assert len([p for p in steps_after_cancel if p.step > 0]) <= 1


def test_compare_scores_cf_rf_and_au_on_the_same_held_out_failures(
    digits_problem: RepairProblem, smoke_overrides: dict[str, object], tmp_path: Path
) -> None:
    configs = [_config(smoke_overrides, selection=s) for s in ("kcenter", "random", "augment")]
    report, variants = compare(
        digits_problem.deployed(), digits_problem.data, digits_problem.failures, configs,
        work_dir=tmp_path, device="cpu",
    )  # fmt: skip
    assert list(report.models) == ["original", "CF-DARTS", "RF-DARTS", "AU-DARTS"]
    cf, rf, au = (set(v.held_out.tolist()) for v in variants)
    assert report.info["held_out_failures"] == len(cf & rf & au)
    assert au > cf  # AU selects no failures, so holds all confirmed ones out
    assert json.loads(report.to_json())["models"]["AU-DARTS"]["clean"] >= 0


def test_a_repair_with_another_variant_resumes_in_it_without_redoing_the_primary(
    digits_problem: RepairProblem, smoke_overrides: dict[str, object], tmp_path: Path
) -> None:
    config = _config(smoke_overrides)
    also = [config.as_variant("CutMix")]
    primary_model = tmp_path / "iter1" / "model.safetensors"

    def crash_in_the_second_variant(progress: Progress) -> None:
        if progress.stage == "retraining" and primary_model.exists():
            raise KeyboardInterrupt("simulated crash")

    with pytest.raises(KeyboardInterrupt):
        repair(
            digits_problem.deployed(), digits_problem.data, digits_problem.failures, config,
            work_dir=tmp_path, device="cpu", on_progress=crash_in_the_second_variant, also=also,
        )  # fmt: skip
    stamp = primary_model.stat().st_mtime_ns
    seen: list[Progress] = []
    result = repair(
        digits_problem.deployed(), digits_problem.data, digits_problem.failures, config,
        work_dir=tmp_path, device="cpu", on_progress=seen.append, also=also,
    )  # fmt: skip
    assert primary_model.stat().st_mtime_ns == stamp
    assert {"confirming", "selecting", "searching"}.isdisjoint(p.stage for p in seen)
    assert result.primary == "CF-DARTS" and list(result.report.models) == [
        "original", "CF-DARTS", "CutMix"
    ]  # fmt: skip
    assert (
        result.variant_checkpoints["CutMix"] == tmp_path / "CutMix" / "iter1" / "model.safetensors"
    )
    assert result.checkpoint.read_bytes() == primary_model.read_bytes()
    assert len(result.report.info["held_out_rows"]) == result.report.info["held_out_failures"]
    # The other variant is exported too, in its own folder, and its ONNX is its network.
    cutmix = result.variant_exports["CutMix"]
    assert cutmix == {
        "onnx": tmp_path / "CutMix" / "model.onnx",
        "torchscript": tmp_path / "CutMix" / "model.torchscript.pt",
    }
    assert set(result.report.info["variant_exports"]) == {"CutMix"}
    x = digits_problem.data.test.images[:4].float() / 255
    (logits,) = ort.InferenceSession(str(cutmix["onnx"]), providers=["CPUExecutionProvider"]).run(
        None, {"pixels": x.numpy()}
    )
    with torch.no_grad():
        expected = load_deployed(result.variant_checkpoints["CutMix"]).model(x)
    assert float((torch.from_numpy(logits) - expected).abs().max()) <= 1e-4


def _splits_like(data: DatasetSplits, images: torch.Tensor) -> DatasetSplits:
    train = ImageDataset(images, data.train.labels[: len(images)], data.class_names)
    return DatasetSplits(train=train, test=data.test)


def test_bad_inputs_are_refused_with_a_message_naming_the_problem(
    digits_problem: RepairProblem, tmp_path: Path
) -> None:
    p, deployed, config = digits_problem, digits_problem.deployed(), RepairConfig(profile="smoke")
    with pytest.raises(RepairInputError, match="labels outside"):
        ImageDataset(p.failures.images, p.failures.labels + 10, p.data.class_names)
    wrong_size = torch.zeros((4, 1, 9, 9), dtype=torch.uint8)
    with pytest.raises(RepairInputError, match="1x9x9"):
        repair(deployed, _splits_like(p.data, wrong_size), p.failures, config, work_dir=tmp_path)
    rgb = ImageDataset(p.failures.images.repeat(1, 3, 1, 1), p.failures.labels, p.data.class_names)
    with pytest.raises(RepairInputError, match="failures images are 3x8x8"):
        repair(deployed, p.data, rgb, config, work_dir=tmp_path)
    names = tuple(f"c{i}" for i in range(5))
    small = DatasetSplits(
        train=ImageDataset(p.data.train.images, p.data.train.labels % 5, names),
        test=ImageDataset(p.data.test.images, p.data.test.labels % 5, names),
    )
    with pytest.raises(RepairInputError, match="10 classes but the dataset has 5"):
        repair(deployed, small, p.failures, config, work_dir=tmp_path)
    clean = ImageDataset(p.data.test.images, p.data.test.labels, p.data.class_names)
    correct = deployed.model(clean.images.float() / 255).argmax(1) == clean.labels
    right_only = clean.subset(correct.nonzero().squeeze(1))
    with pytest.raises(RepairInputError, match="nothing to repair"):
        repair(deployed, p.data, right_only, config, work_dir=tmp_path / "x")
    with pytest.raises(RepairInputError, match="choose one of"):
        RepairConfig(selection="nearest")
    with pytest.raises(RepairInputError, match="is not a setting"):
        typo = RepairConfig(profile="smoke", overrides={"train.epoch": 1})
        repair(deployed, p.data, p.failures, typo, work_dir=tmp_path / "y")
