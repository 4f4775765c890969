"""The fast path: compiled steps compute what eager steps do, and every switch that cannot
work here falls back to eager with its reason recorded."""

from __future__ import annotations

import functools

import pytest
import torch
from torch import nn

from repair_core.datasets.types import ImageDataset
from repair_core.profiles import build_plan
from repair_core.search.genotype import DARTS_V2
from repair_core.search.network import EvalNetwork, NetworkConfig
from repair_core.search.searcher import SearchSettings, search
from repair_core.search.supernet import SearchConfig
from repair_core.train import TrainSettings, train_model
from repair_core.train.fastpath import CompiledCall, CudaGraphStep, compile_forward, make_sgd

CLASSES = ("a", "b", "c")


def _dataset(n: int, seed: int) -> ImageDataset:
    """Noise plus a class-dependent brightness band: learnable in a few steps."""
    gen = torch.Generator().manual_seed(seed)
    labels = torch.randint(0, 3, (n,), generator=gen)
    images = torch.randint(0, 80, (n, 3, 8, 8), generator=gen, dtype=torch.uint8)
    images[:, :, :4] += (labels * 80).to(torch.uint8)[:, None, None, None]
    return ImageDataset(images, labels, CLASSES)


def test_cuda_graph_step_runs_eager_on_cpu_and_records_why() -> None:
    calls: list[torch.Tensor] = []

    def step(x: torch.Tensor) -> torch.Tensor:
        calls.append(x)
        return x * 2

    graphed = CudaGraphStep(step, enabled=True, device=torch.device("cpu"))
    assert graphed.mode == "eager"
    assert graphed.fallback_reason is not None and "CUDA device" in graphed.fallback_reason
    x = torch.arange(3.0)
    assert torch.equal(graphed(x), x * 2)
    assert calls == [x]  # eager: called once per call, no warm-up replays


def test_cuda_graph_step_not_asked_for_has_no_fallback_reason() -> None:
    graphed = CudaGraphStep(lambda x: x + 1, enabled=False, device=torch.device("cpu"))
    assert (graphed.mode, graphed.fallback_reason) == ("eager", None)


def test_compiled_call_that_cannot_compile_runs_eager_and_records_why() -> None:
    def double(x: torch.Tensor) -> torch.Tensor:
        return x * 2

    # An unknown inductor mode is refused by torch.compile (when wrapping or at first call).
    call = CompiledCall(double, enabled=True, mode="no-such-mode", what="test step")
    x = torch.arange(4.0)
    assert torch.equal(call(x), x * 2)
    assert call.mode == "eager"
    assert call.fallback_reason is not None and "no-such-mode" in call.fallback_reason
    assert call.report("loss")["loss"] == "eager"
    assert "loss_fallback" in call.report("loss")


def test_compiled_call_disabled_is_plain_eager() -> None:
    call = CompiledCall(torch.neg, enabled=False)
    assert torch.equal(call(torch.ones(2)), -torch.ones(2))
    assert call.report() == {"forward": "eager"}


def test_fused_sgd_is_asked_for_only_where_the_device_has_it() -> None:
    params = [nn.Parameter(torch.ones(2))]
    opt = make_sgd(
        params, lr=0.1, momentum=0.9, weight_decay=0.0, fused=True, device=torch.device("cpu")
    )
    assert not opt.defaults.get("fused")


def test_profiles_carry_the_speed_switches_to_the_settings() -> None:
    plan = build_plan(
        "smoke",
        {"train.compile": "true", "train.cuda_graph": True, "search.compile": "1",
         "train.fused_optimizer": True, "search.fused_optimizer": True},
        search="darts-1st", seed=0,
    )  # fmt: skip
    assert (plan.train.compile, plan.train.cuda_graph, plan.train.fused_optimizer) == (True,) * 3
    assert (plan.search.compile, plan.search.fused_optimizer) == (True, True)


def test_retraining_reports_how_its_steps_ran() -> None:
    settings = TrainSettings(epochs=1, batch_size=32, report_every_steps=0, cuda_graph=True)
    model = EvalNetwork(DARTS_V2, NetworkConfig(init_channels=4, layers=3, num_classes=3,
                                                image_size=8))  # fmt: skip
    result = train_model(model, _dataset(64, 0), settings, device="cpu")
    assert result.fast_path["loss"] == "eager"
    assert result.fast_path["step"] == "eager"
    assert "CUDA device" in result.fast_path["step_fallback"]


