"""scikit-learn's digits (1,797 8x8 grayscale images, 10 classes) as `DatasetSplits`.

A small real dataset that ships inside a package: tests and the demo use it, so nothing is
downloaded. Needs scikit-learn (a dev dependency), imported only when called.
"""

from __future__ import annotations

import torch

from repair_core.datasets.types import DatasetSplits, ImageDataset
from repair_core.rng import seeded_permutation


def load_digits_splits(*, test_fraction: float = 0.25, seed: int = 0) -> DatasetSplits:
    from sklearn.datasets import load_digits

    bunch = load_digits()
    # Pixel values are 0..16; scale to the uint8 range every stage expects.
    images = torch.from_numpy((bunch.images * (255.0 / 16.0)).round()).to(torch.uint8)
    images = images.unsqueeze(1).contiguous()  # (N, 1, 8, 8)
    labels = torch.from_numpy(bunch.target).to(torch.int64)
    names = tuple(str(int(n)) for n in bunch.target_names)
    order = seeded_permutation(len(labels), seed)
    n_test = int(len(labels) * test_fraction)
    test, train = order[:n_test].sort().values, order[n_test:].sort().values
    return DatasetSplits(
        train=ImageDataset(images[train], labels[train], names),
        test=ImageDataset(images[test], labels[test], names),
    )
