"""Dataset operations: concatenation for D_train ∪ C."""

from __future__ import annotations

import pytest
import torch

from repair_core.datasets.ops import concat_datasets
from repair_core.datasets.types import ImageDataset
from repair_core.errors import RepairInputError


def _dataset(
    n: int, value: int, classes: tuple[str, ...] = ("a", "b"), size: int = 4
) -> ImageDataset:
    images = torch.full((n, 3, size, size), value, dtype=torch.uint8)
    return ImageDataset(images, torch.arange(n) % len(classes), classes)


def test_concatenation_keeps_every_row_in_order() -> None:
    joined = concat_datasets(_dataset(3, 1), _dataset(2, 2), _dataset(1, 3))
    assert len(joined) == 6
    assert [int(image[0, 0, 0]) for image in joined.images] == [1, 1, 1, 2, 2, 3]
    assert joined.labels.tolist() == [0, 1, 0, 0, 1, 0]
    assert joined.class_names == ("a", "b")


def test_a_single_dataset_comes_back_unchanged() -> None:
    only = _dataset(3, 1)
    assert concat_datasets(only) is only


@pytest.mark.parametrize(
    ("other", "message"),
    [
        (_dataset(2, 0, classes=("b", "a")), "classes"),
        (_dataset(2, 0, size=8), "images"),
    ],
)
def test_parts_that_do_not_match_are_refused(other: ImageDataset, message: str) -> None:
    with pytest.raises(RepairInputError, match=message):
        concat_datasets(_dataset(2, 0), other)
