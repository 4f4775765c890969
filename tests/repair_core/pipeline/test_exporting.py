"""The export stage: once per work directory, a failed format recorded with its reason."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from repair_core.checkpoint import save_model
from repair_core.export import ExportCheck, ExportError
from repair_core.pipeline import exporting
from repair_core.pipeline.exporting import export_repaired, exported_files
from repair_core.pipeline.workdir import WorkDir
from repair_core.rng import seeded_generator
from repair_core.search.genotype import DARTS_V2
from repair_core.search.network import EvalNetwork, NetworkConfig


def _checkpoint(path: Path) -> Path:
    config = NetworkConfig(init_channels=4, layers=3, num_classes=2, image_size=8, in_channels=1,
                           mean=(0.5,), std=(0.25,))  # fmt: skip
    save_model(path, EvalNetwork(DARTS_V2, config, generator=seeded_generator(0)),
               class_names=["a", "b"])  # fmt: skip
    return path


def test_a_failed_export_is_recorded_with_its_reason_and_the_other_format_stands(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[str] = []

    def broken(model: torch.nn.Module, path: Path, shape: tuple[int, int, int],
               metadata: dict[str, str]) -> ExportCheck:  # fmt: skip
        calls.append("torchscript")
        raise ExportError("TorchScript: max abs logit difference 0.5 exceeds 0.0001")

    file_name = exporting.EXPORTERS["onnx"][0]
    monkeypatch.setitem(exporting.EXPORTERS, "torchscript", ("model.pt", broken))
    work = WorkDir(tmp_path / "work")
    checkpoint = _checkpoint(tmp_path / "model.safetensors")
    formats = export_repaired(work, checkpoint, (1, 8, 8))

    assert formats["torchscript"] == {
        "format": "torchscript",
        "error": "TorchScript: max abs logit difference 0.5 exceeds 0.0001",
    }
    assert formats["onnx"]["max_abs_diff"] <= 1e-4 and formats["onnx"]["file"] == file_name
    assert exported_files(work, formats) == {"onnx": work.root / file_name}
    assert not (work.root / "model.pt").exists()
    # Done once: a resumed repair reads the ledger and exports nothing again.
    assert export_repaired(WorkDir(work.root), checkpoint, (1, 8, 8)) == formats
    assert calls == ["torchscript"]
