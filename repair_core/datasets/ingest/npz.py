"""Datasets and failure batches as `.npz` files, read without trusting their headers.

Every array is read by `npy.read_npz_arrays`, which checks each `.npy` header before the
array is allocated. This module gives the arrays their meaning: which keys a dataset or
failure batch has, the image layout, labels and class names, and the canonical form it
stores.

Image layout rule for `x*` arrays (uint8), unless a `layout` entry ("NCHW" or
"NHWC") says otherwise:
- 3 dims (N, H, W): grayscale, one channel;
- 4 dims with the last axis 1 or 3: (N, H, W, C), numpy/PIL order;
- 4 dims with axis 1 being 1 or 3 (and the last not): (N, C, H, W), torch order.
The canonical stored form (`write_npz_*`) is uint8 NCHW, int64 labels, `class_names`
as a unicode array and `layout="NCHW"`, so tiny images never hit the ambiguity.

Everything here works on numpy arrays: the upload sandbox reads an npz
(`read_npz_array_splits`, `read_npz_image_arrays`) and writes the canonical form without
importing torch, which would cost each upload's child about a second of CPU and some
500 MB. `read_npz_splits`, `read_npz_split` and `read_npz_images` give the same arrays as
torch datasets or tensors (`torch.from_numpy`, no copy) for local callers; the writers
take torch or numpy.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from repair_core.atomic import atomic_open
from repair_core.datasets.arrays import UNLABELED, ArrayDataset, ArraySplits, is_uint8
from repair_core.datasets.ingest.limits import IngestLimits
from repair_core.datasets.ingest.npy import read_npz_arrays
from repair_core.errors import RepairInputError

if TYPE_CHECKING:
    import torch

    from repair_core.datasets.types import DatasetSplits, ImageDataset

_SPLIT_KEYS = ("x_train", "y_train", "x_test", "y_test", "x_val", "y_val")


def read_npz_splits(path: Path, limits: IngestLimits) -> DatasetSplits:
    """A dataset from `x_train, y_train, x_test, y_test` (+ `x_val, y_val`, `class_names`)."""
    from repair_core.datasets.types import DatasetSplits

    return DatasetSplits.from_arrays(read_npz_array_splits(path, limits))


def read_npz_array_splits(path: Path, limits: IngestLimits) -> ArraySplits:
    """`read_npz_splits` as numpy arrays."""
    arrays = read_npz_arrays(path, limits, (*_SPLIT_KEYS, "class_names", "layout"))
    missing = [key for key in _SPLIT_KEYS[:4] if key not in arrays]
    if missing:
        raise RepairInputError(
            f"{path.name}: missing arrays {missing} (found {sorted(arrays) or 'none'})"
        )
    if ("x_val" in arrays) != ("y_val" in arrays):
        raise RepairInputError(f"{path.name}: x_val and y_val must come together")
    layout = _layout(arrays, path.name)
    class_names = _class_names(arrays, path.name)
    y_train = _labels(arrays["y_train"], "y_train", path.name)
    if class_names is None:
        if y_train.size == 0:
            raise RepairInputError(f"{path.name}: y_train is empty")
        class_names = tuple(str(i) for i in range(int(y_train.max()) + 1))
    datasets = {}
    for split in ("train", "test", "val"):
        if f"x_{split}" not in arrays:
            continue
        images = to_nchw(arrays[f"x_{split}"], f"x_{split}", path.name, layout)
        labels = _labels(arrays[f"y_{split}"], f"y_{split}", path.name)
        check_labels(labels, len(images), len(class_names), where=f"{path.name}: y_{split}")
        datasets[split] = ArrayDataset(images, labels, class_names)
    if len(datasets["train"]) == 0:
        raise RepairInputError(f"{path.name}: x_train holds no images")
    shape = datasets["train"].image_shape
    for split, dataset in datasets.items():
        if dataset.image_shape != shape:
            raise RepairInputError(
                f"{path.name}: x_{split} images are {dataset.image_shape} (C, H, W), "
                f"x_train's are {shape}"
            )
    return ArraySplits(train=datasets["train"], test=datasets["test"], val=datasets.get("val"))


def read_npz_split(
    path: Path, split: str, limits: IngestLimits, *, layout: str | None = None
) -> tuple[ImageDataset, str]:
    """One split by name: `x_<split>`, `y_<split>` (+ `class_names`, `layout`).

    `layout` ("NCHW" or "NHWC") overrides the file's own `layout` entry for 4-d images.
    Also returns how the images were stored ("NHW", "NHWC" or "NCHW"), so a caller can
    write results back the same way. Without `class_names`, classes are "0".."max label".
    """
    x_key, y_key = f"x_{split}", f"y_{split}"
    arrays = read_npz_arrays(path, limits, (x_key, y_key, "class_names", "layout"))
    missing = [key for key in (x_key, y_key) if key not in arrays]
    if missing:
        raise RepairInputError(
            f"{path.name}: missing arrays {missing} (found {sorted(arrays) or 'none'})"
        )
    declared = layout or _layout(arrays, path.name)
    images = to_nchw(arrays[x_key], x_key, path.name, declared)
    labels = _labels(arrays[y_key], y_key, path.name)
    class_names = _class_names(arrays, path.name)
    if class_names is None:
        class_names = tuple(str(i) for i in range(int(labels.max()) + 1 if labels.size else 0))
    check_labels(labels, len(images), len(class_names), where=f"{path.name}: {y_key}")
    from repair_core.datasets.types import ImageDataset

    dataset = ImageDataset.from_arrays(ArrayDataset(images, labels, class_names))
    return dataset, stored_layout(arrays[x_key], declared)


def read_npz_images(path: Path, limits: IngestLimits) -> tuple[torch.Tensor, torch.Tensor]:
    """uint8 (N, C, H, W) images and int64 (N,) labels from an npz with `x` and maybe `y`.

    Labels are checked to be integers, one per image; their range is the caller's to
    check (it knows the class count). Without `y` every label is `UNLABELED`.
    """
    import torch

    images, labels = read_npz_image_arrays(path, limits)
    return torch.from_numpy(images), torch.from_numpy(labels)


def read_npz_image_arrays(path: Path, limits: IngestLimits) -> tuple[np.ndarray, np.ndarray]:
    """`read_npz_images` as numpy arrays."""
    arrays = read_npz_arrays(path, limits, ("x", "y", "layout"))
    if "x" not in arrays:
        raise RepairInputError(
            f"{path.name}: missing arrays ['x'] (found {sorted(arrays) or 'none'})"
        )
    images = to_nchw(arrays["x"], "x", path.name, _layout(arrays, path.name))
    if "y" not in arrays:
        return images, np.full((len(images),), UNLABELED, dtype=np.int64)
    labels = _labels(arrays["y"], "y", path.name)
    if labels.shape[0] != images.shape[0]:
        raise RepairInputError(
            f"{path.name}: y has {labels.shape[0]} labels for {images.shape[0]} images in x"
        )
    return images, labels


def write_npz_splits(path: Path, splits: DatasetSplits | ArraySplits) -> None:
    """The canonical stored form of a dataset, written atomically."""
    arrays: dict[str, np.ndarray] = {
        "class_names": np.array(splits.class_names, dtype=np.str_),
        "layout": np.array("NCHW"),
    }
    for split in ("train", "test", "val"):
        dataset = getattr(splits, split)
        if dataset is not None:
            arrays[f"x_{split}"] = _numpy(dataset.images)
            arrays[f"y_{split}"] = _numpy(dataset.labels).astype(np.int64)
    _write_atomic(path, arrays)


def write_npz_images(
    path: Path, images: torch.Tensor | np.ndarray, labels: torch.Tensor | np.ndarray
) -> None:
    """The canonical stored form of a failure batch (`x` uint8 NCHW, `y` int64), atomically."""
    if not is_uint8(images) or images.ndim != 4 or labels.shape != (len(images),):
        raise RepairInputError(
            f"failure batch must be uint8 (N, C, H, W) images and (N,) labels, got "
            f"{images.dtype} {tuple(images.shape)} and {tuple(labels.shape)}"
        )
    _write_atomic(
        path,
        {
            "x": _numpy(images),
            "y": _numpy(labels).astype(np.int64),
            "layout": np.array("NCHW"),
        },
    )


def stored_layout(x: np.ndarray, layout: str | None) -> str:
    """How `x` holds its images by the module's layout rule: "NHW", "NHWC" or "NCHW"."""
    if x.ndim == 3:
        return "NHW"
    if x.ndim == 4 and (layout == "NHWC" or (layout is None and x.shape[3] in (1, 3))):
        return "NHWC"
    return "NCHW"


