"""The augmentation set (AU): B training images, one op each, changed and in uint8 range."""

from __future__ import annotations

import pytest
import torch

from repair_core.errors import RepairInputError
from repair_core.selection.augment import AUGMENT_OPS, augment_image, augmentation_set


def images(seed: int, n: int = 12, size: int = 16) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (n, 3, size, size), generator=g, dtype=torch.uint8)


def test_the_six_ops_of_the_paper_are_registered() -> None:
    assert set(AUGMENT_OPS) == {
        "rotation",
        "solarization",
        "shear",
        "translation",
        "auto_contrast",
        "equalization",
    }


@pytest.mark.parametrize("name", sorted(AUGMENT_OPS))
def test_every_op_keeps_uint8_shape_and_changes_a_natural_image(name: str) -> None:
    # A smooth gradient image: low contrast, so auto-contrast and equalization change it too.
    ramp = torch.linspace(60, 180, 16)
    image = (ramp[None, :, None] + ramp[None, None, :] / 4).expand(3, 16, 16).to(torch.uint8)
    out = AUGMENT_OPS[name](image, torch.Generator().manual_seed(0))
    assert out.dtype == torch.uint8 and out.shape == image.shape
    assert not torch.equal(out, image)


def test_augmentation_set_has_budget_items_that_differ_from_their_sources() -> None:
    source = images(0, n=40)
    labels = torch.arange(40) % 10
    result = augmentation_set(source, labels, 25, seed=1)
    assert result.images.shape == (25, 3, 16, 16) and result.images.dtype == torch.uint8
    assert len(set(result.source_indices.tolist())) == 25
    assert torch.equal(result.labels, labels[result.source_indices])
    assert len(result.op_names) == 25 and set(result.op_names) <= set(AUGMENT_OPS)
    for image, index in zip(result.images, result.source_indices, strict=True):
        assert not torch.equal(image, source[index])


def test_augmentation_set_is_reproducible_with_the_seed() -> None:
    source, labels = images(2), torch.zeros(12, dtype=torch.long)
    first = augmentation_set(source, labels, 8, seed=3)
    again = augmentation_set(source, labels, 8, seed=3)
    other = augmentation_set(source, labels, 8, seed=4)
    assert torch.equal(first.images, again.images)
    assert torch.equal(first.source_indices, again.source_indices)
    assert first.op_names == again.op_names
    assert not torch.equal(first.images, other.images)


def test_ops_are_drawn_from_all_six() -> None:
    # 32 x 32 like CIFAR: equalization leaves images under ~256 pixels unchanged (PIL's rule).
    labels = torch.zeros(100, dtype=torch.long)
    result = augmentation_set(images(3, n=100, size=32), labels, 100, seed=0)
    assert set(result.op_names) == set(AUGMENT_OPS)


@pytest.mark.parametrize("value", [0, 37, 255])
def test_flat_images_that_most_ops_leave_alone_still_change(value: int) -> None:
    flat = torch.full((3, 8, 8), value, dtype=torch.uint8)
    for seed in range(10):
        out, name = augment_image(flat, torch.Generator().manual_seed(seed))
        assert not torch.equal(out, flat), name
        assert out.dtype == torch.uint8


def test_budget_above_the_training_set_uses_every_image_once() -> None:
    result = augmentation_set(images(4, n=5), torch.arange(5), 9, seed=0)
    assert sorted(result.source_indices.tolist()) == list(range(5))


def test_single_channel_images_are_supported() -> None:
    gray = images(5)[:, :1]
    result = augmentation_set(gray, torch.zeros(12, dtype=torch.long), 6, seed=0)
    assert result.images.shape == (6, 1, 16, 16)


@pytest.mark.parametrize(
    ("source", "labels", "budget", "message"),
    [
        (torch.zeros(4, 3, 8, 8), torch.zeros(4, dtype=torch.long), 2, "uint8"),
        (torch.zeros(4, 8, 8, dtype=torch.uint8), torch.zeros(4, dtype=torch.long), 2, "uint8"),
        (torch.zeros(0, 3, 8, 8, dtype=torch.uint8), torch.zeros(0, dtype=torch.long), 2, "empty"),
        (torch.zeros(4, 3, 8, 8, dtype=torch.uint8), torch.zeros(3, dtype=torch.long), 2, "labels"),
        (torch.zeros(4, 3, 8, 8, dtype=torch.uint8), torch.zeros(4, dtype=torch.long), 0, "budget"),
    ],
)
def test_invalid_inputs_raise_clear_errors(
    source: torch.Tensor, labels: torch.Tensor, budget: int, message: str
) -> None:
    with pytest.raises(RepairInputError, match=message):
        augmentation_set(source, labels, budget, seed=0)
