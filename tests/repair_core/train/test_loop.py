"""Retraining loop: learns, resumes bit-identically, cancels promptly, applies the protocol."""

from __future__ import annotations

import math
from dataclasses import replace
from pathlib import Path

import pytest
import torch
from torch import nn
from torch.nn import functional as F

from repair_core.datasets.types import ImageDataset
from repair_core.errors import RepairInputError
from repair_core.progress import CancelToken, Progress
from repair_core.train import TrainingDiverged, TrainSettings, train_model

CLASSES = ("red-rows", "green-rows", "red-columns", "green-columns")
TIMING_KEYS = {"seconds", "images_per_second"}


def _stripes(n: int, seed: int) -> ImageDataset:
    """4 classes of noisy 8x8 images: red or green stripes, horizontal or vertical."""
    generator = torch.Generator().manual_seed(seed)
    labels = torch.randint(0, 4, (n,), generator=generator)
    images = torch.randint(0, 80, (n, 3, 8, 8), generator=generator, dtype=torch.int64)
    colour, vertical = labels % 2, labels // 2
    stripe = torch.zeros(n, 8, 8, dtype=torch.bool)
    stripe[vertical == 0, ::2, :] = True
    stripe[vertical == 1, :, ::2] = True
    images[torch.arange(n), colour] += 150 * stripe
    return ImageDataset(images.clamp(0, 255).to(torch.uint8), labels, CLASSES)


class TinyNet(nn.Module):
    """Two convs; optionally an auxiliary head, drop path and dropout like a DARTS network.

    Drop path draws from `drop_path_generator` (the trainer lends one) and dropout from the
    global RNG, so resume tests prove that the loop saves and restores both.
    """

    def __init__(self, *, with_aux: bool = True) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 8, 3, padding=1)
        self.bn1 = nn.BatchNorm2d(8)
        self.conv2 = nn.Conv2d(8, 16, 3, padding=1)
        self.head = nn.Linear(16, 4)
        self.aux_head = nn.Linear(8, 4) if with_aux else None
        self.drop_path_prob = 0.0
        self.drop_path_generator: torch.Generator | None = None
        self.seen_drop_path: list[float] = []
        self.training_forwards = 0

    def forward_with_aux(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        if self.training:
            self.training_forwards += 1
            self.seen_drop_path.append(self.drop_path_prob)
        hidden = F.relu(self.bn1(self.conv1(x)))
        if self.training and self.drop_path_prob > 0:
            keep = 1.0 - self.drop_path_prob
            mask = torch.bernoulli(
                torch.full((x.shape[0], 1, 1, 1), keep), generator=self.drop_path_generator
            )
            hidden = hidden * mask / keep
        features = F.dropout(F.relu(self.conv2(hidden)).mean((2, 3)), 0.1, self.training)
        aux = None
        if self.aux_head is not None and self.training:
            aux = self.aux_head(hidden.mean((2, 3)))
        return self.head(features), aux

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_with_aux(x)[0]


class PlainNet(nn.Module):
    """No auxiliary head, no drop path: trained through `forward` only."""

    def __init__(self) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(3, 8, 3, padding=1),
            nn.BatchNorm2d(8),
            nn.ReLU(),
            nn.Conv2d(8, 16, 3, padding=1),
            nn.ReLU(),
            nn.AdaptiveAvgPool2d(1),
            nn.Flatten(),
            nn.Linear(16, 4),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)


def _new_model(seed: int = 0, *, with_aux: bool = True) -> TinyNet:
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        return TinyNet(with_aux=with_aux)


# Small settings for 8x8 images; the crop and cutout sizes are the DARTS ones scaled down.
SETTINGS = TrainSettings(epochs=4, batch_size=32, lr=0.05, seed=3).scaled_to(8)
TRAIN = _stripes(200, seed=1)
HELD_OUT = _stripes(200, seed=2)


def _untimed(history: list[dict[str, float]]) -> list[dict[str, float]]:
    return [{k: v for k, v in record.items() if k not in TIMING_KEYS} for record in history]


def _assert_same_weights(a: nn.Module, b: nn.Module) -> None:
    state_a, state_b = a.state_dict(), b.state_dict()
    assert state_a.keys() == state_b.keys()
    for name in state_a:
        assert torch.equal(state_a[name], state_b[name]), f"{name} differs"


class StopAfterEpoch(Exception):
    pass


@pytest.mark.parametrize("make_model", [_new_model, PlainNet], ids=["aux-drop-path", "plain"])
def test_training_on_a_tiny_task_beats_chance_clearly(make_model: type[nn.Module]) -> None:
    settings = TrainSettings(epochs=12, batch_size=32, lr=0.05).scaled_to(8)
    result = train_model(make_model(), TRAIN, settings, device="cpu", eval_set=HELD_OUT)
    assert len(result.history) == 12
    assert result.history[-1]["eval_acc"] > 0.8  # chance is 0.25
    assert result.history[-1]["loss"] < result.history[0]["loss"]


