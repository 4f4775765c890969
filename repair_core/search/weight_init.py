"""Seeded weight initialisation: PyTorch's default init, drawn from an explicit generator.

Module constructors draw from torch's global RNG; re-initialising with a generator makes
a model's starting weights a function of the caller's seed alone.
"""

from __future__ import annotations

import math

import torch
from torch import nn


@torch.no_grad()
def init_weights_(module: nn.Module, generator: torch.Generator) -> None:
    """Re-draw every conv and linear layer as `reset_parameters` would; BN keeps (1, 0)."""
    for m in module.modules():
        if isinstance(m, nn.Conv2d | nn.Linear):
            nn.init.kaiming_uniform_(m.weight, a=math.sqrt(5), generator=generator)
            if m.bias is not None:
                fan_in, _ = nn.init._calculate_fan_in_and_fan_out(m.weight)
                bound = 1 / math.sqrt(fan_in) if fan_in > 0 else 0.0
                nn.init.uniform_(m.bias, -bound, bound, generator=generator)
