"""The search supernet: size, parameters, seeding, shapes."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from repair_core.errors import RepairInputError
from repair_core.search.genotype import Genotype
from repair_core.search.supernet import SearchConfig, SuperNet

TINY = SearchConfig(init_channels=4, layers=3, num_classes=3)


def test_paper_search_supernet_has_the_reference_parameter_count() -> None:
    model = SuperNet(SearchConfig())  # 8 cells, 16 channels, 10 classes
    # The reference search log prints "param size = 1.930618MB" (alphas excluded).
    assert sum(p.numel() for p in model.weight_parameters()) == 1_930_618
    assert model.alphas_normal.shape == model.alphas_reduce.shape == (14, 8)


def test_alphas_are_registered_parameters_that_save_and_move_with_the_model() -> None:
    model = SuperNet(TINY)
    assert all(isinstance(a, nn.Parameter) for a in model.arch_parameters())
    state = model.state_dict()
    assert torch.equal(state["alphas_normal"], model.alphas_normal)
    names = {id(p) for p in model.weight_parameters()}
    assert not any(id(a) in names for a in model.arch_parameters())
    assert len(names) + 2 == len(list(model.parameters()))
    model.to(torch.float64)
    assert model.alphas_reduce.dtype == torch.float64


def test_alphas_start_small_and_random_and_the_generator_fixes_everything() -> None:
    a = SuperNet(TINY, generator=torch.Generator().manual_seed(3))
    b = SuperNet(TINY, generator=torch.Generator().manual_seed(3))
    c = SuperNet(TINY, generator=torch.Generator().manual_seed(4))
    for (name, pa), pb in zip(a.state_dict().items(), b.state_dict().values(), strict=True):
        assert torch.equal(pa, pb), name
    assert not torch.equal(a.alphas_normal, c.alphas_normal)
    assert not torch.equal(a.stem[0].weight, c.stem[0].weight)
    assert 0 < a.alphas_normal.abs().max() < 1e-2


def test_forward_features_and_genotype_shapes() -> None:
    model = SuperNet(TINY).eval()
    x = torch.rand(2, 3, 8, 8)
    features = model.features(x)
    assert features.shape == (2, 4 * 4 * 4)  # multiplier * channels after two doublings
    assert torch.equal(model(x), model.classifier(features))
    assert isinstance(model.genotype(), Genotype)


def test_grayscale_and_two_node_cells_work() -> None:
    cfg = SearchConfig(
        init_channels=4, layers=2, steps=2, multiplier=2, in_channels=1, mean=(0.5,), std=(0.25,)
    )
    model = SuperNet(cfg)
    assert model(torch.rand(2, 1, 7, 7)).shape == (2, 10)
    assert len(model.genotype().normal) == 4


def test_new_returns_an_independent_copy() -> None:
    model = SuperNet(TINY)
    copy = model.new()
    assert torch.equal(copy.alphas_normal, model.alphas_normal)
    with torch.no_grad():
        copy.alphas_normal.add_(1.0)
        copy.stem[0].weight.zero_()
    assert not torch.equal(copy.alphas_normal, model.alphas_normal)
    assert model.stem[0].weight.abs().sum() > 0


@pytest.mark.parametrize(
    "changes",
    [
        {"layers": 0},
        {"multiplier": 5},
        {"init_channels": True},
        {"in_channels": 1},  # three-channel default normalisation
        {"std": (0.2, 0.0, 0.2)},
    ],
)
def test_invalid_configs_are_rejected(changes: dict[str, object]) -> None:
    with pytest.raises(RepairInputError):
        SearchConfig(**changes)  # type: ignore[arg-type]
