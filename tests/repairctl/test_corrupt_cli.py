"""`repairctl corrupt`: corrupted copies of .npz and ImageFolder splits."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from typer.testing import CliRunner

from repair_core.corruptions import CORRUPTION_NAMES, corrupt_in_chunks
from repairctl.main import app

runner = CliRunner()


def write_npz(path: Path, layout: str = "nhwc", n: int = 6, **extra: np.ndarray) -> np.ndarray:
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (n, 16, 16, 3), dtype=np.uint8)
    stored = images if layout == "nhwc" else images.transpose(0, 3, 1, 2)
    np.savez(path, x_test=stored, y_test=np.arange(n) % 3, **extra)  # type: ignore[arg-type]
    return images


def test_one_corruption_at_one_severity_writes_a_drop_in_split(tmp_path: Path) -> None:
    images = write_npz(tmp_path / "in.npz")
    out = tmp_path / "out.npz"
    result = runner.invoke(
        app, ["corrupt", str(tmp_path / "in.npz"), "-o", str(out), "-c", "fog", "-s", "4"]
    )
    assert result.exit_code == 0, result.output
    with np.load(out, allow_pickle=False) as data:
        assert set(data.files) == {"x_test", "y_test", "class_names"}
        assert data["x_test"].shape == images.shape  # NHWC in, NHWC out
        assert np.array_equal(data["y_test"], np.arange(6) % 3)
        nchw = torch.from_numpy(images.transpose(0, 3, 1, 2).copy())
        expected = corrupt_in_chunks(nchw, "fog", 4, seed=0).numpy().transpose(0, 2, 3, 1)
        assert np.array_equal(data["x_test"], expected)


def test_all_corruptions_at_one_severity_write_one_array_each(tmp_path: Path) -> None:
    write_npz(tmp_path / "in.npz", n=2)
    out = tmp_path / "all.npz"
    result = runner.invoke(app, ["corrupt", str(tmp_path / "in.npz"), "-o", str(out), "-s", "5"])
    assert result.exit_code == 0, result.output
    with np.load(out, allow_pickle=False) as data:
        assert {f"x_test_{name}_5" for name in CORRUPTION_NAMES} | {"y_test", "class_names"} == set(
            data.files
        )


def test_nchw_input_keeps_its_layout_and_output_is_reproducible(tmp_path: Path) -> None:
    write_npz(tmp_path / "in.npz", layout="nchw")
    args = [
        "corrupt",
        str(tmp_path / "in.npz"),
        "--layout",
        "nchw",
        "-c",
        "snow",
        "-c",
        "glass_blur",
        "-s",
        "1",
        "-s",
        "2",
    ]
    first = runner.invoke(app, [*args, "-o", str(tmp_path / "a.npz"), "--seed", "3"])
    second = runner.invoke(app, [*args, "-o", str(tmp_path / "b.npz"), "--seed", "3"])
    assert first.exit_code == 0 and second.exit_code == 0, first.output
    assert (tmp_path / "a.npz").read_bytes() == (tmp_path / "b.npz").read_bytes()
    with np.load(tmp_path / "a.npz", allow_pickle=False) as data:
        assert data["x_test_snow_2"].shape == (6, 3, 16, 16)
        assert len([k for k in data.files if k.startswith("x_test_")]) == 4


def test_imagefolder_in_and_out(tmp_path: Path) -> None:
    source = tmp_path / "folder"
    rng = np.random.default_rng(1)
    for name in ("cat", "dog"):
        (source / name).mkdir(parents=True)
        for i in range(2):
            Image.fromarray(rng.integers(0, 256, (12, 12, 3), dtype=np.uint8)).save(
                source / name / f"{i}.png"
            )
    (source / "dog" / "notes.txt").write_text("not an image")
    result = runner.invoke(
        app,
        ["corrupt", str(source), "-o", str(tmp_path / "out.npz"), "-c", "contrast", "-s", "2",
         "--imagefolder", str(tmp_path / "pngs")],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    with np.load(tmp_path / "out.npz", allow_pickle=False) as data:
        assert data["x_test"].shape == (4, 12, 12, 3)
        assert list(data["y_test"]) == [0, 0, 1, 1]
        assert list(data["class_names"]) == ["cat", "dog"]
        written = np.asarray(Image.open(tmp_path / "pngs" / "dog" / "00003.png"))
        assert np.array_equal(written, data["x_test"][3])


@pytest.mark.parametrize(
    "args,message",
    [
        (["-c", "rain"], "unknown corruption"),
        (["-s", "6"], "unknown severity"),
        (["--split", "train"], "x_train"),
        (["--layout", "hwcn"], "layout"),
    ],
)
def test_bad_arguments_exit_with_a_usage_error(
    tmp_path: Path, args: list[str], message: str
) -> None:
    write_npz(tmp_path / "in.npz")
    result = runner.invoke(
        app, ["corrupt", str(tmp_path / "in.npz"), "-o", str(tmp_path / "o.npz"), *args]
    )
    assert result.exit_code == 2
    assert message in " ".join(result.output.split())
    assert not (tmp_path / "o.npz").exists()


def test_object_arrays_are_refused_without_unpickling(tmp_path: Path) -> None:
    np.savez(tmp_path / "evil.npz", x_test=np.array([object()], dtype=object), y_test=np.zeros(1))
    result = runner.invoke(
        app, ["corrupt", str(tmp_path / "evil.npz"), "-o", str(tmp_path / "o.npz")]
    )
    assert result.exit_code == 2
    assert "without pickle" in " ".join(result.output.split())


def test_labels_outside_the_class_names_are_a_clear_error(tmp_path: Path) -> None:
    write_npz(tmp_path / "in.npz", class_names=np.array(["a", "b"]))  # labels go up to 2
    result = runner.invoke(
        app, ["corrupt", str(tmp_path / "in.npz"), "-o", str(tmp_path / "o.npz"), "-c", "fog"]
    )
    assert result.exit_code == 2
    assert "labels outside [0, 2)" in result.output
    assert not (tmp_path / "o.npz").exists()


def test_an_unreadable_image_in_an_imagefolder_is_named(tmp_path: Path) -> None:
    (tmp_path / "folder" / "cat").mkdir(parents=True)
    (tmp_path / "folder" / "cat" / "broken.png").write_bytes(b"<html>not a png</html>")
    result = runner.invoke(
        app, ["corrupt", str(tmp_path / "folder"), "-o", str(tmp_path / "o.npz")]
    )
    assert result.exit_code == 2
    # Rich wraps long paths inside its error box: compare without the box and whitespace.
    assert "broken.png" in re.sub(r"[\s│╭╮╰╯─]", "", result.output)
