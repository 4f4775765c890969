"""read_failure_batch: archives with label manifests, npz batches, and bad labels."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest
import torch

from repair_core.datasets.ingest.failures import read_failure_batch
from repair_core.datasets.ingest.limits import IngestLimits
from repair_core.datasets.ingest.npz import UNLABELED
from repair_core.errors import RepairInputError
from tests.repair_core.datasets.ingest.builders import png_bytes, write_tar, write_zip

NAMES = ("cat", "dog", "emu")
SHAPE = (3, 4, 4)
LIMITS = IngestLimits()


def read(path: Path):  # type: ignore[no-untyped-def]
    return read_failure_batch(path, class_names=NAMES, image_shape=SHAPE, limits=LIMITS)


def pngs(count: int, folder: str = "") -> list[tuple[str, bytes]]:
    return [(f"{folder}img{i}.png", png_bytes(4, 4, color=(i, 0, 0))) for i in range(count)]


def csv_manifest(rows: Sequence[tuple[str, object]], header: str = "file,label") -> bytes:
    return ("\n".join([header, *(f"{f},{label}" for f, label in rows)]) + "\n").encode()


def test_csv_with_indices_and_class_names_labels_every_image(tmp_path: Path) -> None:
    manifest = csv_manifest([("img0.png", 2), ("img1.png", "dog"), ("img2.png", " cat ")])
    path = write_tar(tmp_path / "b.tar.gz", [*pngs(3), ("labels.csv", manifest)], gz=True)
    result = read(path)
    assert result.rejected == []
    assert result.dataset.labels.tolist() == [2, 1, 0]
    assert result.dataset.class_names == NAMES
    assert [int(v) for v in result.dataset.images[:, 0, 0, 0]] == [0, 1, 2]


@pytest.mark.parametrize(
    "document",
    [
        [{"file": "img0.png", "label": 1}, {"file": "img1.png", "label": "emu"}],
        {"img0.png": "dog", "img1.png": 2},
    ],
    ids=["list", "map"],
)
def test_json_manifest_as_list_or_map(tmp_path: Path, document: object) -> None:
    path = write_zip(tmp_path / "b.zip", [*pngs(2), ("labels.json", json.dumps(document).encode())])
    assert read(path).dataset.labels.tolist() == [1, 2]


def test_manifest_in_a_wrapper_folder_names_files_relative_to_itself(tmp_path: Path) -> None:
    manifest = csv_manifest([("img0.png", 0), ("sub/img0.png", 1)])
    entries = [*pngs(1, "batch/"), *pngs(1, "batch/sub/"), ("batch/labels.csv", manifest)]
    assert read(write_zip(tmp_path / "b.zip", entries)).dataset.labels.tolist() == [0, 1]


def test_wrong_size_or_undecodable_images_are_rejected_one_by_one(tmp_path: Path) -> None:
    entries = [
        *pngs(2),
        ("big.png", png_bytes(8, 8)),
        ("gray.png", png_bytes(4, 4, mode="L", color=9)),
        ("broken.png", b"\x89PNG garbage"),
    ]
    rows = [("img0.png", 0), ("img1.png", 1), ("big.png", 1), ("gray.png", 1), ("broken.png", 2)]
    result = read(write_tar(tmp_path / "b.tar", [*entries, ("labels.csv", csv_manifest(rows))]))
    assert result.dataset.labels.tolist() == [0, 1]
    reasons = {r.file: r.reason for r in result.rejected}
    assert set(reasons) == {"big.png", "gray.png", "broken.png"}
    assert "8x8" in reasons["big.png"] and "1 channel" in reasons["gray.png"]


def test_an_archive_without_a_manifest_is_a_batch_of_unlabeled_failures(tmp_path: Path) -> None:
    result = read(write_tar(tmp_path / "b.tar", pngs(2)))
    assert result.dataset.labels.tolist() == [UNLABELED, UNLABELED]
    assert result.unlabeled == 2


def test_images_without_a_manifest_row_are_unlabeled_the_others_keep_their_label(
    tmp_path: Path,
) -> None:
    manifest = csv_manifest([("img1.png", "emu")])
    result = read(write_zip(tmp_path / "b.zip", [*pngs(3), ("labels.csv", manifest)]))
    assert result.dataset.labels.tolist() == [UNLABELED, 2, UNLABELED]
    assert result.unlabeled == 2


def test_an_npz_without_y_or_with_minus_one_labels_is_unlabeled_there(tmp_path: Path) -> None:
    x = np.zeros((3, 4, 4, 3), np.uint8)
    with open(tmp_path / "none.npz", "wb") as f:
        np.savez(f, x=x)
    assert read(tmp_path / "none.npz").dataset.labels.tolist() == [UNLABELED] * 3
    with open(tmp_path / "part.npz", "wb") as f:
        np.savez(f, x=x, y=np.array([1, -1, 0]))
    part = read(tmp_path / "part.npz")
    assert part.dataset.labels.tolist() == [1, UNLABELED, 0] and part.unlabeled == 1
    with open(tmp_path / "bad.npz", "wb") as f:
        np.savez(f, x=x, y=np.array([1, -2, 0]))
    with pytest.raises(RepairInputError, match=r"row 1: -2"):
        read(tmp_path / "bad.npz")


@pytest.mark.parametrize(
    ("rows", "match"),
    [
        ([("img0.png", 3), ("img1.png", -1)], r"2 rows with bad labels.*row 2.*outside \[0, 3\)"),
        ([("img0.png", "3.5"), ("img1.png", 0)], "neither an integer nor a known class"),
        ([("img0.png", "zebra"), ("img1.png", 0)], "zebra"),
        ([("img0.png", 0), ("img1.png", 1), ("ghost.png", 1)], "ghost.png.*no such image"),
        ([("img0.png", 0), ("img1.png", 1), ("img1.png", 2)], "second row"),
        ([("img0.png", 0), ("../img1.png", 1)], "no such image"),
    ],
)
def test_label_problems_refuse_the_whole_batch(
    tmp_path: Path, rows: list[tuple[str, object]], match: str
) -> None:
    path = write_zip(tmp_path / "b.zip", [*pngs(2), ("labels.csv", csv_manifest(rows))])
    with pytest.raises(RepairInputError, match=match):
        read(path)


def test_only_the_first_20_offending_rows_are_reported(tmp_path: Path) -> None:
    rows = [(f"img{i}.png", 99) for i in range(30)]
    path = write_zip(tmp_path / "b.zip", [*pngs(30), ("labels.csv", csv_manifest(rows))])
    with pytest.raises(RepairInputError, match=r"30 rows with bad labels") as caught:
        read(path)
    message = str(caught.value)
    assert "row 21 " in message and "row 22 " not in message
    assert "and 10 more" in message


@pytest.mark.parametrize(
    ("name", "content", "match"),
    [
        ("labels.csv", b"name,class\nimg0.png,1\n", "header"),
        ("labels.csv", b"file,label\nimg0.png\n", "columns"),
        ("labels.json", b'[{"file": "img0.png", "label": true}]', "not an integer"),
        ("labels.json", b'[{"file": "img0.png", "label": 1.0}]', "not an integer"),
        ("labels.json", b'{"img0.png": 1, "img0.png": 2}', "duplicate key"),
        ("labels.json", b"[" * 100_000, "JSON"),
        ("labels.json", b'"text"', "expected a list"),
        ("labels.csv", b"\xff\xfe\x00bad", "UTF-8"),
    ],
)
def test_malformed_manifests_are_refused(
    tmp_path: Path, name: str, content: bytes, match: str
) -> None:
    path = write_zip(tmp_path / "b.zip", [*pngs(1), (name, content)])
    with pytest.raises(RepairInputError, match=match):
        read(path)


def test_two_manifests_are_refused(tmp_path: Path) -> None:
    manifest = csv_manifest([("img0.png", 0)])
    entries = [*pngs(1), ("labels.csv", manifest), ("labels.json", b"{}")]
    with pytest.raises(RepairInputError, match="two label manifests"):
        read(write_zip(tmp_path / "b.zip", entries))


def test_zero_accepted_images_is_an_error(tmp_path: Path) -> None:
    entries = [("a.png", png_bytes(9, 9)), ("labels.csv", csv_manifest([("a.png", 0)]))]
    with pytest.raises(RepairInputError, match=r"no usable image.*9x9"):
        read(write_zip(tmp_path / "b.zip", entries))


def test_npz_batch_is_read_and_checked_against_the_model(tmp_path: Path) -> None:
    x = np.zeros((3, 4, 4, 3), np.uint8)
    good = tmp_path / "good.npz"
    with open(good, "wb") as f:
        np.savez(f, x=x, y=np.array([2, 0, 1]))
    result = read(good)
    assert result.dataset.images.shape == (3, *SHAPE)
    assert torch.equal(result.dataset.labels, torch.tensor([2, 0, 1]))
    out_of_range = tmp_path / "range.npz"
    with open(out_of_range, "wb") as f:
        np.savez(f, x=x, y=np.array([2, 3, 1]))
    with pytest.raises(RepairInputError, match=r"row 1: 3"):
        read(out_of_range)
    wrong_shape = tmp_path / "shape.npz"
    with open(wrong_shape, "wb") as f:
        np.savez(f, x=np.zeros((3, 5, 5, 3), np.uint8), y=np.array([0, 0, 0]))
    with pytest.raises(RepairInputError, match="5x5"):
        read(wrong_shape)