def _tiniest_net() -> nn.Module:
    # Inductor's cost on a CPU is its C++ kernels, a few per layer, each a compiler run: a
    # DARTS cell network ran past 10 minutes on the loaded 2-core machine, a conv-BN net
    # a minute. One linear layer still compiles the loss, its backward and the wiring
    # through the training loop, in seconds.
    torch.manual_seed(0)
    return nn.Sequential(nn.Flatten(), nn.Linear(3 * 8 * 8, 3))


@pytest.fixture
def aot_eager(monkeypatch: pytest.MonkeyPatch) -> None:
    """torch.compile with its "aot_eager" backend: Dynamo captures the graph and AOTAutograd
    traces its backward, as with inductor, but the graph runs on eager kernels, so no C++
    is compiled. For tests of how a compiled call is wired in; the inductor kernels
    themselves are proved once, in the retraining test."""
    monkeypatch.setattr(torch, "compile", functools.partial(torch.compile, backend="aot_eager"))


@pytest.mark.slow  # torch.compile (inductor, C++ kernels): seconds, more on a loaded CPU
def test_compiled_retraining_gives_the_eager_losses_for_the_same_seed() -> None:
    train = _dataset(96, 0)
    histories, paths = [], []
    for compiled in (False, True):
        settings = TrainSettings(
            epochs=2, batch_size=32, report_every_steps=0, drop_path_prob=0.0,
            auxiliary_weight=0.0, compile=compiled,
        )  # fmt: skip
        result = train_model(_tiniest_net(), train, settings, device="cpu")
        histories.append([h["loss"] for h in result.history])
        paths.append(result.fast_path)
    assert paths[1]["loss"] == "compile", paths[1]
    assert histories[1] == pytest.approx(histories[0], rel=1e-3, abs=1e-4)


@pytest.mark.slow  # Dynamo + AOTAutograd over a one-cell, one-node supernet, both ways
def test_compiled_first_order_search_gives_the_eager_losses_for_the_same_seed(
    aot_eager: None,
) -> None:
    train, val = _dataset(96, 0), _dataset(96, 1)
    config = SearchConfig(init_channels=4, layers=1, steps=1, multiplier=1, num_classes=3)
    runs = []
    for compiled in (False, True):
        settings = SearchSettings(
            epochs=1, batch_size=32, steps_per_epoch=3, order="first", report_every=3,
            augment=False, compile=compiled,
        )  # fmt: skip
        runs.append(search(train, val, config, settings, device="cpu"))
    eager, fast = runs
    assert fast.fast_path["forward"] == "compile", fast.fast_path
    assert fast.history[0].loss == pytest.approx(eager.history[0].loss, rel=1e-3)
    assert fast.history[0].val_loss == pytest.approx(eager.history[0].val_loss, rel=1e-3)
    torch.testing.assert_close(fast.alphas_normal, eager.alphas_normal, rtol=1e-3, atol=1e-5)


def test_compile_forward_disabled_leaves_the_module_alone() -> None:
    model = nn.Linear(2, 2)
    call = compile_forward(model, enabled=False, what="test")
    assert "forward" not in vars(model)
    assert call.mode == "eager"


def test_undoing_capture_warm_up_puts_back_weights_and_restarts_momentum() -> None:
    # The CUDA-graph warm-up's real steps are undone this way; checked here on a CPU step.
    from repair_core.train.fastpath import _restore, _snapshot

    model = nn.Sequential(nn.Linear(3, 2), nn.BatchNorm1d(2))
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    saved = _snapshot([model, opt])
    # Weighted per sample: a plain sum through BatchNorm has a zero gradient upstream.
    weights = torch.arange(8.0).reshape(4, 2)
    (model(torch.randn(4, 3)) * weights).sum().backward()
    opt.step()
    assert not torch.equal(model[0].weight, before["0.weight"])
    _restore([model, opt], saved)
    for name, value in model.state_dict().items():
        assert torch.equal(value, before[name]), name
    buffers = [s["momentum_buffer"] for s in opt.state.values()]
    assert buffers and all(not b.any() for b in buffers)
