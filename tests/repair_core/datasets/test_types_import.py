"""The in-memory dataset types load without the upload readers (PIL, archives, ingest)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]


def test_importing_image_dataset_loads_neither_pil_nor_the_ingest_package() -> None:
    code = """
import sys
from repair_core.datasets.types import DatasetSplits, ImageDataset
import repair_core.datasets.ops, repair_core.datasets.digits
heavy = ("PIL", "repair_core.datasets.ingest")
loaded = [m for m in sys.modules if m in heavy or m.startswith(tuple(h + "." for h in heavy))]
print(",".join(sorted(loaded)))
"""
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == ""
