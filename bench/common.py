"""What the benchmarks share: where CIFAR-10 lives, reading it, recording the machine."""

from __future__ import annotations

import json
import platform
import subprocess
import time
from pathlib import Path
from typing import Any

import torch

from repair_core.datasets.types import DatasetSplits, ImageDataset

REPO = Path(__file__).resolve().parents[1]
# `var/data/cifar10` in the checkout (git-ignored; what `bench/gpu_check.sh` carries to a
# device machine), then `../shared` beside the checkout, or the nearest ancestor's `shared/`
# (git worktrees sit deeper).
CIFAR_IN_REPO = REPO / "var/data/cifar10"
CIFAR_CANDIDATES = (
    CIFAR_IN_REPO,
    *(folder / "shared/data/cifar10" for folder in (REPO, *REPO.parents)),
)


def default_cifar10_dir() -> Path:
    for candidate in CIFAR_CANDIDATES:
        if (candidate / "train.tar.gz").exists():
            return candidate
    raise SystemExit("CIFAR-10 not found: pass its folder (train.tar.gz, test.tar.gz)")


def load_cifar10(
    folder: Path | None = None,
    *,
    train_images: int | None = None,
    test_images: int | None = None,
    seed: int = 0,
) -> DatasetSplits:
    """CIFAR-10 through the project's guarded ImageFolder reader, optionally subsampled."""
    from repair_core.datasets.ingest.imagefolder import read_cifar10_folder

    splits = read_cifar10_folder(folder or default_cifar10_dir())
    return DatasetSplits(
        train=subsample(splits.train, train_images, seed),
        test=subsample(splits.test, test_images, seed + 1),
    )


def first_images(split: str, count: int, folder: Path | None = None) -> torch.Tensor:
    """The first `count` images of `<split>.tar.gz` (sorted by member name) as uint8 NCHW.

    Our own trusted benchmark data, read directly for speed (no full decode of the split);
    uploads go through the project's guarded ingest instead.
    """
    import io
    import tarfile

    import numpy as np
    from PIL import Image

    archive_path = (folder or default_cifar10_dir()) / f"{split}.tar.gz"
    images: list[np.ndarray] = []
    with tarfile.open(archive_path) as archive:
        members = sorted(
            (m for m in archive.getmembers() if m.isfile() and m.name.endswith((".jpg", ".png"))),
            key=lambda m: m.name,
        )
        for member in members[:count]:
            handle = archive.extractfile(member)
            assert handle is not None  # regular files always have a handle
            with Image.open(io.BytesIO(handle.read()), formats=["JPEG", "PNG"]) as image:
                images.append(np.asarray(image.convert("RGB")))
    return torch.from_numpy(np.stack(images)).permute(0, 3, 1, 2).contiguous()


def subsample(data: ImageDataset, count: int | None, seed: int) -> ImageDataset:
    if count is None or count >= len(data):
        return data
    order = torch.randperm(len(data), generator=torch.Generator().manual_seed(seed))
    return data.subset(order[:count].sort().values)


def machine() -> dict[str, Any]:
    """The hardware and code a figure was measured on."""
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, text=True
        ).stdout.strip()
    except OSError:
        commit = ""
    return {
        "cpu": cpu,
        "threads": torch.get_num_threads(),
        "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
        "torch": torch.__version__,
        "commit": commit,
        "date": time.strftime("%Y-%m-%d"),
    }


def write_json(path: Path, data: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2, sort_keys=True))
