"""Size and cost of a model: parameters and FLOPs per image."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch.utils.flop_counter import FlopCounterMode


@dataclass(frozen=True)
class ModelStats:
    params: int  # elements of every parameter (buffers such as BN statistics excluded)
    flops: int  # floating-point operations of one forward pass on one image (a MAC is 2)


def model_stats(model: torch.nn.Module, input_shape: tuple[int, int, int]) -> ModelStats:
    """Parameters and FLOPs per single image (C, H, W), counted in eval mode without grad."""
    params = sum(p.numel() for p in model.parameters())
    first = next(model.parameters(), None)
    device = first.device if first is not None else torch.device("cpu")
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad(), FlopCounterMode(display=False) as counter:
            model(torch.zeros(1, *input_shape, device=device))
    finally:
        model.train(was_training)
    return ModelStats(params=int(params), flops=int(counter.get_total_flops()))