def to_nchw(x: np.ndarray, key: str, source: str, layout: str | None) -> np.ndarray:
    """`x` as a C-contiguous uint8 (N, C, H, W) array, by the module's layout rule."""
    if x.ndim not in (3, 4):
        raise RepairInputError(
            f"{source}: {key} has shape {x.shape}; expected (N, H, W), (N, H, W, C) or (N, C, H, W)"
        )
    order = stored_layout(x, layout)
    if order == "NHW":
        x = x[:, None]
    elif order == "NHWC":
        x = x.transpose(0, 3, 1, 2)
    if x.shape[1] not in (1, 3) or x.shape[2] == 0 or x.shape[3] == 0:
        raise RepairInputError(
            f"{source}: {key} has shape {x.shape} as (N, C, H, W); C must be 1 or 3 "
            "and H, W positive"
        )
    return np.ascontiguousarray(x)


def check_labels(
    labels: np.ndarray, count: int, num_classes: int, *, where: str, unlabeled_ok: bool = False
) -> None:
    """One label per image, each in [0, num_classes) (or `UNLABELED` where `unlabeled_ok`);
    names the first 20 bad rows."""
    if labels.shape[0] != count:
        raise RepairInputError(f"{where}: {labels.shape[0]} labels for {count} images")
    bad = (labels < 0) | (labels >= num_classes)
    if unlabeled_ok:
        bad &= labels != UNLABELED
    offending = np.flatnonzero(bad)
    if offending.size:
        rows = ", ".join(f"row {i}: {labels[i]}" for i in offending[:20])
        raise RepairInputError(
            f"{where}: {offending.size} labels outside [0, {num_classes}) ({rows})"
        )


