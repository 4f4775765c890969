"""Stage 4: tiny models scored on clean, failure and corrupted sets, gathered in a report."""

from __future__ import annotations

import pytest
import torch

from repair_core.corruptions import corrupt_in_chunks
from repair_core.errors import RepairInputError
from repair_core.evaluation.scoring import evaluate_models
from repair_core.progress import CancelToken, Progress, RepairCancelled
from tests.repair_core.evaluation.samples import (
    AlwaysZero,
    BrightnessClassifier,
    dark_and_bright,
)


def test_evaluate_models_scores_every_model_on_every_set() -> None:
    test = dark_and_bright(10)
    failures = dark_and_bright(6, seed=1)
    models = {"original": AlwaysZero(), "repaired": BrightnessClassifier()}
    report = evaluate_models(
        models,
        test,
        failures,
        corruption_name_of_failures="gaussian_noise",
        corruptions=("gaussian_noise", "brightness", "contrast"),
        severities=(1, 5),
        seed=4,
        batch_size=4,
    )
    assert list(report.models) == ["original", "repaired"]
    assert report.corruptions == ("gaussian_noise", "brightness", "contrast")
    assert report.severities == (1, 5)
    original, repaired = report.models["original"], report.models["repaired"]
    # Always class 0 on balanced sets: exactly 50 % everywhere.
    assert original.clean == 50.0 and original.held_out_failures == 50.0
    assert all(acc == 50.0 for by_sev in original.corruptions.values() for acc in by_sev.values())
    assert repaired.clean == 100.0
    # Brightness 5 lifts dark images over the threshold: recompute it independently.
    bright = corrupt_in_chunks(test.images, "brightness", 5, seed=4)
    expected = 100.0 * float(
        ((bright.float().mean((1, 2, 3)) / 255 > 0.5).long() == test.labels).float().mean()
    )
    assert repaired.corruptions["brightness"][5] == pytest.approx(expected)
    assert repaired.corruptions["brightness"][5] == 50.0  # every dark image now looks bright
    assert report.info["test_images"] == 10 and report.info["held_out_failures"] == 6
    assert set(report.info["seconds_per_corruption"]) == {
        "gaussian_noise",
        "brightness",
        "contrast",
    }
    assert "Gauss_fail" in report.to_markdown() and "| Gauss |" not in report.to_markdown()


def test_each_corrupted_set_is_made_once_and_seen_by_every_model() -> None:
    models = {"a": BrightnessClassifier(), "b": BrightnessClassifier()}
    evaluate_models(models, dark_and_bright(6), None, corruptions=("snow", "fog"), severities=(2,))
    a, b = models["a"].seen, models["b"].seen
    assert len(a) == len(b) == 3  # clean, snow, fog; no failures given
    assert all(torch.equal(x, y) for x, y in zip(a, b, strict=True))
    assert not torch.equal(a[1], a[2])


def test_evaluate_models_reports_progress_and_honours_max_images() -> None:
    reports: list[Progress] = []
    report = evaluate_models(
        {"m": BrightnessClassifier()},
        dark_and_bright(12),
        dark_and_bright(12, seed=2),
        corruptions=("pixelate",),
        severities=(1, 2, 3),
        max_images=5,
        device="cpu",
        on_progress=reports.append,
    )
    assert [p.step for p in reports] == [1, 2, 3, 4, 5]
    assert all(p.total == 5 and p.stage == "evaluating" for p in reports)
    assert "pixelate/3/m" in reports[-1].metrics
    assert report.info["test_images"] == 5 and report.info["held_out_failures"] == 5
    assert report.info["device"] == "cpu"


def test_evaluate_models_stops_when_cancelled() -> None:
    token = CancelToken()
    token.cancel()
    with pytest.raises(RepairCancelled):
        evaluate_models({"m": BrightnessClassifier()}, dark_and_bright(4), cancel=token)


@pytest.mark.parametrize(
    "kwargs,match",
    [
        ({"corruptions": ("rain",)}, "unknown corruption"),
        ({"corruptions": "fog"}, "sequence of names"),
        ({"severities": (0,)}, "severity"),
        ({"max_images": 0}, "max_images"),
    ],
)
def test_evaluate_models_rejects_bad_settings(kwargs: dict[str, object], match: str) -> None:
    with pytest.raises(RepairInputError, match=match):
        evaluate_models({"m": BrightnessClassifier()}, dark_and_bright(4), **kwargs)  # type: ignore[arg-type]
