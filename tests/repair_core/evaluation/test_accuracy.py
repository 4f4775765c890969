"""Top-1 accuracy, the one implementation every stage scores with: fractions in [0, 1]."""

from __future__ import annotations

import pytest
import torch

from repair_core.errors import RepairInputError
from repair_core.evaluation.accuracy import accuracy
from tests.repair_core.evaluation.samples import (
    AlwaysZero,
    BrightnessClassifier,
    dark_and_bright,
)


def test_accuracy_is_the_fraction_of_correct_top1_predictions() -> None:
    data = dark_and_bright(8)
    model = BrightnessClassifier()
    assert accuracy(model, data) == 1.0
    assert accuracy(model, data.images, 1 - data.labels) == 0.0
    half_wrong = data.labels.clone()
    half_wrong[:4] = 1 - half_wrong[:4]
    assert accuracy(model, data.images, half_wrong, batch_size=3) == 0.5
    assert accuracy(AlwaysZero(), data) == 0.5  # takes the first of a tuple of outputs


def test_accuracy_feeds_floats_in_0_1_and_restores_the_training_mode() -> None:
    data = dark_and_bright(4)
    model = BrightnessClassifier().train()
    accuracy(model, data, batch_size=4)
    assert model.training
    (seen,) = model.seen
    assert seen.dtype == torch.float32
    assert torch.equal(seen, data.images.float() / 255)


def test_accuracy_rejects_missing_labels_mismatched_labels_and_empty_sets() -> None:
    data = dark_and_bright(4)
    with pytest.raises(RepairInputError, match="labels are required"):
        accuracy(BrightnessClassifier(), data.images)
    with pytest.raises(RepairInputError, match="labels must be"):
        accuracy(BrightnessClassifier(), data.images, data.labels[:3])
    with pytest.raises(RepairInputError, match="empty"):
        accuracy(BrightnessClassifier(), data.images[:0], data.labels[:0])
