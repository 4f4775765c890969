"""Batched augmentation: shapes and ranges kept, seeded, and each transform really transforms."""

from __future__ import annotations

import pytest
import torch

from repair_core.errors import RepairInputError
from repair_core.train.augment import (
    augment_batch,
    crop_flip,
    cutout,
    random_crop,
    random_flip,
)


def _images(n: int = 64, size: int = 8, seed: int = 0) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    # Values 1..255 so zero padding and cutout are distinguishable from content.
    return torch.randint(1, 256, (n, 3, size, size), generator=generator, dtype=torch.uint8)


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def test_augment_batch_returns_float_in_unit_range_with_the_same_shape() -> None:
    images = _images()
    out = augment_batch(images, padding=2, cutout_length=4, generator=_gen(0))
    assert out.shape == images.shape
    assert out.dtype == torch.float32
    assert float(out.min()) >= 0.0 and float(out.max()) <= 1.0


def test_crop_and_flip_keep_uint8_and_shape() -> None:
    images = _images()
    for out in (random_crop(images, 2, _gen(0)), random_flip(images, _gen(0))):
        assert out.dtype == torch.uint8
        assert out.shape == images.shape


def test_the_same_seed_gives_the_same_batch_and_another_seed_a_different_one() -> None:
    images = _images()
    first = augment_batch(images, padding=2, cutout_length=4, generator=_gen(1))
    again = augment_batch(images, padding=2, cutout_length=4, generator=_gen(1))
    other = augment_batch(images, padding=2, cutout_length=4, generator=_gen(2))
    assert torch.equal(first, again)
    assert not torch.equal(first, other)


def test_each_crop_is_a_window_of_the_zero_padded_image_at_a_random_offset() -> None:
    images = _images(n=200)
    padding = 2
    out = random_crop(images, padding, _gen(3))
    padded = torch.nn.functional.pad(images, (padding,) * 4)
    offsets_seen = set()
    for i in range(images.shape[0]):
        matches = [
            (dy, dx)
            for dy in range(2 * padding + 1)
            for dx in range(2 * padding + 1)
            if torch.equal(out[i], padded[i, :, dy : dy + 8, dx : dx + 8])
        ]
        assert matches, f"crop {i} is not a window of its padded image"
        offsets_seen.update(matches)
    # All 25 offsets occur over 200 images, and most crops moved the image.
    assert len(offsets_seen) == (2 * padding + 1) ** 2
    moved = (out != images).flatten(1).any(1).float().mean()
    assert float(moved) > 0.8


def test_flip_mirrors_about_half_of_the_images_and_leaves_the_rest() -> None:
    images = _images(n=1000)
    out = random_flip(images, _gen(4))
    mirrored = (out == images.flip(3)).flatten(1).all(1)
    unchanged = (out == images).flatten(1).all(1)
    assert bool((mirrored | unchanged).all())
    assert 400 < int(mirrored.sum()) < 600


def test_cutout_zeroes_one_clipped_square_per_image_in_every_channel() -> None:
    images = torch.ones(500, 3, 16, 16)
    length = 6
    out = cutout(images, length, _gen(5))
    cut = out == 0
    assert torch.equal(cut[:, 0], cut[:, 1]) and torch.equal(cut[:, 0], cut[:, 2])
    full_squares = 0
    for mask in cut[:, 0]:
        rows = mask.any(1).nonzero().flatten()
        cols = mask.any(0).nonzero().flatten()
        assert rows.numel() > 0, "every image gets a cut (centre lies inside the square)"
        height = int(rows[-1] - rows[0]) + 1
        width = int(cols[-1] - cols[0]) + 1
        assert int(mask.sum()) == height * width, "the cut region is one rectangle"
        assert height <= length and width <= length
        full_squares += height == length and width == length
    # Centres away from the border give full squares; near it they are clipped.
    assert 100 < full_squares < 500
    assert bool((out[~cut] == 1).all())


def test_cutout_fill_value_is_used() -> None:
    out = cutout(torch.ones(4, 3, 8, 8), 4, _gen(6), fill=0.5)
    assert bool((out == 0.5).any()) and not bool((out == 0).any())


def test_zero_padding_no_flip_and_zero_cutout_change_nothing() -> None:
    images = _images()
    out = augment_batch(images, padding=0, flip=False, cutout_length=0, generator=_gen(7))
    assert torch.equal(out, images.float() / 255)


def test_an_empty_batch_passes_through() -> None:
    images = torch.zeros(0, 3, 8, 8, dtype=torch.uint8)
    assert augment_batch(images, padding=2, cutout_length=4, generator=_gen(8)).shape == (
        0,
        3,
        8,
        8,
    )


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: augment_batch(torch.zeros(2, 3, 8, 8), generator=_gen(0)), "uint8"),
        (lambda: random_crop(torch.zeros(3, 8, 8, dtype=torch.uint8), 2, _gen(0)), "N, C, H, W"),
        (lambda: random_crop(_images(), -1, _gen(0)), "padding"),
        (lambda: cutout(torch.zeros(2, 3, 8, 8, dtype=torch.uint8), 4, _gen(0)), "float"),
        (lambda: cutout(torch.zeros(2, 3, 8, 8), -2, _gen(0)), "length"),
    ],
)
def test_bad_input_is_refused_with_a_clear_message(call: object, message: str) -> None:
    with pytest.raises(RepairInputError, match=message):
        call()  # type: ignore[operator]


@pytest.mark.gpu
def test_augmentation_runs_on_cuda_with_a_cuda_generator() -> None:
    images = _images().cuda()
    generator = torch.Generator(device="cuda").manual_seed(0)
    out = augment_batch(images, padding=2, cutout_length=4, generator=generator)
    assert out.device.type == "cuda" and out.shape == images.shape
    with pytest.raises(RepairInputError, match="generator"):
        augment_batch(images, generator=_gen(0))


def test_crop_with_centre_offsets_and_no_flip_is_the_identity() -> None:
    x = torch.rand(4, 3, 8, 8)
    offsets = torch.full((4, 2), 2)
    same = crop_flip(x, offsets, torch.zeros(4, dtype=torch.bool), padding=2)
    assert torch.equal(same, x)
    flipped = crop_flip(x, offsets, torch.ones(4, dtype=torch.bool), padding=2)
    assert torch.equal(flipped, x.flip(3))
    shifted = crop_flip(x, torch.zeros(4, 2, dtype=torch.long), torch.zeros(4, dtype=torch.bool), 2)
    assert torch.equal(shifted[:, :, 2:, 2:], x[:, :, :6, :6])
    assert not shifted[:, :, :2].any()
