"""Dataset operations: concatenation for D_train ∪ C, seeded subsets, fingerprints."""

from __future__ import annotations

import pytest
import torch

from repair_core.datasets.ops import concat_datasets, data_fingerprint, seeded_subset
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


def test_a_seeded_subset_keeps_rows_in_order_and_depends_on_the_seed_alone() -> None:
    data = ImageDataset(
        torch.arange(20, dtype=torch.uint8).view(20, 1, 1, 1).expand(20, 3, 4, 4).contiguous(),
        torch.arange(20) % 2,
        ("a", "b"),
    )
    subset = seeded_subset(data, 7, seed=5)
    rows = [int(image[0, 0, 0]) for image in subset.images]
    assert len(rows) == 7 and rows == sorted(rows) and len(set(rows)) == 7
    assert torch.equal(seeded_subset(data, 7, seed=5).images, subset.images)
    assert not torch.equal(seeded_subset(data, 7, seed=6).images, subset.images)
    assert seeded_subset(data, None, seed=5) is data
    assert seeded_subset(data, 20, seed=5) is data


def test_the_fingerprint_is_json_native_and_changes_with_the_pixels() -> None:
    first = data_fingerprint(_dataset(3, 1))
    assert first == {
        "num_images": 3,
        "image_shape": [3, 4, 4],
        "class_names": ["a", "b"],
        "pixel_sum": 3 * 3 * 4 * 4,
        "label_sum": 1,
    }
    assert data_fingerprint(_dataset(3, 2)) != first
