"""`repairctl corrupt`: write a corrupted copy of a dataset split (CIFAR-10-C style).

Input is an `.npz` split (`x_<split>` uint8 images, `y_<split>` integer labels) or an
ImageFolder directory (`<dir>/<class>/<image>.png|jpg|bmp|webp`), read by the library's
safe readers. Heavy imports happen inside the command so that `repairctl --help` stays
fast.
"""

from __future__ import annotations

import contextlib
import time
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

if TYPE_CHECKING:
    import numpy as np

    from repair_core.datasets.types import ImageDataset

# The CLI reads the user's own files: the library's default caps, but no undecodable
# image is skipped silently.
BAD_IMAGE_TOLERANCE = 0.0


def _from_nchw(x: np.ndarray, layout: str) -> np.ndarray:
    """Images back in the layout they came in ("NHW", "NHWC" or "NCHW")."""
    if layout == "NHW":
        return x[:, 0]
    return x.transpose(0, 2, 3, 1) if layout == "NHWC" else x


def _read_source(source: Path, split: str, layout: str) -> tuple[ImageDataset, str]:
    """The dataset at `source` and the layout its images came in (ImageFolder: NHWC)."""
    from repair_core.datasets.ingest.imagefolder import read_class_folders
    from repair_core.datasets.ingest.limits import IngestLimits
    from repair_core.datasets.ingest.npz import read_npz_split

    limits = IngestLimits(bad_image_tolerance=BAD_IMAGE_TOLERANCE)
    if source.is_dir():
        dataset, _skipped = read_class_folders(source, limits)
        return dataset, "NHWC"
    return read_npz_split(
        source, split, limits, layout=None if layout == "auto" else layout.upper()
    )


class _NpzWriter:
    """Writes arrays into an .npz one at a time (np.savez needs them all in memory at once)."""

    def __init__(self, archive: zipfile.ZipFile) -> None:
        self.zip = archive

    def add(self, key: str, array: np.ndarray) -> None:
        import numpy as np

        # A fixed timestamp keeps the file byte-identical across runs with the same seed.
        info = zipfile.ZipInfo(f"{key}.npy", date_time=(1980, 1, 1, 0, 0, 0))
        with self.zip.open(info, "w", force_zip64=True) as member:
            np.lib.format.write_array(member, np.ascontiguousarray(array), allow_pickle=False)


@contextlib.contextmanager
def _npz_writer(path: Path) -> Iterator[_NpzWriter]:
    """An `_NpzWriter` whose file replaces `path` only when complete (`repair_core.atomic`)."""
    from repair_core.atomic import atomic_path

    with (
        atomic_path(path) as tmp,
        zipfile.ZipFile(tmp, "w", zipfile.ZIP_STORED, allowZip64=True) as archive,
    ):
        yield _NpzWriter(archive)


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
        dataset, used_layout = _read_source(source, split, layout)
        images = dataset.images.to(target)
        labels = dataset.labels.numpy()
        single = len(names) * len(severities) == 1
        with _npz_writer(output) as writer:
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
    except RepairInputError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from exc
    count = len(names) * len(severities)
    typer.echo(f"wrote {count} corrupted set(s) of {len(dataset)} images to {output}")


def _string_array(values: tuple[str, ...]) -> np.ndarray:
    import numpy as np

    return np.array(values, dtype=str)  # fixed-width unicode: loads with allow_pickle=False
