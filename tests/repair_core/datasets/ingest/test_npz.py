"""npz datasets and failure batches: layouts, labels, and headers that lie."""

from __future__ import annotations

import time
import tracemalloc
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch

from repair_core.datasets.ingest.limits import IngestLimits
from repair_core.datasets.ingest.npz import (
    read_npz_images,
    read_npz_split,
    read_npz_splits,
    write_npz_images,
    write_npz_splits,
)
from repair_core.datasets.types import DatasetSplits, ImageDataset
from repair_core.errors import LimitExceededError, RepairInputError
from tests.repair_core.datasets.ingest.builders import write_npy_member

LIMITS = IngestLimits()
RNG = np.random.default_rng(0)


def images(n: int, shape: tuple[int, ...]) -> np.ndarray:
    return RNG.integers(0, 256, size=(n, *shape), dtype=np.uint8)


def save(path: Path, **arrays: object) -> Path:
    with open(path, "wb") as f:
        np.savez(f, **arrays)  # type: ignore[arg-type]
    return path


def splits_arrays(shape: tuple[int, ...] = (8, 8, 3)) -> dict[str, np.ndarray]:
    return {
        "x_train": images(6, shape),
        "y_train": np.array([0, 1, 2, 0, 1, 2]),
        "x_test": images(3, shape),
        "y_test": np.array([2, 1, 0], dtype=np.uint8),
    }


def test_nhwc_arrays_become_nchw_with_the_same_pixels(tmp_path: Path) -> None:
    arrays = splits_arrays((8, 8, 3))
    splits = read_npz_splits(save(tmp_path / "d.npz", **arrays), LIMITS)
    assert splits.train.images.shape == (6, 3, 8, 8)
    assert torch.equal(splits.train.images, torch.from_numpy(arrays["x_train"]).permute(0, 3, 1, 2))
    assert splits.class_names == ("0", "1", "2")
    assert splits.test.labels.dtype == torch.int64
    assert splits.test.labels.tolist() == [2, 1, 0]


@pytest.mark.parametrize(
    ("shape", "expected"),
    [((3, 8, 8), (3, 8, 8)), ((1, 8, 8), (1, 8, 8)), ((8, 8), (1, 8, 8)), ((8, 8, 1), (1, 8, 8))],
    ids=["nchw", "nchw-gray", "nhw", "nhwc-gray"],
)
def test_layout_rule_covers_torch_numpy_and_plain_grayscale_orders(
    tmp_path: Path, shape: tuple[int, ...], expected: tuple[int, int, int]
) -> None:
    splits = read_npz_splits(save(tmp_path / "d.npz", **splits_arrays(shape)), LIMITS)
    assert splits.image_shape == expected


def test_explicit_layout_resolves_tiny_ambiguous_images(tmp_path: Path) -> None:
    arrays = splits_arrays((3, 3, 3))
    nchw = read_npz_splits(save(tmp_path / "a.npz", **arrays, layout=np.array("NCHW")), LIMITS)
    assert torch.equal(nchw.train.images, torch.from_numpy(arrays["x_train"]))


def test_write_then_read_round_trips_the_canonical_form(tmp_path: Path) -> None:
    names = ("cat", "dog", "emu")
    x = torch.from_numpy(images(5, (3, 3, 3)))
    splits = DatasetSplits(
        train=ImageDataset(x, torch.tensor([0, 1, 2, 1, 0]), names),
        test=ImageDataset(x[:2], torch.tensor([2, 2]), names),
        val=ImageDataset(x[2:], torch.tensor([1, 1, 1]), names),
    )
    path = tmp_path / "canon.npz"
    write_npz_splits(path, splits)
    back = read_npz_splits(path, LIMITS)
    assert back.class_names == names
    assert torch.equal(back.train.images, x)
    assert back.val is not None and back.val.labels.tolist() == [1, 1, 1]
    assert [p.name for p in tmp_path.iterdir()] == ["canon.npz"]  # no temp file left


def test_failure_batch_npz_round_trips(tmp_path: Path) -> None:
    x = torch.from_numpy(images(4, (1, 5, 5)))
    y = torch.tensor([3, 0, 1, 1])
    write_npz_images(tmp_path / "f.npz", x, y)
    back_x, back_y = read_npz_images(tmp_path / "f.npz", LIMITS)
    assert torch.equal(back_x, x) and torch.equal(back_y, y)


def test_fortran_order_and_big_endian_arrays_read_correctly(tmp_path: Path) -> None:
    x = np.asfortranarray(images(4, (8, 8, 3)))
    y = np.array([1, 0, 1, 0], dtype=">i8")
    got_x, got_y = read_npz_images(save(tmp_path / "f.npz", x=x, y=y), LIMITS)
    assert torch.equal(got_x, torch.from_numpy(np.ascontiguousarray(x.transpose(0, 3, 1, 2))))
    assert got_y.tolist() == [1, 0, 1, 0]


def _lying_npz(path: Path, key: str, header: dict[str, object], data: bytes) -> Path:
    with zipfile.ZipFile(path, "w") as zf:
        write_npy_member(zf, key, header, data)
        write_npy_member(zf, "y", {"descr": "<i8", "fortran_order": False, "shape": (0,)}, b"")
    return path


