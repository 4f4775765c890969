"""The README's snippets for running the repaired model, run on a real export: the
onnxruntime one in a fresh interpreter that never imports torch, the `.safetensors` one
with this project; both name the same classes for the same images."""

from __future__ import annotations

import ast
import re
import subprocess
import sys
from pathlib import Path

import pytest

from repair_core.checkpoint import save_model
from repair_core.pipeline.exporting import export_repaired
from repair_core.pipeline.workdir import WorkDir
from repair_core.rng import seeded_generator
from repair_core.search.genotype import DARTS_V2
from repair_core.search.network import EvalNetwork, NetworkConfig
from tests.fresh_python import ROOT

CLASSES = ["cat", "dog", "owl"]


def _snippet(name: str) -> str:
    readme = (ROOT / "README.md").read_text()
    found = re.search(rf"<!-- readme-snippet: {name} -->\n```python\n(.*?)```", readme, re.S)
    assert found is not None, f"README has no {name} snippet"
    return found.group(1)


def _run(code: str, cwd: Path) -> str:
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=cwd, capture_output=True, text=True, timeout=300,
        env={"PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1", "PATH": "/usr/bin:/bin"},
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


@pytest.mark.filterwarnings("ignore::FutureWarning")
def test_the_onnxruntime_and_safetensors_snippets_run_and_agree(tmp_path: Path) -> None:
    config = NetworkConfig(
        init_channels=4, layers=3, num_classes=3, image_size=10, mean=(0.4,), std=(0.2,),
        in_channels=1,
    )  # fmt: skip
    net = EvalNetwork(DARTS_V2, config, generator=seeded_generator(3)).eval()
    save_model(tmp_path / "repaired.safetensors", net, class_names=CLASSES)
    work = WorkDir(tmp_path / "work")
    formats = export_repaired(work, tmp_path / "repaired.safetensors", (1, 10, 10))
    (tmp_path / "repaired.onnx").write_bytes((work.root / formats["onnx"]["file"]).read_bytes())

    alone = _snippet("onnxruntime") + "\nimport sys\nassert 'torch' not in sys.modules\n"
    from_onnx = _run(alone, tmp_path)
    from_checkpoint = _run(_snippet("safetensors"), tmp_path)
    assert from_onnx == from_checkpoint
    names = ast.literal_eval(from_onnx)  # the snippet prints a list of class names
    assert len(names) == 4 and set(names) <= set(CLASSES)
