"""Decoding the images of an ImageFolder-style upload into per-split arrays (numpy, so
the upload sandbox never imports torch; see `repair_core.datasets.arrays`).

The first decoded image fixes the image shape (its size, and 1 channel for grayscale
or 3 for colour); any later image that differs stops the dataset with an error that
names it, because silently resizing or recolouring would change what the model sees.
Undecodable files are skipped if they are at most `bad_image_tolerance` of all image
files, and the whole dataset is refused otherwise.
"""

from __future__ import annotations

import numpy as np

from repair_core.datasets.arrays import ArrayDataset, ArraySplits
from repair_core.datasets.ingest.buffer import ImageBuffer
from repair_core.datasets.ingest.images import decode_image
from repair_core.datasets.ingest.limits import IngestLimits
from repair_core.datasets.ingest.rejected import Rejected
from repair_core.errors import ImageDecodeError, RepairInputError


def format_shape(shape: tuple[int, int, int]) -> str:
    c, h, w = shape
    return f"{w}x{h} with {c} channel{'s' if c != 1 else ''}"


class SplitCollector:
    """Receives (split, class, file, bytes) one at a time; `finish()` builds the splits."""

    def __init__(self, limits: IngestLimits) -> None:
        self._limits = limits
        self._shape: tuple[int, int, int] | None = None
        self._first_file = ""
        self._buffers: dict[str, ImageBuffer] = {}
        self._class_ids: dict[str, list[int]] = {}  # per split, ids into _class_order
        self._class_index: dict[str, int] = {}
        self._classes_seen: dict[str, set[str]] = {}  # class folders holding any file
        self._bad: list[Rejected] = []
        self._skipped: list[Rejected] = []

    def skip(self, name: str, reason: str) -> None:
        self._skipped.append(Rejected(name, reason))

    def add(self, split: str, class_name: str, name: str, data: bytes) -> None:
        self._classes_seen.setdefault(split, set()).add(class_name)
        try:
            pixels = decode_image(data, name=name, max_pixels=self._limits.max_image_pixels)
        except ImageDecodeError as e:
            self._bad.append(Rejected(name, str(e)))
            return
        height, width, channels = pixels.shape
        shape = (channels, height, width)
        if self._shape is None:
            self._shape, self._first_file = shape, name
        elif shape != self._shape:
            raise RepairInputError(
                f"{name}: image is {format_shape(shape)}, but {self._first_file} is "
                f"{format_shape(self._shape)}; all images must share one size and channel count"
            )
        if split not in self._buffers:
            self._buffers[split] = ImageBuffer(shape, max_bytes=self._limits.max_decoded_bytes)
            self._class_ids[split] = []
        self._buffers[split].append(pixels)
        self._class_ids[split].append(
            self._class_index.setdefault(class_name, len(self._class_index))
        )

    def finish(self, source: str) -> tuple[ArraySplits, list[Rejected]]:
        self._check_bad_fraction(source)
        train_classes = self._classes_seen.get("train", set())
        if not train_classes:
            raise RepairInputError(f"{source}: no image files under train/<class>/")
        if "test" not in self._classes_seen:
            raise RepairInputError(f"{source}: no image files under test/<class>/")
        class_names = tuple(sorted(train_classes))
        for split in ("test", "val"):
            extra = sorted(self._classes_seen.get(split, set()) - train_classes)
            if extra:
                raise RepairInputError(
                    f"{source}: {split}/ has classes that train/ lacks: {extra[:20]}"
                )
        self._check_decoded("train", class_names, f"{source}: train/")
        datasets = {split: self._dataset(split, class_names) for split in self._classes_seen}
        if datasets.get("test") is None:
            raise RepairInputError(f"{source}: no decodable image under test/")
        splits = ArraySplits(
            train=_present(datasets["train"]), test=_present(datasets["test"]),
            val=datasets.get("val"),
        )  # fmt: skip
        return splits, self._skipped + self._bad

    def finish_split(self, split: str, source: str) -> tuple[ArrayDataset, list[Rejected]]:
        """One split on its own (a plain `<class>/<image>` folder): its classes are its own."""
        self._check_bad_fraction(source)
        class_names = tuple(sorted(self._classes_seen.get(split, set())))
        if not class_names:
            raise RepairInputError(f"{source}: no image files under <class>/ folders")
        self._check_decoded(split, class_names, source)
        return _present(self._dataset(split, class_names)), self._skipped + self._bad

    def _check_decoded(self, split: str, class_names: tuple[str, ...], where: str) -> None:
        empty = sorted(set(class_names) - self._decoded_classes(split))
        if empty:
            raise RepairInputError(f"{where} classes without one decodable image: {empty[:20]}")

    def _check_bad_fraction(self, source: str) -> None:
        good = sum(buffer.count for buffer in self._buffers.values())
        total = good + len(self._bad)
        if self._bad and len(self._bad) > self._limits.bad_image_tolerance * total:
            first = self._bad[0]
            raise ImageDecodeError(
                f"{source}: {len(self._bad)} of {total} image files could not be decoded, "
                f"more than bad_image_tolerance={self._limits.bad_image_tolerance:g}; "
                f"first: {first.reason}"
            )

    def _decoded_classes(self, split: str) -> set[str]:
        order = list(self._class_index)
        return {order[i] for i in set(self._class_ids.get(split, []))}

    def _dataset(self, split: str, class_names: tuple[str, ...]) -> ArrayDataset | None:
        buffer = self._buffers.get(split)
        if buffer is None:
            return None
        position = {name: i for i, name in enumerate(class_names)}
        remap = np.array([position[name] for name in self._class_index], dtype=np.int64)
        labels = remap[np.asarray(self._class_ids[split], dtype=np.int64)]
        return ArrayDataset(buffer.finish(), labels, class_names)


def _present(dataset: ArrayDataset | None) -> ArrayDataset:
    if dataset is None:  # pragma: no cover - finish() checked both splits first
        raise RepairInputError("split has no decodable image")
    return dataset
