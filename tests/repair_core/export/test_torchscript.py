from __future__ import annotations

import io
from pathlib import Path

import pytest
import torch

from repair_core.export import TOLERANCE, export_torchscript
from repair_core.search.network import EvalNetwork
from tests.repair_core.export.conftest import SHAPE


@pytest.mark.filterwarnings("ignore::FutureWarning")
def test_the_traced_module_matches_pytorch_at_batch_1_and_5(
    tiny_net: EvalNetwork, tmp_path: Path
) -> None:
    path = tmp_path / "model.pt"
    check = export_torchscript(tiny_net, path, input_shape=SHAPE)
    assert check.max_abs_diff <= TOLERANCE and check.format == "torchscript"
    loaded = torch.jit.load(io.BytesIO(path.read_bytes()))
    for batch in (1, 5):
        images = torch.rand(batch, *SHAPE)
        with torch.no_grad():
            assert (loaded(images) - tiny_net(images)).abs().max() <= TOLERANCE
