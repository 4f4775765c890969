"""Running a snippet in a fresh interpreter, to see what importing a module does."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def python_output(code: str) -> str:
    """What `python -c code` prints, run from the repository root (stripped)."""
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True
    )
    return out.stdout.strip()
