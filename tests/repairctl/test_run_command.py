"""`repairctl run` drives the pipeline on local files and prints the report table."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from repair_core.checkpoint import load_model
from repair_core.datasets.ingest.npz import write_npz_images, write_npz_splits
from tests.digits_problem import RepairProblem

ROOT = Path(__file__).resolve().parents[2]


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "repairctl", "run", *args],
        cwd=ROOT, capture_output=True, text=True, timeout=300,
    )  # fmt: skip


def test_run_repairs_local_files_and_prints_the_table(
    digits_problem: RepairProblem, tmp_path: Path
) -> None:
    data, failures = tmp_path / "digits.npz", tmp_path / "failures.npz"
    write_npz_splits(data, digits_problem.data)
    write_npz_images(failures, digits_problem.failures.images, digits_problem.failures.labels)
    work = tmp_path / "work"
    done = _run(
        "--model", str(digits_problem.checkpoint), "--data", str(data),
        "--failures", str(failures), "--work-dir", str(work), "--profile", "smoke",
        "--budget", "30", "--failure-name", "gaussian_noise", "--device", "cpu",
        "--set", "evaluation.corruptions=gaussian_noise,fog", "--set", "evaluation.max_images=40",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr + done.stdout
    assert "| original" in done.stdout and "CF-DARTS" in done.stdout
    assert "| Control" in done.stdout and "vs Control" in done.stdout  # on by default
    assert "Gauss" in done.stdout or "gaussian" in done.stdout.lower()
    repaired = load_model(work / "model.safetensors")
    assert repaired.class_names == digits_problem.data.class_names


def test_run_names_a_bad_override_and_exits_2(
    digits_problem: RepairProblem, tmp_path: Path
) -> None:
    data, failures = tmp_path / "digits.npz", tmp_path / "failures.npz"
    write_npz_splits(data, digits_problem.data)
    write_npz_images(failures, digits_problem.failures.images, digits_problem.failures.labels)
    done = _run(
        "--model", str(digits_problem.checkpoint), "--data", str(data),
        "--failures", str(failures), "--work-dir", str(tmp_path / "w"), "--profile", "smoke",
        "--set", "train.epochz=3",
    )  # fmt: skip
    assert done.returncode == 2
    assert "train.epochz" in done.stdout
