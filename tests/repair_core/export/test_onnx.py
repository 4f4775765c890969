from __future__ import annotations

import copy
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch

from repair_core.export import INPUT_NAME, OUTPUT_NAME, TOLERANCE, ExportError, export_onnx
from repair_core.export import onnx as onnx_export
from repair_core.search.network import EvalNetwork
from tests.repair_core.export.conftest import SHAPE


def _session(path: Path) -> ort.InferenceSession:
    return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])


@pytest.mark.parametrize("batch", [1, 5])
def test_onnxruntime_logits_match_pytorch_at_any_batch_size(
    tiny_net: EvalNetwork, tmp_path: Path, batch: int
) -> None:
    path = tmp_path / "model.onnx"
    check = export_onnx(tiny_net, path, input_shape=SHAPE)
    assert check.max_abs_diff <= TOLERANCE and check.batch_sizes == (1, 5)
    images = torch.rand(batch, *SHAPE, generator=torch.Generator().manual_seed(batch))
    (logits,) = _session(path).run([OUTPUT_NAME], {INPUT_NAME: images.numpy()})
    with torch.no_grad():
        expected = tiny_net(images).numpy()
    assert logits.shape == (batch, 4)
    assert np.abs(logits - expected).max() <= TOLERANCE


def test_the_graph_normalises_so_users_feed_unit_range_pixels(
    tiny_net: EvalNetwork, tmp_path: Path
) -> None:
    path = tmp_path / "model.onnx"
    export_onnx(tiny_net, path, input_shape=SHAPE)
    pixels = torch.randint(0, 256, (3, *SHAPE), generator=torch.Generator().manual_seed(7))
    unit = pixels.float() / 255
    bare = copy.deepcopy(tiny_net)
    bare.normalize = torch.nn.Identity()  # the same weights without the graph's first step
    mean = torch.tensor(tiny_net.config.mean).view(1, -1, 1, 1)
    std = torch.tensor(tiny_net.config.std).view(1, -1, 1, 1)
    with torch.no_grad():
        expected = bare((unit - mean) / std).numpy()
        unnormalised = bare(unit).numpy()
    (logits,) = _session(path).run(None, {INPUT_NAME: unit.numpy()})
    assert np.abs(logits - expected).max() <= TOLERANCE
    assert np.abs(logits - unnormalised).max() > 100 * TOLERANCE  # the step is really there


def test_the_graph_declares_a_dynamic_batch_and_carries_the_metadata(
    tiny_net: EvalNetwork, tmp_path: Path
) -> None:
    path = tmp_path / "model.onnx"
    export_onnx(tiny_net, path, input_shape=SHAPE, metadata={"class_names": '["a"]'})
    (graph_input,) = _session(path).get_inputs()
    assert graph_input.name == INPUT_NAME and graph_input.type == "tensor(float)"
    assert isinstance(graph_input.shape[0], str) and graph_input.shape[1:] == list(SHAPE)
    props = {p.key: p.value for p in onnx.load(str(path)).metadata_props}
    assert props == {"class_names": '["a"]'}


def test_an_export_that_does_not_match_pytorch_fails_and_writes_nothing(
    tiny_net: EvalNetwork, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = onnx_export.check_onnx

    def against_other_weights(
        data: bytes, model: torch.nn.Module, shape: tuple[int, int, int]
    ) -> float:
        other = copy.deepcopy(model)
        with torch.no_grad():
            other.classifier.bias.add_(1e-2)
        return real(data, other, shape)

    monkeypatch.setattr(onnx_export, "check_onnx", against_other_weights)
    monkeypatch.setattr(onnx_export, "_EXPORTERS", onnx_export._EXPORTERS[:1])
    path = tmp_path / "model.onnx"
    with pytest.raises(ExportError, match=r"TorchScript-based.*exceeds 0\.0001"):
        export_onnx(tiny_net, path, input_shape=SHAPE)
    assert not path.exists()


def test_the_dynamo_exporter_takes_over_when_the_first_exporter_fails(
    tiny_net: EvalNetwork, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def gone(model: torch.nn.Module, shape: tuple[int, int, int]) -> bytes:
        raise RuntimeError("this torch has no TorchScript-based exporter")

    name, dynamo = onnx_export._EXPORTERS[1]
    monkeypatch.setattr(onnx_export, "_EXPORTERS", (("legacy", gone), (name, dynamo)))
    path = tmp_path / "model.onnx"
    check = export_onnx(tiny_net, path, input_shape=SHAPE)
    assert check.exporter == "torch.onnx (dynamo)" and check.max_abs_diff <= TOLERANCE
    images = torch.rand(3, *SHAPE)
    (logits,) = _session(path).run(None, {INPUT_NAME: images.numpy()})
    with torch.no_grad():
        assert np.abs(logits - tiny_net(images).numpy()).max() <= TOLERANCE
