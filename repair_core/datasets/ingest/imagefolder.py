"""ImageFolder-style datasets (`train/<class>/*`, `test/<class>/*`, optional `val/`).

Accepted sources:
- an archive (tar, tar.gz, zip) holding the split folders, optionally inside one
  wrapper folder (`cifar10/train/cat/0001.png`);
- a directory holding the split folders;
- a directory holding one archive per split (`train.tar.gz`, `test.zip`, ...), each
  with the class folders at its root or inside one wrapper folder (the layout of
  the shared CIFAR-10 copy: `train.tar.gz` = `./airplane/0000.jpg ...`).

Images inside a class folder may sit in subfolders (as torchvision's ImageFolder
allows). Class names are the train class folders, sorted; label i is the i-th name.

Decoding builds numpy arrays (`IngestResult.arrays`): the upload sandbox reads them and
writes the canonical npz without importing torch. `IngestResult.splits` and
`read_class_folders` give torch datasets for local callers, converted without a copy.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING

from repair_core.datasets.arrays import ArraySplits
from repair_core.datasets.ingest.archive import ArchiveFile, iter_archive_files
from repair_core.datasets.ingest.archive_names import NameRegistry, normalize_member_name
from repair_core.datasets.ingest.capped import ByteBudget
from repair_core.datasets.ingest.collect import SplitCollector
from repair_core.datasets.ingest.limits import IngestLimits
from repair_core.datasets.ingest.rejected import Rejected, is_junk
from repair_core.errors import ArchiveUnsafeError, LimitExceededError, RepairInputError

if TYPE_CHECKING:
    from repair_core.datasets.types import DatasetSplits, ImageDataset

SPLITS = ("train", "test", "val")
# File endings read as images in a plain class folder; other files there are skipped.
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".webp")
_ARCHIVE_SUFFIXES = (".tar.gz", ".tgz", ".tar", ".zip")


@dataclass(frozen=True)
class IngestResult:
    arrays: ArraySplits
    skipped: list[Rejected]  # files left out (undecodable, outside the layout), with reasons

    @cached_property
    def splits(self) -> DatasetSplits:
        """`arrays` as torch datasets (imports torch; shares the arrays' memory)."""
        from repair_core.datasets.types import DatasetSplits

        return DatasetSplits.from_arrays(self.arrays)


def read_imagefolder(source: Path, limits: IngestLimits) -> IngestResult:
    """Decode every image of the dataset at `source` (see module doc for layouts)."""
    collector = SplitCollector(limits)
    if not source.is_dir():
        _collect_layout(collector, iter_archive_files(source, limits))
        return _result(collector, source.name)
    if (source / "train").is_dir():
        _collect_layout(collector, iter_directory_files(source, limits))
        return _result(collector, source.name)
    archives = _split_archives(source)
    if "train" not in archives:
        raise RepairInputError(
            f"{source.name}: no train/ folder and no train archive "
            f"(train{', train'.join(_ARCHIVE_SUFFIXES)})"
        )
    for split, archive in archives.items():
        _collect_split_archive(collector, split, archive, limits)
    return _result(collector, source.name)


def read_cifar10_folder(path: Path, limits: IngestLimits | None = None) -> DatasetSplits:
    """The shared CIFAR-10 copy (`train.tar.gz` + `test.tar.gz`) as uint8 splits.

    Refuses (rather than silently skips) any undecodable file: the copy is known good.
    """
    result = read_imagefolder(path, limits or IngestLimits(bad_image_tolerance=0.0))
    return result.splits


def read_class_folders(root: Path, limits: IngestLimits) -> tuple[ImageDataset, list[Rejected]]:
    """One unsplit dataset from a directory `<root>/<class>/<image>` (class names sorted,
    label i is the i-th), and the files left out with their reasons."""
    from repair_core.datasets.types import ImageDataset

    collector = SplitCollector(limits)
    for item in iter_directory_files(root, limits):
        parts = item.name.split("/")
        if is_junk(item.name):
            continue
        if len(parts) < 2:
            collector.skip(item.name, "not inside a class folder")
        elif not item.name.lower().endswith(IMAGE_SUFFIXES):
            collector.skip(item.name, f"not an image file ({', '.join(IMAGE_SUFFIXES)})")
        else:
            collector.add("all", parts[0], item.name, item.data)
    dataset, skipped = collector.finish_split("all", root.name)
    return ImageDataset.from_arrays(dataset), skipped


def iter_directory_files(root: Path, limits: IngestLimits) -> Iterator[ArchiveFile]:
    """Regular files under `root` in sorted order, with the same name rules and caps as
    archive members. Links and special files are refused: a FIFO would block the read,
    a link could point anywhere."""
    registry = NameRegistry()
    budget = ByteBudget(limits, archive=root.name)
    count = 0
    for directory, dirnames, filenames in os.walk(root):
        dirnames.sort()
        for entry in sorted(filenames) + [
            d for d in dirnames if os.path.islink(Path(directory, d))
        ]:
            path = Path(directory, entry)
            relative = path.relative_to(root).as_posix()
            name = normalize_member_name(relative, limits)
            count += 1
            if count > limits.max_members:
                raise LimitExceededError(
                    f"{root.name}: more than max_members={limits.max_members} files",
                    limit="max_members",
                    value=limits.max_members,
                )
            data = _read_regular_file(path, relative, limits.max_member_bytes)
            registry.add(name, is_dir=False)
            budget.spend(len(data), where=relative)
            yield ArchiveFile(name, data)


def _read_regular_file(path: Path, shown: str, cap: int) -> bytes:
    # O_NOFOLLOW + fstat on the opened descriptor: a file swapped for a link or FIFO
    # after the directory listing is still refused, and O_NONBLOCK keeps a FIFO from
    # blocking the open.
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError as e:
        raise ArchiveUnsafeError(f"{shown!r}: cannot be opened as a plain file ({e})") from e
    with os.fdopen(fd, "rb") as f:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise ArchiveUnsafeError(f"{shown!r}: not a regular file (link, FIFO or device)")
        data = f.read(cap + 1)
    if len(data) > cap:
        raise LimitExceededError(
            f"{shown!r}: more than max_member_bytes={cap} bytes",
            limit="max_member_bytes",
            value=cap,
        )
    return data


def _split_archives(source: Path) -> dict[str, Path]:
    found: dict[str, Path] = {}
    for split in SPLITS:
        for suffix in _ARCHIVE_SUFFIXES:
            candidate = source / f"{split}{suffix}"
            if candidate.is_file():
                if split in found:
                    raise RepairInputError(
                        f"{source.name}: both {found[split].name} and {candidate.name}; "
                        "keep one archive per split"
                    )
                found[split] = candidate
    return found


def _collect_layout(collector: SplitCollector, files: Iterator[ArchiveFile]) -> None:
    """Files named `[wrapper/]split/class/.../file`; the first such file fixes the wrapper."""
    root: str | None = None
    for item in files:
        if is_junk(item.name):
            continue
        parts = item.name.split("/")
        if len(parts) >= 3 and parts[0] in SPLITS:
            wrapper, rest = "", parts
        elif len(parts) >= 4 and parts[1] in SPLITS:
            wrapper, rest = parts[0], parts[1:]
        else:
            collector.skip(item.name, "not inside <split>/<class>/ (split is train, test or val)")
            continue
        if root is None:
            root = wrapper
        elif wrapper != root:
            collector.skip(item.name, f"outside the dataset folder {root or '(archive root)'!r}")
            continue
        collector.add(rest[0], rest[1], item.name, item.data)


def _collect_split_archive(
    collector: SplitCollector, split: str, archive: Path, limits: IngestLimits
) -> None:
    """One split's archive: `class/.../file`, or `wrapper/class/.../file` for all files."""
    files = [f for f in iter_archive_files(archive, limits) if not is_junk(f.name)]
    tops = {f.name.split("/", 1)[0] for f in files}
    wrapped = len(tops) == 1 and all(f.name.count("/") >= 2 for f in files)
    for item in files:
        parts = item.name.split("/")[1:] if wrapped else item.name.split("/")
        shown = f"{archive.name}:{item.name}"
        if len(parts) < 2:
            collector.skip(shown, "not inside a class folder")
            continue
        collector.add(split, parts[0], shown, item.data)


def _result(collector: SplitCollector, source: str) -> IngestResult:
    splits, skipped = collector.finish(source)
    return IngestResult(arrays=splits, skipped=skipped)
