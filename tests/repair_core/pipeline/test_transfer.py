"""Transfer: a searched genotype and the deployed architecture retrained on a dataset with
other classes and another image size, scored there side by side."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest
import torch

from repair_core.checkpoint import load_model
from repair_core.datasets.digits import load_digits_splits
from repair_core.datasets.types import DatasetSplits, ImageDataset
from repair_core.models import load_deployed
from repair_core.models.retrainable import ONNX_FALLBACK, DeployedArchitecture
from repair_core.pipeline import build_plan
from repair_core.pipeline.config import CONTROL_SEED_OFFSET
from repair_core.pipeline.transfer import CONTROL, TRANSFERRED, transfer
from repair_core.profiles import StagePlan
from repair_core.progress import Progress
from repair_core.search.genotype import DARTS_V2, PC_DARTS, Genotype


def _digits_12px(classes: int) -> DatasetSplits:
    """Grayscale digits 0..classes-1, upscaled from 8x8 to 12x12."""
    digits = load_digits_splits(seed=0)

    def part(d: ImageDataset) -> ImageDataset:
        keep = (d.labels < classes).nonzero().squeeze(1)
        big = torch.nn.functional.interpolate(d.images[keep].float(), size=12, mode="nearest")
        return ImageDataset(big.to(torch.uint8), d.labels[keep], d.class_names[:classes])

    return DatasetSplits(train=part(digits.train), test=part(digits.test))


def _stripes_rgb(n: int, seed: int) -> ImageDataset:
    """3-class 16x16 RGB images: the class is the colour channel that carries a stripe."""
    g = torch.Generator().manual_seed(seed)
    images = torch.randint(0, 60, (n, 3, 16, 16), generator=g, dtype=torch.uint8)
    labels = torch.arange(n) % 3
    for i, c in enumerate(labels.tolist()):
        images[i, c, :, 4:10] = 220
    return ImageDataset(images, labels, ("red", "green", "blue"))


DARTS_DEPLOYED = DeployedArchitecture("darts", genotype=DARTS_V2)

DATASETS = {
    "digits-4-classes-12px": lambda: _digits_12px(4),
    "stripes-3-classes-16px-rgb": lambda: DatasetSplits(
        train=_stripes_rgb(96, 0), test=_stripes_rgb(48, 1)
    ),
}


@pytest.mark.parametrize("name", sorted(DATASETS))
def test_transfer_retrains_both_architectures_on_the_new_dataset_and_scores_them(
    name: str, tmp_path: Path
) -> None:
    data = DATASETS[name]()
    plan = build_plan(
        "smoke",
        {
            "evaluation.corruptions": "fog",
            "evaluation.max_images": 48,
            "train.epochs": 2,
            "data.train_max_images": 120,
        },
        search="darts-1st",
        seed=0,
    )
    seen: list[Progress] = []
    result = transfer(
        PC_DARTS, DARTS_DEPLOYED, data, plan, seed=3, work_dir=tmp_path,
        failure_name="gaussian_noise", device="cpu", on_progress=seen.append,
    )  # fmt: skip
    overall = [p.metrics["overall_percent"] for p in seen]
    assert overall == sorted(overall) and overall[-1] == 100.0
    assert {p.stage for p in seen} == {"retraining", "evaluating"}
    report = result.report
    assert list(report.models) == [CONTROL, TRANSFERRED]
    assert report.control == CONTROL and report.repaired == TRANSFERRED
    # The corruption suite and the source failures' corruption on the whole new test split.
    assert set(report.corruptions) == {"fog", "gaussian_noise"} and report.has_all_column
    for scores in report.models.values():
        assert 0.0 <= scores.clean <= 100.0
    assert report.info["classes"] == list(data.class_names)
    assert report.info["input_shape"] == list(data.image_shape)
    for row, genotype in ((TRANSFERRED, PC_DARTS), (CONTROL, DARTS_V2)):
        model = load_model(result.variant_checkpoints[row])
        assert model.genotype == genotype
        assert model.class_names == data.class_names
        assert model.config.num_classes == len(data.class_names)
        assert model.config.image_size == data.image_shape[1]
        assert model.config.in_channels == data.image_shape[0]
        assert Genotype.from_dict(report.info["genotypes"][row]) == genotype
    ledger = json.loads((tmp_path / "ledger.json").read_text())["stages"]
    assert ledger[f"retraining:{TRANSFERRED}"]["seed"] == 3
    assert ledger[f"retraining:{CONTROL}"]["seed"] == 3 + CONTROL_SEED_OFFSET
    assert (
        ledger[f"retraining:{TRANSFERRED}"]["train_images"]
        == ledger[f"retraining:{CONTROL}"]["train_images"]
        == min(120, len(data.train))
    )
    assert result.checkpoint == result.variant_checkpoints[TRANSFERRED]
    assert result.primary == TRANSFERRED and result.genotype == PC_DARTS
    assert set(result.exports) <= {"onnx", "torchscript"}
    assert set(report.info["exports"]) == {"onnx", "torchscript"}
    # The Control is exported too, beside its checkpoint.
    assert set(report.info["variant_exports"]) == {CONTROL}
    assert set(result.variant_exports[CONTROL]) <= {"onnx", "torchscript"}
    assert all(p.parent == tmp_path / CONTROL for p in result.variant_exports[CONTROL].values())
    assert TRANSFERRED in (tmp_path / "report.md").read_text()
    assert (tmp_path / "report.png").stat().st_size > 0


def test_transfer_resumes_without_retraining_finished_rows(tmp_path: Path) -> None:
    data = DatasetSplits(train=_stripes_rgb(48, 0), test=_stripes_rgb(24, 1))
    plan = build_plan(
        "smoke", {"evaluation.corruptions": "fog", "train.epochs": 1}, search="darts-1st", seed=0
    )
    plan = replace(plan, evaluation=replace(plan.evaluation, severities=(5,)))
    first = transfer(PC_DARTS, DARTS_DEPLOYED, data, plan, seed=0, work_dir=tmp_path, device="cpu")
    stamps = {row: p.stat().st_mtime_ns for row, p in first.variant_checkpoints.items()}
    again = transfer(PC_DARTS, DARTS_DEPLOYED, data, plan, seed=0, work_dir=tmp_path, device="cpu")
    assert {row: p.stat().st_mtime_ns for row, p in again.variant_checkpoints.items()} == stamps
    assert again.report.to_dict() == first.report.to_dict()


def _small_plan() -> StagePlan:
    return build_plan(
        "smoke",
        {"evaluation.corruptions": "fog", "evaluation.severities": "5", "train.epochs": 1,
         "evaluation.max_images": 24, "data.train_max_images": 64},
        search="darts-1st",
        seed=0,
    )  # fmt: skip


@pytest.mark.parametrize(
    ("family", "architecture", "dataset"),
    [
        ("timm", "mobilenetv3_small_050", "digits-4-classes-12px"),
        ("torchvision", "resnet18", "stripes-3-classes-16px-rgb"),
    ],
)
def test_the_control_of_a_registry_model_retrains_its_architecture_for_the_new_dataset(
    family: str, architecture: str, dataset: str, tmp_path: Path
) -> None:
    data = DATASETS[dataset]()
    deployed = DeployedArchitecture(family, architecture)
    result = transfer(
        PC_DARTS, deployed, data, _small_plan(), seed=1, work_dir=tmp_path, device="cpu"
    )
    control = load_deployed(result.variant_checkpoints[CONTROL])
    assert (control.family, control.architecture) == (family, architecture)
    assert control.class_names == data.class_names
    assert control.spec.shape == data.image_shape
    images = data.test.images[:5].float() / 255
    assert control.model(images).shape == (5, len(data.class_names))
    info = result.report.info
    assert info["architectures"] == {CONTROL: f"{family} {architecture}", TRANSFERRED: "darts"}
    assert info["genotypes"][CONTROL] is None
    assert "architecture_fallback" not in info
    assert result.deployed_genotype is None
    assert list(result.report.models) == [CONTROL, TRANSFERRED]
    # The transferred row stays the searched DARTS cell.
    assert load_model(result.variant_checkpoints[TRANSFERRED]).genotype == PC_DARTS


def test_the_control_of_an_onnx_model_falls_back_to_darts_v2_and_says_so(tmp_path: Path) -> None:
    data = DatasetSplits(train=_stripes_rgb(48, 0), test=_stripes_rgb(24, 1))
    result = transfer(
        PC_DARTS, DeployedArchitecture("onnx"), data, _small_plan(), seed=0,
        work_dir=tmp_path, device="cpu",
    )  # fmt: skip
    assert load_model(result.variant_checkpoints[CONTROL]).genotype == DARTS_V2
    assert ONNX_FALLBACK in result.report.info["architecture_fallback"]
    assert "onnx" in result.report.info["architecture_fallback"]