def _labels(y: np.ndarray, key: str, source: str) -> np.ndarray:
    if y.ndim != 1:
        raise RepairInputError(f"{source}: {key} must be one label per image (N,), got {y.shape}")
    if y.dtype.kind == "u" and y.size and int(y.max()) > np.iinfo(np.int64).max:
        raise RepairInputError(f"{source}: {key} holds labels too large for int64")
    return y.astype(np.int64)


def _class_names(arrays: dict[str, np.ndarray], source: str) -> tuple[str, ...] | None:
    names = arrays.get("class_names")
    if names is None:
        return None
    if names.ndim != 1 or names.size == 0:
        raise RepairInputError(f"{source}: class_names must be a non-empty 1-d string array")
    result = tuple(str(name) for name in names)
    if len(set(result)) != len(result) or any(not name for name in result):
        raise RepairInputError(f"{source}: class_names must be unique and non-empty")
    return result


def _layout(arrays: dict[str, np.ndarray], source: str) -> str | None:
    layout = arrays.get("layout")
    if layout is None:
        return None
    value = str(layout.reshape(-1)[0]) if layout.size == 1 else ""
    if value not in ("NCHW", "NHWC"):
        raise RepairInputError(f"{source}: layout must be 'NCHW' or 'NHWC', got {layout!r}")
    return value


def _numpy(array: torch.Tensor | np.ndarray) -> np.ndarray:
    return array if isinstance(array, np.ndarray) else array.cpu().numpy()


def _write_atomic(path: Path, arrays: dict[str, np.ndarray]) -> None:
    # A reader never sees a half-written file (see repair_core.atomic).
    with atomic_open(path) as handle:
        np.savez(handle, **arrays)  # type: ignore[arg-type]