@pytest.mark.parametrize("stop_step", [2 * 6, 2 * 6 + 3], ids=["epoch-end", "mid-epoch"])
def test_a_run_interrupted_and_resumed_ends_bit_identical_to_an_uninterrupted_one(
    tmp_path: Path, stop_step: int
) -> None:
    # 200 images / batch 32 = 6 steps an epoch: stop at the end of epoch 2, or 3 steps later.
    settings = replace(SETTINGS, report_every_steps=1)
    reference = _new_model()
    expected = train_model(reference, TRAIN, settings, device="cpu", eval_set=HELD_OUT)

    def stop(progress: Progress) -> None:
        if progress.step == stop_step:
            raise StopAfterEpoch

    state = tmp_path / "retrain.pt"
    with pytest.raises(StopAfterEpoch):
        train_model(
            _new_model(),
            TRAIN,
            settings,
            device="cpu",
            state_path=state,
            on_progress=stop,
            eval_set=HELD_OUT,
        )
    # A fresh process would build the model with other initial weights: the state replaces them.
    resumed_model = _new_model(seed=99)
    resumed = train_model(
        resumed_model, TRAIN, settings, device="cpu", state_path=state, eval_set=HELD_OUT
    )
    assert resumed.resumed_from_epoch == 2
    _assert_same_weights(resumed_model, reference)
    assert _untimed(resumed.history) == _untimed(expected.history)


def test_calling_again_on_a_finished_state_trains_nothing_and_returns_its_history(
    tmp_path: Path,
) -> None:
    state = tmp_path / "retrain.pt"
    first_model = _new_model()
    first = train_model(first_model, TRAIN, SETTINGS, device="cpu", state_path=state)
    again_model = _new_model(seed=5)
    again = train_model(again_model, TRAIN, SETTINGS, device="cpu", state_path=state)
    assert again_model.training_forwards == 0
    assert again.resumed_from_epoch == SETTINGS.epochs
    assert again.history == first.history
    _assert_same_weights(again_model, first_model)


def test_the_same_seed_reproduces_a_run_and_another_seed_does_not() -> None:
    a, b, c = _new_model(), _new_model(), _new_model()
    train_model(a, TRAIN, SETTINGS, device="cpu")
    train_model(b, TRAIN, SETTINGS, device="cpu")
    train_model(c, TRAIN, replace(SETTINGS, seed=4), device="cpu")
    _assert_same_weights(a, b)
    assert not torch.equal(a.head.weight, c.head.weight)


def test_the_callers_global_rng_and_drop_path_generator_are_left_as_they_were() -> None:
    before = torch.get_rng_state()
    model = _new_model()
    train_model(model, TRAIN, SETTINGS, device="cpu")
    assert torch.equal(torch.get_rng_state(), before)
    assert model.drop_path_generator is None


def test_cancel_stops_within_one_step() -> None:
    token = CancelToken()
    model = _new_model()

    def cancel_at_step_3(progress: Progress) -> None:
        if progress.step == 3:
            token.cancel()

    settings = replace(SETTINGS, report_every_steps=1)
    with pytest.raises(Exception, match="cancelled"):
        train_model(
            model, TRAIN, settings, device="cpu", on_progress=cancel_at_step_3, cancel=token
        )
    assert model.training_forwards == 3


def test_learning_rate_follows_the_cosine_schedule_per_epoch() -> None:
    settings = replace(SETTINGS, epochs=5, lr=0.04, lr_min=0.001)
    history = train_model(_new_model(), TRAIN, settings, device="cpu").history
    for epoch, record in enumerate(history):
        expected = 0.001 + (0.04 - 0.001) * (1 + math.cos(math.pi * epoch / 5)) / 2
        assert record["lr"] == pytest.approx(expected, rel=1e-9)


def test_drop_path_probability_ramps_linearly_with_the_epoch() -> None:
    settings = replace(SETTINGS, epochs=4, drop_path_prob=0.2)
    model = _new_model()
    train_model(model, TRAIN, settings, device="cpu")
    steps = len(TRAIN) // settings.batch_size
    per_epoch = [model.seen_drop_path[e * steps : (e + 1) * steps] for e in range(4)]
    for epoch, seen in enumerate(per_epoch):
        assert seen == [pytest.approx(0.2 * epoch / 4)] * steps


@pytest.mark.parametrize("weight", [0.0, 0.4])
def test_the_auxiliary_head_is_trained_only_when_its_weight_is_positive(weight: float) -> None:
    model = _new_model()
    assert model.aux_head is not None
    before = model.aux_head.weight.detach().clone()
    train_model(model, TRAIN, replace(SETTINGS, auxiliary_weight=weight), device="cpu")
    assert torch.equal(model.aux_head.weight, before) == (weight == 0.0)


