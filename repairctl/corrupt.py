"""`repairctl corrupt`: write a corrupted copy of a dataset split (CIFAR-10-C style).

Input is an `.npz` split (`x_<split>` uint8 images, `y_<split>` integer labels) or an
ImageFolder directory (`<dir>/<class>/<image>.png|jpg`). Heavy imports happen inside the
command so that `repairctl --help` stays fast.
"""

from __future__ import annotations

import os
import tempfile
import time
import zipfile
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

if TYPE_CHECKING:
    import numpy as np

    from repair_core.datasets.types import ImageDataset

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg"}
MAX_IMAGE_PIXELS = 4096 * 4096  # refuse decompression bombs in ImageFolder input


def _to_nchw(x: np.ndarray, layout: str, source: str) -> tuple[np.ndarray, str]:
    """Images as (N, C, H, W) plus the layout they came in ("nhwc" or "nchw")."""
    import numpy as np

    if x.dtype != np.uint8:
        raise typer.BadParameter(f"{source}: images must be uint8, got {x.dtype}")
    if x.ndim == 3:  # (N, H, W) grayscale
        return x[:, None], "nhw"
    if x.ndim != 4:
        raise typer.BadParameter(f"{source}: images must be 3-d or 4-d, got shape {x.shape}")
    if layout == "auto":
        layout = "nhwc" if x.shape[3] in (1, 3) else "nchw"
    if layout == "nhwc":
        x = x.transpose(0, 3, 1, 2)
    if x.shape[1] not in (1, 3):
        raise typer.BadParameter(
            f"{source}: expected 1 or 3 channels in {layout.upper()} layout, got shape {x.shape}"
        )
    return np.ascontiguousarray(x), layout


def _from_nchw(x: np.ndarray, layout: str) -> np.ndarray:
    if layout == "nhw":
        return x[:, 0]
    return x.transpose(0, 2, 3, 1) if layout == "nhwc" else x


def _read_npz(path: Path, split: str, layout: str) -> tuple[ImageDataset, str]:
    import numpy as np
    import torch

    from repair_core.datasets.types import ImageDataset

    try:
        with np.load(path, allow_pickle=False) as archive:
            keys = set(archive.files)
            if f"x_{split}" not in keys or f"y_{split}" not in keys:
                raise typer.BadParameter(
                    f"{path}: needs arrays x_{split} and y_{split}, has {sorted(keys)}"
                )
            images, used_layout = _to_nchw(archive[f"x_{split}"], layout, str(path))
            labels = archive[f"y_{split}"]
            names = [str(n) for n in archive["class_names"]] if "class_names" in keys else None
    except (ValueError, OSError, zipfile.BadZipFile) as exc:  # object arrays, not an npz, ...
        raise typer.BadParameter(f"{path}: cannot read as .npz without pickle: {exc}") from exc
    if labels.ndim != 1 or not np.issubdtype(labels.dtype, np.integer):
        raise typer.BadParameter(
            f"{path}: y_{split} must be 1-d integers, got {labels.dtype} {labels.shape}"
        )
    if names is None:
        names = [str(i) for i in range(int(labels.max()) + 1 if labels.size else 0)]
    dataset = ImageDataset(
        torch.from_numpy(images), torch.from_numpy(labels.astype(np.int64)), tuple(names)
    )
    return dataset, used_layout


