"""The evaluation network: reference parameter counts, heads, features, odd inputs."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from repair_core.errors import RepairInputError
from repair_core.search.genotype import DARTS_V1, DARTS_V2, PC_DARTS, Genotype
from repair_core.search.network import EvalNetwork, NetworkConfig

SMALL = NetworkConfig(init_channels=8, layers=5, num_classes=4, image_size=8, auxiliary=True)


def _reference_count(model: EvalNetwork, with_aux: bool) -> float:
    """Parameters in millions, counted as the reference `utils.count_parameters_in_MB`."""
    return float(
        sum(
            np.prod(v.size())
            for name, v in model.named_parameters()
            if with_aux or "auxiliary" not in name
        )
        / 1e6
    )


def test_darts_v2_cifar_network_has_the_published_parameter_count() -> None:
    model = EvalNetwork(
        DARTS_V2, NetworkConfig(init_channels=36, layers=20, num_classes=10, auxiliary=True)
    )
    assert _reference_count(model, with_aux=False) == pytest.approx(3.349, abs=0.005)
    assert _reference_count(model, with_aux=True) == pytest.approx(3.826, abs=0.005)


@pytest.mark.parametrize("genotype", [DARTS_V1, DARTS_V2, PC_DARTS])
def test_published_genotypes_build_and_classify(genotype: Genotype) -> None:
    model = EvalNetwork(genotype, SMALL).eval()
    logits = model(torch.rand(2, 3, 8, 8))
    assert logits.shape == (2, 4) and torch.isfinite(logits).all()


def test_auxiliary_logits_only_in_training_mode_with_a_head() -> None:
    torch.manual_seed(0)
    model = EvalNetwork(DARTS_V2, SMALL)
    x = torch.rand(3, 3, 8, 8)
    model.train()
    logits, aux = model.forward_with_aux(x)
    assert logits.shape == (3, 4) and aux is not None and aux.shape == (3, 4)
    (logits.sum() + aux.sum()).backward()
    assert all(p.grad is not None for p in model.parameters())
    model.eval()
    assert model.forward_with_aux(x)[1] is None
    plain = EvalNetwork(DARTS_V2, NetworkConfig(init_channels=8, layers=5, auxiliary=False)).train()
    assert plain.forward_with_aux(torch.rand(2, 3, 32, 32))[1] is None


def test_features_are_the_classifier_input() -> None:
    model = EvalNetwork(DARTS_V2, SMALL).eval()
    x = torch.rand(5, 3, 8, 8)
    features = model.features(x)
    assert features.shape == (5, model.feature_dim) == (5, 4 * 8 * 4)
    assert torch.equal(model.classifier(features), model(x))


@pytest.mark.parametrize(("size", "channels"), [(8, 1), (28, 1), (27, 3), (16, 3), (5, 3)])
def test_grayscale_and_non_32_sizes_work_with_the_auxiliary_head(size: int, channels: int) -> None:
    cfg = NetworkConfig(
        init_channels=4, layers=4, num_classes=3, in_channels=channels, image_size=size,
        auxiliary=True, mean=(0.5,), std=(0.5,),
    )  # fmt: skip
    model = EvalNetwork(DARTS_V2, cfg).train()
    logits, aux = model.forward_with_aux(torch.rand(2, channels, size, size))
    assert logits.shape == aux.shape == (2, 3)  # type: ignore[union-attr]


def test_auxiliary_head_size_does_not_depend_on_the_image_size() -> None:
    counts = {
        size: sum(
            p.numel()
            for p in EvalNetwork(
                DARTS_V2, NetworkConfig(init_channels=4, layers=4, image_size=size, auxiliary=True)
            ).auxiliary_head.parameters()
        )  # type: ignore[union-attr]
        for size in (8, 32, 64)
    }
    assert len(set(counts.values())) == 1


def test_drop_path_is_active_only_in_training_and_reproducible_with_a_generator() -> None:
    model = EvalNetwork(DARTS_V2, SMALL)
    model.drop_path_prob = 0.5
    x = torch.rand(4, 3, 8, 8)
    model.train()
    outs = []
    for _ in range(2):
        model.drop_path_generator = torch.Generator().manual_seed(7)
        outs.append(model(x))
    assert torch.equal(outs[0], outs[1])
    model.drop_path_generator = torch.Generator().manual_seed(8)
    assert not torch.equal(model(x), outs[0])
    model.eval()
    assert torch.equal(model(x), model(x))


def test_state_dict_names_follow_the_reference_implementation() -> None:
    keys = EvalNetwork(DARTS_V2, SMALL).state_dict().keys()
    for key in (
        "stem.0.weight",
        "stem.1.running_mean",
        "cells.0.preprocess0.op.1.weight",
        "cells.0._ops.0.op.1.weight",  # sep_conv_3x3's first depthwise conv
        "cells.2.preprocess0.conv_1.weight",  # after a reduction: FactorizedReduce
        "auxiliary_head.features.2.weight",
        "auxiliary_head.classifier.weight",
        "classifier.weight",
    ):
        assert key in keys, key
    assert not any("normalize" in k for k in keys)


def test_generator_seeds_the_initial_weights() -> None:
    a = EvalNetwork(DARTS_V2, SMALL, generator=torch.Generator().manual_seed(1))
    b = EvalNetwork(DARTS_V2, SMALL, generator=torch.Generator().manual_seed(1))
    for (name, x), y in zip(a.state_dict().items(), b.state_dict().values(), strict=True):
        assert torch.equal(x, y), name


def test_config_round_trips_through_json_and_rejects_bad_values() -> None:
    cfg = NetworkConfig(in_channels=1, mean=(0.1,), std=(0.3,), auxiliary=True, drop_path_prob=0.2)
    assert NetworkConfig.from_json(cfg.to_json()) == cfg
    for bad in (
        '{"layers": 0}',
        '{"in_channels": 1}',
        '{"drop_path_prob": 1.0}',
        '{"auxiliary": "yes"}',
        '{"layers": "20"}',
        '{"mean": 0.5}',
        '{"unknown": 1}',
        "[]",
        "{",
    ):
        with pytest.raises(RepairInputError):
            NetworkConfig.from_json(bad)


AMOEBANET_TEXT = """AmoebaNet = Genotype(
  normal = [('avg_pool_3x3', 0), ('max_pool_3x3', 1), ('sep_conv_3x3', 0), ('sep_conv_5x5', 2),
    ('sep_conv_3x3', 0), ('avg_pool_3x3', 3), ('sep_conv_3x3', 1), ('skip_connect', 1),
    ('skip_connect', 0), ('avg_pool_3x3', 1)],
  normal_concat = [4, 5, 6],
  reduce = [('avg_pool_3x3', 0), ('sep_conv_3x3', 1), ('max_pool_3x3', 0), ('sep_conv_7x7', 2),
    ('sep_conv_7x7', 0), ('avg_pool_3x3', 1), ('max_pool_3x3', 0), ('max_pool_3x3', 1),
    ('conv_7x1_1x7', 0), ('sep_conv_3x3', 5)],
  reduce_concat = [3, 4, 6]
)"""


def test_five_node_genotypes_with_extra_published_ops_build() -> None:
    genotype = Genotype.from_darts_notation(AMOEBANET_TEXT)
    assert genotype.steps == 5
    model = EvalNetwork(genotype, SMALL).train()
    logits, aux = model.forward_with_aux(torch.rand(2, 3, 8, 8))
    assert logits.shape == (2, 4) and aux is not None
