"""`repairctl demo` (what `make demo` runs) completes a repair and prints the report."""

from __future__ import annotations

import itertools
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


def test_the_demo_runs_one_complete_repair_and_prints_original_vs_repaired(
    tmp_path: Path,
) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("REPAIR_")}
    env.update(PYTHONPATH=str(ROOT), OMP_NUM_THREADS="1", COLUMNS="120")
    folder = tmp_path / "demo"
    done = subprocess.run(
        [sys.executable, "-m", "repairctl", "demo", "--folder", str(folder), "--device", "cpu"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-4000:]
    # The report's accuracy table on stdout (the first table; "Search health" follows it): a
    # header row and one row per model.
    lines = done.stdout.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("| Model |"))
    table = list(itertools.takewhile(lambda line: line.startswith("| "), lines[start:]))
    assert table[0].startswith("| Model | Clean | Gauss_fail |")
    assert [row.split("|")[1].strip() for row in table[2:]] == ["original", "CF-DARTS"]
    assert "succeeded after 1 attempt" in done.stderr
    assert (folder / "repaired.safetensors").stat().st_size > 0
    assert (folder / "report.png").read_bytes()[:4] == b"\x89PNG"
    assert "demo failed" not in done.stderr
