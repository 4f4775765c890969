"""read_imagefolder over archives and directories: layouts, shapes, bad images."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest
import torch

from repair_core.datasets.ingest.imagefolder import (
    read_cifar10_folder,
    read_class_folders,
    read_imagefolder,
)
from repair_core.datasets.ingest.limits import IngestLimits
from repair_core.errors import (
    ArchiveUnsafeError,
    ImageDecodeError,
    LimitExceededError,
    RepairInputError,
)
from tests.repair_core.datasets.ingest.builders import (
    image_tree,
    png_bytes,
    png_header_bomb,
    write_tar,
    write_zip,
)

LIMITS = IngestLimits()
CLASSES = {"dog": 3, "cat": 2, "bird": 1}
REPO = Path(__file__).resolve().parents[3]
# `../shared` beside the checkout (or beside a worktree's parent folder).
CIFAR = next(
    (p / "shared/data/cifar10" for p in REPO.parents if (p / "shared/data/cifar10").is_dir()),
    REPO.parent / "shared/data/cifar10",
)


def dataset_entries(prefix: str = "", **kw: object) -> list[tuple[str, bytes]]:
    return [
        *image_tree(CLASSES, split="train", prefix=prefix, **kw),  # type: ignore[arg-type]
        *image_tree({"cat": 1, "dog": 2}, split="test", prefix=prefix, **kw),  # type: ignore[arg-type]
    ]


def write_dir(root: Path, entries: list[tuple[str, bytes]]) -> Path:
    for name, data in entries:
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    return root


@pytest.mark.parametrize("form", ["tar.gz", "zip", "dir"])
def test_tiny_imagefolder_reads_to_sorted_classes_and_exact_pixels(
    tmp_path: Path, form: str
) -> None:
    entries = dataset_entries()
    if form == "tar.gz":
        source = write_tar(tmp_path / "d.tar.gz", entries, gz=True)
    elif form == "zip":
        source = write_zip(tmp_path / "d.zip", entries)
    else:
        source = write_dir(tmp_path / "d", entries)
    result = read_imagefolder(source, LIMITS)
    splits = result.splits
    assert splits.class_names == ("bird", "cat", "dog")
    assert splits.train.images.shape == (6, 3, 4, 4)
    assert splits.train.images.dtype == torch.uint8
    assert sorted(splits.train.labels.tolist()) == [0, 1, 1, 2, 2, 2]
    assert sorted(splits.test.labels.tolist()) == [1, 2, 2]
    assert splits.val is None
    assert result.skipped == []
    # Pixel (0, 0) of dog image #1 is (2*40, 1, 7): every image keeps its own label.
    for image, label in zip(splits.train.images, splits.train.labels, strict=True):
        index = {"bird": 0, "cat": 1, "dog": 2}[splits.class_names[int(label)]]
        assert int(image[0, 0, 0]) == index * 40
        assert int(image[2, 3, 3]) == 7


def test_one_wrapper_folder_and_a_val_split_are_accepted(tmp_path: Path) -> None:
    entries = dataset_entries(prefix="cifar/") + image_tree(
        {"cat": 2}, split="val", prefix="cifar/"
    )
    result = read_imagefolder(write_tar(tmp_path / "w.tar", entries), LIMITS)
    assert result.splits.val is not None
    assert result.splits.val.labels.tolist() == [1, 1]


def test_grayscale_dataset_has_one_channel(tmp_path: Path) -> None:
    source = write_zip(tmp_path / "g.zip", dataset_entries(mode="L"))
    assert read_imagefolder(source, LIMITS).splits.image_shape == (1, 4, 4)


def test_os_junk_is_ignored_and_stray_files_are_listed(tmp_path: Path) -> None:
    entries = [
        *dataset_entries(),
        ("__MACOSX/train/cat/._000.png", b"junk"),
        ("train/cat/.DS_Store", b"junk"),
        ("README.txt", b"hello"),
    ]
    result = read_imagefolder(write_zip(tmp_path / "j.zip", entries), LIMITS)
    assert len(result.splits.train) == 6
    assert [r.file for r in result.skipped] == ["README.txt"]


def test_test_classes_must_be_train_classes(tmp_path: Path) -> None:
    entries = [*dataset_entries(), *image_tree({"zebra": 1}, split="test")]
    with pytest.raises(RepairInputError, match="zebra"):
        read_imagefolder(write_tar(tmp_path / "x.tar", entries), LIMITS)


def test_missing_test_split_is_refused(tmp_path: Path) -> None:
    entries = image_tree(CLASSES, split="train")
    with pytest.raises(RepairInputError, match="test/"):
        read_imagefolder(write_tar(tmp_path / "x.tar", entries), LIMITS)


@pytest.mark.parametrize(
    "odd", [png_bytes(5, 4), png_bytes(4, 4, mode="L", color=3)], ids=["size", "channels"]
)
def test_an_image_of_another_shape_is_an_error_naming_it(tmp_path: Path, odd: bytes) -> None:
    entries = [*dataset_entries(), ("test/dog/zz_odd.png", odd)]
    with pytest.raises(RepairInputError, match=r"test/dog/zz_odd\.png.*train/bird/000\.png"):
        read_imagefolder(write_tar(tmp_path / "x.tar", entries), LIMITS)


def test_few_bad_images_are_skipped_and_listed(tmp_path: Path) -> None:
    entries = [
        *image_tree({"a": 60, "b": 60}, split="train"),
        *image_tree({"a": 1}, split="test"),
        ("train/a/bomb.png", png_header_bomb(30000, 30000)),
    ]
    result = read_imagefolder(write_tar(tmp_path / "x.tar", entries), LIMITS)
    assert len(result.splits.train) == 120
    assert [r.file for r in result.skipped] == ["train/a/bomb.png"]
    assert "decompression bomb" in result.skipped[0].reason or "pixels" in result.skipped[0].reason


def test_more_bad_images_than_the_tolerance_reject_the_dataset(tmp_path: Path) -> None:
    entries = [
        *dataset_entries(),
        ("train/cat/notes.txt", b"not an image"),
        ("train/dog/cut.png", png_bytes(4, 4)[:30]),
    ]
    with pytest.raises(ImageDecodeError, match=r"bad_image_tolerance=0\.01"):
        read_imagefolder(write_tar(tmp_path / "x.tar", entries), LIMITS)


def test_hostile_archive_is_refused_whole(tmp_path: Path) -> None:
    entries = [*dataset_entries(), ("../escape.png", png_bytes())]
    with pytest.raises(ArchiveUnsafeError):
        read_imagefolder(write_tar(tmp_path / "x.tar", entries), LIMITS)


def test_directory_with_a_symlink_is_refused(tmp_path: Path) -> None:
    root = write_dir(tmp_path / "d", dataset_entries())
    os.symlink("/etc/passwd", root / "train" / "cat" / "link.png")
    with pytest.raises(ArchiveUnsafeError, match="link"):
        read_imagefolder(root, LIMITS)


def test_directory_of_split_archives_reads_like_the_cifar_copy(tmp_path: Path) -> None:
    root = tmp_path / "cifar"
    root.mkdir()
    train = [(f"./{n.split('/', 1)[1]}", d) for n, d in image_tree(CLASSES, split="train")]
    test = [(f"./{n.split('/', 1)[1]}", d) for n, d in image_tree({"cat": 2}, split="test")]
    write_tar(root / "train.tar.gz", train, gz=True)
    write_tar(root / "test.tar.gz", test, gz=True)
    splits = read_cifar10_folder(root)
    assert splits.class_names == ("bird", "cat", "dog")
    assert (len(splits.train), len(splits.test)) == (6, 2)
    assert splits.test.labels.tolist() == [1, 1]


def test_directory_without_train_is_refused(tmp_path: Path) -> None:
    with pytest.raises(RepairInputError, match="no train"):
        read_imagefolder(tmp_path, LIMITS)


@pytest.mark.slow
@pytest.mark.skipif(not (CIFAR / "train.tar.gz").exists(), reason="shared CIFAR-10 copy absent")
def test_shared_cifar10_copy_reads_completely() -> None:
    start = time.perf_counter()
    splits = read_cifar10_folder(CIFAR)
    seconds = time.perf_counter() - start
    assert splits.train.images.shape == (50_000, 3, 32, 32)
    assert splits.test.images.shape == (10_000, 3, 32, 32)
    assert splits.class_names[0] == "airplane" and splits.class_names[-1] == "truck"
    assert torch.bincount(splits.train.labels).tolist() == [5000] * 10
    assert seconds < 120


def test_directory_with_a_fifo_is_refused_without_blocking(tmp_path: Path) -> None:
    root = write_dir(tmp_path / "d", dataset_entries())
    os.mkfifo(root / "train" / "cat" / "pipe.png")
    with pytest.raises(ArchiveUnsafeError, match="not a regular file"):
        read_imagefolder(root, LIMITS)


def test_directory_files_over_the_member_cap_are_refused(tmp_path: Path) -> None:
    root = write_dir(tmp_path / "d", dataset_entries())
    with pytest.raises(LimitExceededError, match="max_member_bytes=40"):
        read_imagefolder(root, IngestLimits(max_member_bytes=40))


def test_a_plain_class_folder_is_one_dataset_and_other_files_are_skipped_with_a_reason(
    tmp_path: Path,
) -> None:
    for name, data in image_tree({"dog": 2, "cat": 1}, split="flat"):
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    (tmp_path / "flat" / "dog" / "notes.txt").write_text("not an image")
    (tmp_path / "flat" / "README").write_text("no class")
    (tmp_path / "flat" / ".DS_Store").write_bytes(b"junk")
    dataset, skipped = read_class_folders(tmp_path / "flat", LIMITS)
    assert dataset.class_names == ("cat", "dog")
    assert dataset.labels.tolist() == [0, 1, 1]
    assert dataset.image_shape == (3, 4, 4)
    assert sorted(r.file for r in skipped) == ["README", "dog/notes.txt"]


def test_an_undecodable_image_in_a_class_folder_is_named_when_none_may_be_skipped(
    tmp_path: Path,
) -> None:
    (tmp_path / "cat").mkdir()
    (tmp_path / "cat" / "broken.png").write_bytes(b"<html>not a png</html>")
    with pytest.raises(ImageDecodeError, match=r"broken\.png"):
        read_class_folders(tmp_path, IngestLimits(bad_image_tolerance=0.0))
