from __future__ import annotations

import torch
from torch import nn

from repair_core.models.stats import ModelStats, model_stats


def test_parameters_and_flops_of_a_conv_and_linear_net_match_a_hand_count() -> None:
    net = nn.Sequential(
        nn.Conv2d(1, 2, 3, padding=1, bias=False),  # 2*1*3*3 = 18 weights
        nn.Flatten(),
        nn.Linear(2 * 4 * 6, 3),  # 48*3 + 3 = 147
    )
    stats = model_stats(net, (1, 4, 6))
    # A multiply-add is 2 FLOPs: conv 2 * (4*6 pixels * 2 out * 9 taps), linear 2 * 48 * 3.
    assert stats == ModelStats(params=18 + 147, flops=2 * 24 * 2 * 9 + 2 * 48 * 3)


def test_counting_leaves_the_training_mode_and_gradients_alone() -> None:
    net = nn.Sequential(nn.Flatten(), nn.Linear(4, 2), nn.Dropout(0.5)).train()
    model_stats(net, (1, 2, 2))
    assert net.training and all(p.grad is None for p in net.parameters())
    assert torch.is_grad_enabled()
