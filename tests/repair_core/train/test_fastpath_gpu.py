"""The CUDA fast path (deselected where no GPU exists): a whole-step CUDA graph computes
the eager step's losses, and bf16 stays within tolerance of fp32."""

from __future__ import annotations

import pytest
import torch
from torch.nn import functional as F

from repair_core.datasets.types import ImageDataset
from repair_core.search.genotype import DARTS_V2
from repair_core.search.network import EvalNetwork, NetworkConfig
from repair_core.train import TrainSettings, train_model
from repair_core.train.fastpath import CudaGraphStep, make_sgd

pytestmark = pytest.mark.gpu
CUDA = torch.device("cuda")


def _losses(graph: bool, steps: int = 8) -> tuple[list[float], str]:
    torch.manual_seed(0)
    config = NetworkConfig(init_channels=8, layers=3, num_classes=3, image_size=16)
    model = EvalNetwork(DARTS_V2, config, generator=torch.Generator().manual_seed(0)).to(CUDA)
    model.train()
    opt = make_sgd(model.parameters(), lr=0.05, momentum=0.9, weight_decay=3e-4,
                   fused=graph, device=CUDA)  # fmt: skip
    gen = torch.Generator().manual_seed(1)
    batches = [
        (
            torch.rand(16, 3, 16, 16, generator=gen).to(CUDA),
            torch.randint(0, 3, (16,), generator=gen).to(CUDA),
        )
        for _ in range(steps)
    ]

    def step(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        opt.zero_grad(set_to_none=True)
        loss = F.cross_entropy(model(x), y)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 5.0)
        opt.step()
        return loss.detach()

    # The capture's warm-up steps are undone: each call is one step, as in eager.
    graphed = CudaGraphStep(step, enabled=graph, device=CUDA, warmup_steps=2, owners=[model, opt])
    losses = [float(graphed(x, y)) for x, y in batches]
    return losses, graphed.mode


def test_a_captured_whole_step_gives_the_eager_losses() -> None:
    eager, eager_mode = _losses(graph=False)
    graphed, mode = _losses(graph=True)
    assert (eager_mode, mode) == ("eager", "cuda-graph")
    assert graphed == pytest.approx(eager, rel=2e-3, abs=2e-4)


def _stripes(n: int, seed: int) -> ImageDataset:
    gen = torch.Generator().manual_seed(seed)
    labels = torch.randint(0, 3, (n,), generator=gen)
    images = torch.randint(0, 80, (n, 3, 16, 16), generator=gen, dtype=torch.uint8)
    images[:, :, :8] += (labels * 80).to(torch.uint8)[:, None, None, None]
    return ImageDataset(images, labels, ("a", "b", "c"))


@pytest.mark.parametrize("switches", [{"cuda_graph": True, "fused_optimizer": True},
                                      {"bf16": True, "channels_last": True}])  # fmt: skip
def test_fast_retraining_on_cuda_lands_where_fp32_eager_does(switches: dict[str, bool]) -> None:
    train, held_out = _stripes(512, 0), _stripes(256, 1)
    results = []
    for extra in ({}, switches):
        settings = TrainSettings(epochs=3, batch_size=64, report_every_steps=0,
                                 drop_path_prob=0.0, **extra)  # fmt: skip
        config = NetworkConfig(init_channels=8, layers=3, num_classes=3, image_size=16)
        model = EvalNetwork(DARTS_V2, config, generator=torch.Generator().manual_seed(0))
        results.append(train_model(model, train, settings, device="cuda", eval_set=held_out))
    eager, fast = results
    if switches.get("cuda_graph"):
        assert fast.fast_path["step"] == "cuda-graph", fast.fast_path
    assert fast.history[-1]["eval_acc"] == pytest.approx(eager.history[-1]["eval_acc"], abs=0.05)
    assert fast.history[-1]["loss"] == pytest.approx(eager.history[-1]["loss"], rel=0.1, abs=0.02)