def _read_imagefolder(root: Path) -> ImageDataset:
    import numpy as np
    import torch
    from PIL import Image

    from repair_core.datasets.types import ImageDataset

    classes = sorted(p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not classes:
        raise typer.BadParameter(f"{root}: no class folders (expected <dir>/<class>/<image>)")
    arrays: list[np.ndarray] = []
    labels: list[int] = []
    Image.MAX_IMAGE_PIXELS = MAX_IMAGE_PIXELS
    for label, name in enumerate(classes):
        for file in sorted((root / name).iterdir()):
            if file.suffix.lower() not in IMAGE_SUFFIXES or not file.is_file():
                continue
            try:
                with Image.open(file, formats=["PNG", "JPEG"]) as image:
                    gray = image.mode in ("L", "1")
                    arrays.append(np.asarray(image.convert("L" if gray else "RGB")))
            except (OSError, Image.DecompressionBombError) as exc:
                raise typer.BadParameter(f"{file}: not a readable PNG/JPEG image: {exc}") from exc
            labels.append(label)
    if not arrays:
        raise typer.BadParameter(f"{root}: no .png/.jpg images in the class folders")
    if len({a.shape[:2] for a in arrays}) != 1:
        raise typer.BadParameter(f"{root}: images differ in size; resize them to one size first")
    if any(a.ndim == 3 for a in arrays):  # mixed gray and colour: make all RGB
        arrays = [np.repeat(a[:, :, None], 3, axis=2) if a.ndim == 2 else a for a in arrays]
        images = np.stack(arrays).transpose(0, 3, 1, 2)
    else:
        images = np.stack(arrays)[:, None]
    return ImageDataset(
        torch.from_numpy(np.ascontiguousarray(images)),
        torch.tensor(labels, dtype=torch.int64),
        tuple(classes),
    )


class _NpzWriter:
    """Writes arrays into an .npz one at a time (np.savez needs them all in memory at once),
    to a temporary file that replaces the target only when complete."""

    def __init__(self, path: Path) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
        os.close(fd)
        self.tmp = Path(tmp)
        self.zip = zipfile.ZipFile(self.tmp, "w", zipfile.ZIP_STORED, allowZip64=True)

    def add(self, key: str, array: np.ndarray) -> None:
        import numpy as np

        # A fixed timestamp keeps the file byte-identical across runs with the same seed.
        info = zipfile.ZipInfo(f"{key}.npy", date_time=(1980, 1, 1, 0, 0, 0))
        with self.zip.open(info, "w", force_zip64=True) as member:
            np.lib.format.write_array(member, np.ascontiguousarray(array), allow_pickle=False)

    def commit(self) -> None:
        self.zip.close()
        os.replace(self.tmp, self.path)

    def abort(self) -> None:
        self.zip.close()
        self.tmp.unlink(missing_ok=True)


def _write_imagefolder(
    root: Path, images: np.ndarray, labels: np.ndarray, classes: tuple[str, ...]
) -> None:
    from PIL import Image

    for name in classes:
        (root / name).mkdir(parents=True, exist_ok=True)
    for i, (image, label) in enumerate(zip(images, labels, strict=True)):
        pixels = image[0] if image.shape[0] == 1 else image.transpose(1, 2, 0)
        Image.fromarray(pixels).save(root / classes[int(label)] / f"{i:05d}.png")


def _choices(values: list[str], valid: tuple[str, ...], what: str) -> list[str]:
    if any(v == "all" for v in values):
        return list(valid)
    unknown = [v for v in values if v not in valid]
    if unknown:
        raise typer.BadParameter(f"unknown {what} {unknown}; valid: all, {', '.join(valid)}")
    return list(dict.fromkeys(values))


def corrupt_command(
    source: Annotated[
        Path, typer.Argument(help="An .npz split or an ImageFolder directory.", exists=True)
    ],
    output: Annotated[Path, typer.Option("--output", "-o", help="The .npz file to write.")],
    corruption: Annotated[
        list[str],
        typer.Option("--corruption", "-c", help="A corruption name, or 'all'. Repeatable."),
    ] = ["all"],  # noqa: B006 - typer reads the default, nothing mutates it
    severity: Annotated[
        list[str], typer.Option("--severity", "-s", help="1..5, or 'all'. Repeatable.")
    ] = ["all"],  # noqa: B006
    split: Annotated[
        str, typer.Option(help="Which split of an .npz: reads x_<split>, y_<split>.")
    ] = "test",
    layout: Annotated[
        str,
        typer.Option(
            help="Layout of 4-d .npz images: auto (NHWC when the last axis is 1 or 3), nhwc, nchw."
        ),
    ] = "auto",
    seed: Annotated[int, typer.Option(help="Seed of the random corruptions.")] = 0,
    device: Annotated[str, typer.Option(help="auto, cpu, cuda or cuda:N.")] = "cpu",
    chunk_size: Annotated[
        int, typer.Option(help="Images corrupted at once (part of the seeding).")
    ] = 1000,
    imagefolder: Annotated[
        Path | None,
        typer.Option(
            help="Also write PNGs: <dir>/<class>/ (one set) or "
            "<dir>/<corruption>/<severity>/<class>/ (several)."
        ),
    ] = None,
) -> None:
    """Write a corrupted copy of a dataset split for one or all corruptions and severities.

    One corruption at one severity writes x_<split> and y_<split> (a drop-in split).

    Several write x_<split>_<corruption>_<severity> for each, plus y_<split> once.

    Images keep the input's layout (ImageFolder input: NHWC). The same seed and chunk size
    give the same bytes.
    """
    from repair_core.corruptions import CORRUPTION_NAMES, corrupt_in_chunks
    from repair_core.device import resolve_device
    from repair_core.errors import RepairInputError

    if layout not in ("auto", "nhwc", "nchw"):
        raise typer.BadParameter(f"layout must be auto, nhwc or nchw, got {layout!r}")
    names = _choices(corruption, CORRUPTION_NAMES, "corruption")
    severities = [int(s) for s in _choices(severity, ("1", "2", "3", "4", "5"), "severity")]
    try:
        target = resolve_device(device)
        if source.is_dir():
            dataset, used_layout = _read_imagefolder(source), "nhwc"
        else:
            dataset, used_layout = _read_npz(source, split, layout)
        images = dataset.images.to(target)
        labels = dataset.labels.numpy()
        single = len(names) * len(severities) == 1
        writer = _NpzWriter(output)
        try:
            writer.add(f"y_{split}", labels)
            for name in names:
                for level in severities:
                    started = time.perf_counter()
                    corrupted = (
                        corrupt_in_chunks(images, name, level, seed=seed, chunk_size=chunk_size)
                        .cpu()
                        .numpy()
                    )
                    key = f"x_{split}" if single else f"x_{split}_{name}_{level}"
                    writer.add(key, _from_nchw(corrupted, used_layout))
                    if imagefolder is not None:
                        folder = imagefolder if single else imagefolder / name / str(level)
                        _write_imagefolder(folder, corrupted, labels, dataset.class_names)
                    typer.echo(f"{name} severity {level}: {time.perf_counter() - started:.2f} s")
            writer.add("class_names", _string_array(dataset.class_names))
        except BaseException:
            writer.abort()
            raise
        writer.commit()
    except RepairInputError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from exc
    count = len(names) * len(severities)
    typer.echo(f"wrote {count} corrupted set(s) of {len(dataset)} images to {output}")


def _string_array(values: tuple[str, ...]) -> np.ndarray:
    import numpy as np

    return np.array(values, dtype=str)  # fixed-width unicode: loads with allow_pickle=False
