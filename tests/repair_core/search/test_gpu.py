"""CUDA checks (deselected where no GPU exists): the same code on the device, fast paths."""

from __future__ import annotations

import pytest
import torch

from repair_core.datasets.types import ImageDataset
from repair_core.search.genotype import DARTS_V2
from repair_core.search.network import EvalNetwork, NetworkConfig
from repair_core.search.searcher import SearchSettings, search
from repair_core.search.supernet import SearchConfig

pytestmark = pytest.mark.gpu


def _dataset(n: int, seed: int) -> ImageDataset:
    gen = torch.Generator().manual_seed(seed)
    labels = torch.randint(0, 3, (n,), generator=gen)
    images = torch.randint(0, 255, (n, 3, 16, 16), generator=gen, dtype=torch.uint8)
    return ImageDataset(images, labels, ("a", "b", "c"))


@pytest.mark.parametrize(("order", "fast"), [("first", False), ("second", False), ("second", True)])
def test_search_runs_on_cuda_including_bf16_and_channels_last(order: str, fast: bool) -> None:
    config = SearchConfig(init_channels=8, layers=5, num_classes=3)
    settings = SearchSettings(
        epochs=2,
        batch_size=32,
        order=order,
        bf16=fast,
        channels_last=fast,  # type: ignore[arg-type]
    )
    result = search(_dataset(128, 0), _dataset(64, 1), config, settings, device="cuda")
    assert torch.isfinite(result.alphas_normal).all() and torch.isfinite(result.alphas_reduce).all()
    assert len(result.history) == 2


def test_eval_network_on_cuda_matches_cpu() -> None:
    model = EvalNetwork(
        DARTS_V2,
        NetworkConfig(init_channels=8, layers=5),
        generator=torch.Generator().manual_seed(0),
    ).eval()
    x = torch.rand(4, 3, 32, 32)
    expected = model(x)
    got = model.to("cuda")(x.to("cuda")).cpu()
    torch.testing.assert_close(got, expected, rtol=1e-3, atol=1e-3)
    fast = model.to(memory_format=torch.channels_last)
    with torch.autocast("cuda", dtype=torch.bfloat16):
        bf16 = fast(x.to("cuda").contiguous(memory_format=torch.channels_last)).float().cpu()
    assert torch.isfinite(bf16).all()
