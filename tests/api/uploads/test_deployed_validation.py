"""The deployed-model validation the sandbox child runs answers in plain JSON values
(the child's reply is moving to a data-only format) and writes a file the worker reads."""

from __future__ import annotations

import json
from pathlib import Path

import torch

from api.uploads.validation import validate_deployed_model
from repair_core.models import load_deployed
from tests.onnx_graphs import tiny_onnx


def test_an_onnx_validation_summary_is_json_and_its_stored_graph_loads(tmp_path: Path) -> None:
    upload, out = tmp_path / "m.onnx", tmp_path / "stored.onnx"
    upload.write_bytes(tiny_onnx(channels=1, classes=3).to_bytes())
    summary = validate_deployed_model(
        str(upload), str(out), "onnx", "onnx", "", (1, 12, 8), ["a", "b", "c"], [0.5], [0.25]
    )
    assert json.loads(json.dumps(summary)) == summary
    assert summary["input_spec"] == {
        "channels": 1, "height": 12, "width": 8, "mean": [0.5], "std": [0.25],
    }  # fmt: skip
    assert summary["num_flops"] is None and summary["num_parameters"] > 0
    deployed = load_deployed(out)
    x = torch.rand(5, 1, 12, 8)
    assert deployed.model(x).shape == (5, 3) and deployed.model.features(x).shape == (5, 6)  # type: ignore[operator]
