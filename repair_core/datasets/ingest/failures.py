"""Failure batches: images a deployed model got wrong, with their true labels if known.

Two upload forms: an `.npz` with `x` (images) and maybe `y` (labels, `UNLABELED` = -1
for an image without one), or an archive (tar, tar.gz, zip) of images plus maybe a
`labels.csv` / `labels.json` manifest (see manifest.py) whose file names are relative to
the manifest's folder. An image without a label is a reported failure taken on trust:
the repair asks the owner to label only those it picks (docs/label-on-demand.md).

Problems with the labels that are given (bad or out-of-range labels, rows without an
image, two rows for one image) refuse the whole batch: a wrong label would silently
teach the repair the wrong thing. Images that cannot be decoded or do not match the
model's input shape are left out one by one and reported.

The batch is read into numpy arrays (`FailureBatchResult.arrays`), which the upload
sandbox stores without importing torch; `FailureBatchResult.dataset` is the torch view
of them for local callers.
"""

from __future__ import annotations

import posixpath
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from repair_core.datasets.arrays import UNLABELED, ArrayDataset
from repair_core.datasets.ingest.archive import detect_kind, iter_archive_files
from repair_core.datasets.ingest.archive_names import normalize_member_name
from repair_core.datasets.ingest.buffer import ImageBuffer
from repair_core.datasets.ingest.collect import format_shape
from repair_core.datasets.ingest.images import decode_image
from repair_core.datasets.ingest.limits import IngestLimits
from repair_core.datasets.ingest.manifest import MANIFEST_NAMES, ManifestRow, parse_manifest, report
from repair_core.datasets.ingest.npz import check_labels, read_npz_image_arrays
from repair_core.datasets.ingest.rejected import Rejected, is_junk
from repair_core.errors import ImageDecodeError, RepairInputError

if TYPE_CHECKING:
    from repair_core.datasets.types import ImageDataset


@dataclass(frozen=True)
class FailureBatchResult:
    arrays: ArrayDataset
    rejected: list[Rejected]  # images left out, with the reason

    @cached_property
    def dataset(self) -> ImageDataset:
        """`arrays` as a torch dataset (imports torch; shares the arrays' memory)."""
        from repair_core.datasets.types import ImageDataset

        return ImageDataset.from_arrays(self.arrays)

    @property
    def unlabeled(self) -> int:
        return int((self.arrays.labels == UNLABELED).sum())


def read_failure_batch(
    path: Path,
    *,
    class_names: tuple[str, ...],
    image_shape: tuple[int, int, int],
    limits: IngestLimits,
) -> FailureBatchResult:
    """The accepted images and labels of the batch at `path`.

    `class_names` and `image_shape` (C, H, W) are those of the model's dataset.
    """
    if detect_kind(path) == "npz":
        return _from_npz(path, class_names, image_shape, limits)
    return _from_archive(path, class_names, image_shape, limits)


def _from_npz(
    path: Path,
    class_names: tuple[str, ...],
    image_shape: tuple[int, int, int],
    limits: IngestLimits,
) -> FailureBatchResult:
    images, labels = read_npz_image_arrays(path, limits)
    shape = (int(images.shape[1]), int(images.shape[2]), int(images.shape[3]))
    if shape != image_shape:
        raise RepairInputError(
            f"{path.name}: images are {format_shape(shape)}, the model's dataset has "
            f"{format_shape(image_shape)}"
        )
    if len(images) == 0:
        raise RepairInputError(f"{path.name}: x holds no images")
    check_labels(labels, len(images), len(class_names), where=f"{path.name}: y", unlabeled_ok=True)
    return FailureBatchResult(ArrayDataset(images, labels, class_names), [])


def _from_archive(
    path: Path,
    class_names: tuple[str, ...],
    image_shape: tuple[int, int, int],
    limits: IngestLimits,
) -> FailureBatchResult:
    buffer = ImageBuffer(image_shape, max_bytes=limits.max_decoded_bytes)
    accepted: list[str] = []  # image names in buffer order
    images: list[str] = []  # every image file, decodable or not
    rejected: list[Rejected] = []
    manifest: tuple[str, bytes] | None = None
    for item in iter_archive_files(path, limits):
        if is_junk(item.name):
            continue
        if posixpath.basename(item.name) in MANIFEST_NAMES:
            if manifest is not None:
                raise RepairInputError(
                    f"{path.name}: two label manifests, {manifest[0]} and {item.name}"
                )
            manifest = (item.name, item.data)
            continue
        images.append(item.name)
        problem = _decode_into(buffer, item.name, item.data, image_shape, limits)
        if problem:
            rejected.append(Rejected(item.name, problem))
        else:
            accepted.append(item.name)
    labels_by_file = (
        {} if manifest is None else _match_manifest(manifest, images, class_names, limits)
    )
    if not accepted:
        reasons = "; ".join(f"{r.file}: {r.reason}" for r in rejected[:5])
        raise RepairInputError(f"{path.name}: no usable image ({reasons or 'no image files'})")
    labels = np.array([labels_by_file.get(name, UNLABELED) for name in accepted], np.int64)
    return FailureBatchResult(ArrayDataset(buffer.finish(), labels, class_names), rejected)


def _decode_into(
    buffer: ImageBuffer,
    name: str,
    data: bytes,
    image_shape: tuple[int, int, int],
    limits: IngestLimits,
) -> str:
    """Append the image to `buffer`; "" on success, else why it is left out."""
    try:
        pixels = decode_image(data, name=name, max_pixels=limits.max_image_pixels)
    except ImageDecodeError as e:
        return str(e)
    height, width, channels = pixels.shape
    shape = (channels, height, width)
    if shape != image_shape:
        return f"image is {format_shape(shape)}, the model takes {format_shape(image_shape)}"
    buffer.append(pixels)
    return ""


def _match_manifest(
    manifest: tuple[str, bytes],
    images: list[str],
    class_names: tuple[str, ...],
    limits: IngestLimits,
) -> dict[str, int]:
    """Label per labelled image file; refuses label problems and rows without an image."""
    name, data = manifest
    rows, problems = parse_manifest(name, data, class_names)
    if problems:
        raise report(name, "rows with bad labels", problems)
    folder = posixpath.dirname(name)
    present = set(images)
    labels: dict[str, int] = {}
    unmatched = []
    for row in rows:
        file = _resolve(folder, row, limits)
        if file in labels:
            unmatched.append(f"{row.where} ({row.file}): second row for the same image")
        elif file not in present:
            unmatched.append(f"{row.where} ({row.file}): no such image in the archive")
        else:
            labels[file] = row.label
    if unmatched:
        raise report(name, "rows without an image", unmatched)
    return labels


def _resolve(folder: str, row: ManifestRow, limits: IngestLimits) -> str:
    # Same normalisation as member names; a hostile name simply matches no image.
    try:
        return normalize_member_name(posixpath.join(folder, row.file), limits)
    except RepairInputError:
        return f"\x00invalid:{row.file}"
