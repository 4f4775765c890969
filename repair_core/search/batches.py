"""Seeded mini-batches drawn from device-resident uint8 images, with DARTS's augmentation.

All of an epoch's randomness (orders, crop offsets, flips) is drawn up front from one CPU
generator and moved to the device once: batches cost no host round trip, and the run
depends on the seed alone, whatever the device. The crop and flip themselves are the
retraining's (`train.augment.crop_flip`), applied with these draws.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from repair_core.datasets.types import ImageDataset
from repair_core.train.augment import crop_flip


@dataclass(frozen=True)
class _Draws:
    order: torch.Tensor  # (steps * batch,) int64 row indices
    offsets: torch.Tensor | None  # (steps * batch, 2) crop offsets, None without augmentation
    flips: torch.Tensor | None  # (steps * batch,) bool


def crop_padding(image_size: int) -> int:
    """Pixels of zero padding for random crops: 4 at 32 px as in DARTS, scaled with size."""
    return max(1, image_size // 8)


def _draw(n: int, count: int, batch: int, h: int, augment: bool, g: torch.Generator) -> _Draws:
    # Enough whole permutations to cover `count` batches; a short set is cycled.
    needed = count * batch
    perms = [torch.randperm(n, generator=g) for _ in range(-(-needed // n))]
    order = torch.cat(perms)[:needed]
    if not augment:
        return _Draws(order, None, None)
    pad = crop_padding(h)
    offsets = torch.randint(0, 2 * pad + 1, (needed, 2), generator=g)
    flips = torch.rand(needed, generator=g) < 0.5
    return _Draws(order, offsets, flips)


class EpochBatches:
    """The `count` train and val batches of one epoch, as float images in [0, 1]."""

    def __init__(
        self,
        train: ImageDataset,
        val: ImageDataset,
        count: int,
        train_batch: int,
        val_batch: int,
        augment: bool,
        generator: torch.Generator,
        channels_last: bool = False,
    ) -> None:
        h = train.image_shape[1]
        device = train.images.device
        self._sets = []
        for data, batch in ((train, train_batch), (val, val_batch)):
            draws = _draw(len(data), count, batch, h, augment, generator)
            self._sets.append(
                (
                    data,
                    batch,
                    draws.order.to(device),
                    None if draws.offsets is None else draws.offsets.to(device),
                    None if draws.flips is None else draws.flips.to(device),
                )
            )
        self._pad = crop_padding(h)
        self._channels_last = channels_last

    def _batch(self, which: int, step: int) -> tuple[torch.Tensor, torch.Tensor]:
        data, batch, order, offsets, flips = self._sets[which]
        sl = slice(step * batch, (step + 1) * batch)
        index = order[sl]
        x = data.images[index].float().div_(255.0)
        if offsets is not None and flips is not None:
            x = crop_flip(x, offsets[sl], flips[sl], self._pad)
        memory_format = torch.channels_last if self._channels_last else torch.contiguous_format
        return x.contiguous(memory_format=memory_format), data.labels[index]

    def train(self, step: int) -> tuple[torch.Tensor, torch.Tensor]:
        return self._batch(0, step)

    def val(self, step: int) -> tuple[torch.Tensor, torch.Tensor]:
        return self._batch(1, step)