def test_progress_reports_steps_in_order_with_the_promised_metrics() -> None:
    reports: list[Progress] = []
    settings = replace(SETTINGS, epochs=2, report_every_steps=2)
    train_model(
        _new_model(), TRAIN, settings, device="cpu", eval_set=HELD_OUT, on_progress=reports.append
    )
    steps = [p.step for p in reports]
    assert steps == [0, 2, 4, 6, 8, 10, 12]  # start, every 2 steps, each epoch's end (6, 12)
    assert all(p.stage == "retraining" and p.total == 12 for p in reports)
    for progress in reports[1:]:
        assert {"loss", "train_acc", "epoch", "lr", "images_per_second"} <= set(progress.metrics)
    assert "eval_acc" in reports[-1].metrics


def test_the_state_file_is_plain_data_that_loads_with_weights_only(tmp_path: Path) -> None:
    state_path = tmp_path / "nested" / "retrain.pt"
    train_model(_new_model(), TRAIN, SETTINGS, device="cpu", state_path=state_path)
    state = torch.load(state_path, weights_only=True)
    assert state["epoch"] == SETTINGS.epochs
    assert state["settings"]["batch_size"] == SETTINGS.batch_size
    assert [p.name for p in state_path.parent.iterdir()] == ["retrain.pt"]  # no temp left


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda: (_new_model(), TRAIN, replace(SETTINGS, lr=0.1)), "other settings"),
        (lambda: (_new_model(), _stripes(200, seed=9), SETTINGS), "other training data"),
        (lambda: (PlainNet(), TRAIN, SETTINGS), "does not fit this model"),
    ],
    ids=["settings", "data", "model"],
)
def test_resuming_with_other_inputs_is_refused(
    tmp_path: Path, change: object, message: str
) -> None:
    state = tmp_path / "retrain.pt"
    short = replace(SETTINGS, epochs=1)
    train_model(_new_model(), TRAIN, short, device="cpu", state_path=state)
    model, data, settings = change()  # type: ignore[operator]
    settings = replace(settings, epochs=1)
    with pytest.raises(RepairInputError, match=message):
        train_model(model, data, settings, device="cpu", state_path=state)


def test_a_diverging_run_stops_with_a_clear_error_and_keeps_the_last_good_state(
    tmp_path: Path,
) -> None:
    state = tmp_path / "retrain.pt"
    settings = replace(SETTINGS, epochs=2, lr=1e30, grad_clip=1e30)
    with pytest.raises(TrainingDiverged, match="loss"):
        train_model(_new_model(), TRAIN, settings, device="cpu", state_path=state)
    if state.exists():
        saved = torch.load(state, weights_only=True)
        assert all(math.isfinite(r["loss"]) for r in saved["history"])


def test_a_state_file_that_is_not_ours_is_refused(tmp_path: Path) -> None:
    state = tmp_path / "retrain.pt"
    torch.save({"weights": torch.zeros(2)}, state)
    with pytest.raises(RepairInputError, match="not a retraining state"):
        train_model(_new_model(), TRAIN, SETTINGS, device="cpu", state_path=state)


def test_training_sets_of_fewer_than_two_images_are_refused() -> None:
    with pytest.raises(RepairInputError, match="at least 2"):
        train_model(_new_model(), TRAIN.subset(torch.tensor([0])), SETTINGS, device="cpu")


@pytest.mark.parametrize(
    "bad", [{"epochs": 0}, {"lr": -1.0}, {"drop_path_prob": 1.0}, {"crop_padding": -1}]
)
def test_settings_out_of_range_are_refused(bad: dict[str, float]) -> None:
    with pytest.raises(RepairInputError, match=next(iter(bad))):
        TrainSettings(**bad)  # type: ignore[arg-type]


def test_defaults_are_the_darts_evaluation_protocol_and_scale_with_image_size() -> None:
    defaults = TrainSettings()
    assert (defaults.epochs, defaults.batch_size, defaults.lr) == (600, 96, 0.025)
    assert (defaults.cutout_length, defaults.crop_padding, defaults.drop_path_prob) == (16, 4, 0.2)
    assert (defaults.auxiliary_weight, defaults.grad_clip, defaults.weight_decay) == (0.4, 5, 3e-4)
    scaled = defaults.scaled_to(64)
    assert (scaled.crop_padding, scaled.cutout_length) == (8, 32)


@pytest.mark.gpu
def test_training_runs_on_cuda_with_bf16_and_channels_last() -> None:
    settings = replace(SETTINGS, bf16=True, channels_last=True)
    model = _new_model()
    result = train_model(model, TRAIN, settings, device="cuda", eval_set=HELD_OUT)
    assert result.history[-1]["eval_acc"] > 0.5
    assert model.conv1.weight.is_contiguous()
