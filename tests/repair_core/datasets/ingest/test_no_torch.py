"""The upload entry points run without torch: the sandboxed child that validates every
dataset and failure-batch upload must not pay torch's import (about a second of CPU and
hundreds of MB of memory per upload)."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from tests.repair_core.datasets.ingest.builders import image_tree, png_bytes, write_tar

ROOT = Path(__file__).resolve().parents[4]

CHILD = """
import json, sys
from pathlib import Path

from api.uploads import validation
from repair_core.datasets.ingest import ingest_dataset, ingest_failure_batch
from repair_core.datasets.ingest.limits import IngestLimits

source, kind = Path(sys.argv[1]), sys.argv[2]
dest = source.with_name(source.name + ".canon.npz")
if kind == "dataset":
    summary = ingest_dataset(source, dest, IngestLimits())
    counts = summary.counts
else:
    batch = ingest_failure_batch(
        source, dest, class_names=("a", "b"), image_shape=(3, 4, 4), limits=IngestLimits()
    )
    counts = {"accepted": batch.accepted, "unlabeled": batch.unlabeled}
torch = sorted(m for m in sys.modules if m == "torch" or m.startswith("torch."))
print(json.dumps({"counts": counts, "torch": torch[:5]}))
"""


def _dataset_npz(path: Path) -> Path:
    path = path.with_suffix(".npz")
    rng = np.random.default_rng(0)
    np.savez(
        path,
        x_train=rng.integers(0, 256, (6, 3, 4, 4), dtype=np.uint8),
        y_train=np.array([0, 1, 0, 1, 0, 1]),
        x_test=rng.integers(0, 256, (2, 3, 4, 4), dtype=np.uint8),
        y_test=np.array([1, 0]),
        class_names=np.array(["a", "b"]),
    )
    return path


def _failures_npz(path: Path) -> Path:
    path = path.with_suffix(".npz")
    x = np.random.default_rng(1).integers(0, 256, (3, 3, 4, 4), dtype=np.uint8)
    np.savez(path, x=x, y=np.array([1, -1, 0]), layout=np.array("NCHW"))
    return path


def _dataset_tar(path: Path) -> Path:
    entries = [*image_tree({"a": 2, "b": 1}, split="train"), *image_tree({"a": 1}, split="test")]
    return write_tar(path.with_suffix(".tar"), entries)


def _failures_tar(path: Path) -> Path:
    images = [(f"img{i}.png", png_bytes(4, 4, color=(i, 0, 0))) for i in range(3)]
    return write_tar(
        path.with_suffix(".tar"), [*images, ("labels.csv", b"file,label\nimg0.png,b\n")]
    )


@pytest.mark.parametrize(
    ("kind", "build", "expected"),
    [
        ("dataset", _dataset_npz, {"train": 6, "test": 2}),
        ("dataset", _dataset_tar, {"train": 3, "test": 1}),
        ("failures", _failures_npz, {"accepted": 3, "unlabeled": 1}),
        ("failures", _failures_tar, {"accepted": 3, "unlabeled": 2}),
    ],
    ids=["dataset-npz", "dataset-archive", "failures-npz", "failures-archive"],
)
def test_ingesting_an_upload_never_imports_torch(
    tmp_path: Path, kind: str, build: Callable[[Path], Path], expected: dict[str, int]
) -> None:
    source = build(tmp_path / "upload")
    out = subprocess.run(
        [sys.executable, "-c", CHILD, str(source), kind],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    )
    answer = json.loads(out.stdout)
    assert answer["counts"] == expected
    assert answer["torch"] == []
