"""Tiny uploads built in memory: datasets, checkpoints, failure batches, and hostile ones.

Images are 3x8x8 RGB PNGs of three classes; the checkpoint is a 4-cell DARTS network
for that shape. Everything here is small enough to build in milliseconds.
"""

from __future__ import annotations

import io
import json
import pickle
import tarfile
import zipfile
from pathlib import Path

CLASSES = ("cat", "dog", "emu")
SIZE = 8


def png(seed: int, size: int = SIZE, mode: str = "RGB") -> bytes:
    from PIL import Image

    image = Image.new(mode, (size, size), color=(seed * 37 % 256, seed * 91 % 256, 128))
    buf = io.BytesIO()
    image.save(buf, format="PNG")
    return buf.getvalue()


def imagefolder_files(per_class: int = 3, test_per_class: int = 2) -> dict[str, bytes]:
    files = {}
    for c, name in enumerate(CLASSES):
        for i in range(per_class):
            files[f"train/{name}/{i}.png"] = png(c * 10 + i)
        for i in range(test_per_class):
            files[f"test/{name}/{i}.png"] = png(c * 10 + i + 5)
    return files


def tar_bytes(files: dict[str, bytes], *, gz: bool = False) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz" if gz else "w") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def zip_bytes(files: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for name, data in files.items():
            zf.writestr(name, data)
    return buf.getvalue()


def hostile_tar(kind: str) -> bytes:
    """A valid dataset tar plus one hostile member."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for name, data in imagefolder_files().items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
        if kind == "symlink":
            info = tarfile.TarInfo("train/cat/link.png")
            info.type = tarfile.SYMTYPE
            info.linkname = "/etc/passwd"
            tar.addfile(info)
        else:
            name = {"dotdot": "../../escape.png", "absolute": "/tmp/absolute.png"}[kind]
            data = png(99)
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def zip_bomb(unpacked_bytes: int) -> bytes:
    """A dataset zip whose one extra member inflates to `unpacked_bytes` of zeros."""
    files = imagefolder_files()
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for name, data in files.items():
            zf.writestr(name, data)
        zf.writestr("train/cat/bomb.png", b"\0" * unpacked_bytes)
    return buf.getvalue()


def png_bomb(side: int) -> bytes:
    """A PNG declaring side x side pixels (compresses to almost nothing)."""
    from PIL import Image

    buf = io.BytesIO()
    Image.new("L", (side, side)).save(buf, format="PNG", optimize=True)
    return buf.getvalue()


def npz_dataset(num_classes: int = 3) -> bytes:
    import numpy as np

    rng = np.random.default_rng(0)
    buf = io.BytesIO()
    np.savez(
        buf,
        x_train=rng.integers(0, 255, (9, 3, SIZE, SIZE), dtype=np.uint8),
        y_train=np.arange(9, dtype=np.int64) % num_classes,
        x_test=rng.integers(0, 255, (3, 3, SIZE, SIZE), dtype=np.uint8),
        y_test=np.arange(3, dtype=np.int64) % num_classes,
    )
    return buf.getvalue()


def failure_zip(labels: dict[str, object], extra: dict[str, bytes] | None = None) -> bytes:
    """Images named in `labels` plus a labels.csv; `extra` files go in unlabelled."""
    files: dict[str, bytes] = {name: png(i + 40) for i, name in enumerate(labels)}
    lines = ["file,label", *(f"{name},{label}" for name, label in labels.items())]
    files["labels.csv"] = ("\n".join(lines) + "\n").encode()
    files.update(extra or {})
    return zip_bytes(files)


def _network(num_classes: int) -> object:
    import torch

    from repair_core.search.genotype import DARTS_V2
    from repair_core.search.network import EvalNetwork, NetworkConfig

    config = NetworkConfig(
        init_channels=4, layers=4, num_classes=num_classes, in_channels=3, image_size=SIZE
    )
    return EvalNetwork(DARTS_V2, config, generator=torch.Generator().manual_seed(0)).eval()


def checkpoint(tmp_path: Path, num_classes: int = 3) -> bytes:
    """A repair_core .safetensors checkpoint for the tiny dataset's shape."""
    from repair_core.checkpoint import save_model

    path = tmp_path / f"model-{num_classes}.safetensors"
    names = [f"c{i}" for i in range(num_classes)]
    save_model(path, _network(num_classes), class_names=names)  # type: ignore[arg-type]
    return path.read_bytes()


def state_dict_pt(tmp_path: Path) -> tuple[bytes, str, str]:
    """A plain .pt state dict, its genotype (DARTS notation) and network config JSON."""
    import torch

    from repair_core.search.genotype import DARTS_V2

    model = _network(3)
    path = tmp_path / "model.pt"
    torch.save(model.state_dict(), path)  # type: ignore[attr-defined]
    config = {"init_channels": 4, "layers": 4}
    return path.read_bytes(), DARTS_V2.to_darts_notation(), json.dumps(config)


class _Pwn:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[object, ...]:
        import os

        return (os.system, (f"touch {self.marker}",))


def malicious_pickle(marker: Path) -> bytes:
    """A pickle that would run `touch marker` when unpickled (it must never be)."""
    return pickle.dumps({"weight": _Pwn(marker)}, protocol=4)


def registry_state_dict(family: str, name: str, num_classes: int = 3, channels: int = 3) -> bytes:
    """The safetensors state dict of a fresh timm / torchvision network (random weights)."""
    from safetensors.torch import save

    from repair_core.models import InputSpec
    from repair_core.models.registry_nets import build_registry_net

    net = build_registry_net(family, name, InputSpec(channels, SIZE, SIZE), num_classes, seed=0)
    return save({k: v.contiguous() for k, v in net.net.state_dict().items()})  # type: ignore[union-attr]


def checkpoint_stub() -> bytes:
    """A well-formed, empty safetensors file: for refusals decided by the form fields."""
    from safetensors.torch import save

    return save({})
