"""A tiny DARTS evaluation network with non-trivial normalisation, for the export tests."""

from __future__ import annotations

import pytest
import torch

from repair_core.rng import seeded_generator
from repair_core.search.genotype import DARTS_V2
from repair_core.search.network import EvalNetwork, NetworkConfig

SHAPE = (3, 12, 12)


@pytest.fixture(scope="module")
def tiny_net() -> EvalNetwork:
    config = NetworkConfig(
        init_channels=4, layers=3, num_classes=4, image_size=12,
        mean=(0.2, 0.5, 0.7), std=(0.1, 0.3, 0.25),
    )  # fmt: skip
    net = EvalNetwork(DARTS_V2, config, generator=seeded_generator(0))
    # Non-zero BN statistics, so eval-mode BN is really in the graph.
    with torch.no_grad():
        for module in net.modules():
            if isinstance(module, torch.nn.BatchNorm2d):
                module.running_mean.uniform_(-0.5, 0.5, generator=seeded_generator(1))
                module.running_var.uniform_(0.5, 2.0, generator=seeded_generator(2))
    return net.eval()
