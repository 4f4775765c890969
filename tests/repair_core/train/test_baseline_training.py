"""The training loop with each baseline augmentation: it trains, resumes bit-identically,
and refuses a missing or swapped style bank."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
import torch

from repair_core.errors import RepairInputError
from repair_core.progress import Progress
from repair_core.train import TrainSettings, train_model
from tests.repair_core.train.test_loop import (
    TRAIN,
    StopAfterEpoch,
    _assert_same_weights,
    _new_model,
    _stripes,
    _untimed,
)

SETTINGS = TrainSettings(epochs=2, batch_size=32, lr=0.05, seed=3, augmix_chunk=8).scaled_to(8)
SMALL = TRAIN.subset(torch.arange(96))
BANK = _stripes(12, seed=7)


def _style(augmentation: str) -> dict[str, Any]:
    return {"style_images": BANK} if augmentation == "fourier-style" else {}


@pytest.mark.parametrize("augmentation", ["augmix", "cutmix", "fourier-style"])
def test_train_loop_runs_each_augmentation_and_resumes(tmp_path: Path, augmentation: str) -> None:
    settings = replace(SETTINGS, augmentation=augmentation, cutmix_prob=1.0, report_every_steps=1)
    reference = _new_model()
    expected = train_model(reference, SMALL, settings, device="cpu", **_style(augmentation))
    assert len(expected.history) == 2 and all(r["loss"] > 0 for r in expected.history)

    def stop(progress: Progress) -> None:
        if progress.step == 3:  # the end of epoch 1 (96 / 32 steps an epoch)
            raise StopAfterEpoch

    state = tmp_path / "state.pt"
    with pytest.raises(StopAfterEpoch):
        train_model(
            _new_model(), SMALL, settings, device="cpu", state_path=state, on_progress=stop,
            **_style(augmentation),
        )  # fmt: skip
    resumed_model = _new_model(seed=99)
    extra = _style(augmentation)
    again = train_model(resumed_model, SMALL, settings, device="cpu", state_path=state, **extra)
    _assert_same_weights(resumed_model, reference)
    assert (again.resumed_from_epoch, _untimed(again.history)) == (1, _untimed(expected.history))


def test_the_style_bank_is_required_by_fourier_style_only_and_bound_on_resume(
    tmp_path: Path,
) -> None:
    fourier = replace(SETTINGS, augmentation="fourier-style")
    with pytest.raises(RepairInputError, match="style_images"):
        train_model(_new_model(), SMALL, fourier, device="cpu")
    with pytest.raises(RepairInputError, match="style_images"):
        train_model(_new_model(), SMALL, SETTINGS, device="cpu", style_images=BANK)
    state = tmp_path / "state.pt"
    one_epoch = replace(fourier, epochs=1)
    train_model(_new_model(), SMALL, one_epoch, device="cpu", state_path=state, style_images=BANK)
    with pytest.raises(RepairInputError):
        train_model(
            _new_model(), SMALL, one_epoch, device="cpu", state_path=state,
            style_images=_stripes(12, seed=8),
        )  # fmt: skip


@pytest.mark.parametrize(
    "bad",
    [{"augmentation": "mixup"}, {"augmix_severity": 11}, {"cutmix_prob": 1.5},
     {"style_strength_min": 0.9, "style_strength_max": 0.5}, {"augmix_depth": 0}],
)  # fmt: skip
def test_baseline_settings_out_of_range_are_refused(bad: dict[str, object]) -> None:
    with pytest.raises(RepairInputError, match=next(iter(bad))):
        TrainSettings(**bad)  # type: ignore[arg-type]