@pytest.mark.parametrize("descr", ["<f8", "|u1"])
def test_80_byte_member_declaring_a_huge_array_is_refused_before_allocating(
    tmp_path: Path, descr: str
) -> None:
    header = {"descr": descr, "fortran_order": False, "shape": (65536, 65536)}
    path = _lying_npz(tmp_path / "lie.npz", "x", header, b"\x00" * 8)
    assert path.stat().st_size < 600
    tracemalloc.start()
    start = time.perf_counter()
    try:
        with pytest.raises(RepairInputError) as caught:
            read_npz_images(path, LIMITS)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 5 * 1024 * 1024
    assert time.perf_counter() - start < 1.0
    assert "x.npy" in str(caught.value)


def test_array_over_max_npy_bytes_names_the_limit(tmp_path: Path) -> None:
    path = save(tmp_path / "big.npz", x=images(4, (16, 16, 3)), y=np.zeros(4, np.int64))
    with pytest.raises(LimitExceededError, match="max_npy_bytes=1000") as caught:
        read_npz_images(path, IngestLimits(max_npy_bytes=1000))
    assert caught.value.limit == "max_npy_bytes"


def test_object_dtype_is_refused_and_never_unpickled(tmp_path: Path) -> None:
    path = tmp_path / "obj.npz"
    with open(path, "wb") as f:
        np.savez(f, x=np.array([{"a": 1}, None], dtype=object), y=np.zeros(2, np.int64))
    with pytest.raises(RepairInputError, match="object arrays"):
        read_npz_images(path, LIMITS)


@pytest.mark.parametrize(
    ("change", "match"),
    [
        ({"y_train": np.array([0, 1, 2, 0, 1, -1])}, r"outside \[0, 3\).*row 5: -1"),
        ({"y_test": np.array([0, 1, 7])}, r"y_test.*row 2: 7"),
        ({"y_test": np.array([0.0, 1.0, 2.0])}, "integers"),
        ({"y_test": np.array([0, 1])}, "2 labels for 3 images"),
        ({"x_test": images(3, (8, 8, 3)).astype(np.float32)}, "uint8"),
        ({"x_test": images(3, (4, 4, 3))}, "x_test images"),
        ({"x_test": images(3, (8, 8, 5))}, "C must be 1 or 3"),
        ({"x_val": images(1, (8, 8, 3))}, "x_val and y_val"),
        ({"class_names": np.array(["a", "a", "b"])}, "unique"),
        ({"class_names": np.array(["a", "b"])}, r"outside \[0, 2\)"),
    ],
)
def test_bad_arrays_are_refused_with_a_message_naming_them(
    tmp_path: Path, change: dict[str, np.ndarray], match: str
) -> None:
    arrays = {**splits_arrays(), **change}
    with pytest.raises(RepairInputError, match=match):
        read_npz_splits(save(tmp_path / "d.npz", **arrays), LIMITS)


def test_missing_arrays_are_listed(tmp_path: Path) -> None:
    arrays = splits_arrays()
    del arrays["y_test"]
    with pytest.raises(RepairInputError, match=r"missing arrays \['y_test'\]"):
        read_npz_splits(save(tmp_path / "d.npz", **arrays), LIMITS)


def test_truncated_or_corrupt_npz_is_refused(tmp_path: Path) -> None:
    path = save(tmp_path / "d.npz", **splits_arrays())
    raw = path.read_bytes()
    corrupt = bytearray(raw)
    corrupt[200] ^= 0xFF  # inside x_train's data: the zip CRC check catches it
    (tmp_path / "bad.npz").write_bytes(bytes(corrupt))
    (tmp_path / "cut.npz").write_bytes(raw[: len(raw) // 2])
    for name in ("bad.npz", "cut.npz"):
        with pytest.raises(RepairInputError):
            read_npz_splits(tmp_path / name, LIMITS)


def test_non_npz_zip_is_refused(tmp_path: Path) -> None:
    with zipfile.ZipFile(tmp_path / "x.npz", "w") as zf:
        zf.writestr("readme.txt", "hello")
    with pytest.raises(RepairInputError, match="not an npz"):
        read_npz_images(tmp_path / "x.npz", LIMITS)


@pytest.mark.parametrize(
    "stored,layout,expected",
    [
        ((5, 6, 3), None, "NHWC"),
        ((3, 5, 6), None, "NCHW"),
        ((5, 6), None, "NHW"),
        ((3, 5, 3), "NCHW", "NCHW"),
    ],
)
def test_one_split_is_read_by_name_and_says_how_its_images_were_stored(
    tmp_path: Path, stored: tuple[int, ...], layout: str | None, expected: str
) -> None:
    x = images(4, stored)
    path = save(tmp_path / "d.npz", x_test=x, y_test=np.array([0, 2, 1, 2]))
    dataset, used = read_npz_split(path, "test", LIMITS, layout=layout)
    assert used == expected
    assert dataset.class_names == ("0", "1", "2")
    assert dataset.labels.tolist() == [0, 2, 1, 2]
    assert dataset.images.shape[1] in (1, 3) and len(dataset) == 4


def test_a_split_that_is_missing_or_has_labels_outside_its_class_names_is_refused(
    tmp_path: Path,
) -> None:
    path = save(
        tmp_path / "d.npz",
        x_test=images(2, (4, 4, 3)),
        y_test=np.array([0, 2]),
        class_names=np.array(["a", "b"]),
    )
    with pytest.raises(RepairInputError, match=r"missing arrays \['x_train', 'y_train'\]"):
        read_npz_split(path, "train", LIMITS)
    with pytest.raises(RepairInputError, match=r"labels outside \[0, 2\)"):
        read_npz_split(path, "test", LIMITS)
