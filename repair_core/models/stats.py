"""Size and cost of a model: parameters and FLOPs per image."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch.utils.flop_counter import FlopCounterMode


@dataclass(frozen=True)
class ModelStats:
    params: int  # trainable and frozen parameters (buffers such as BN statistics excluded)
    flops: int  # floating-point operations of one forward pass on one image


def model_stats(model: torch.nn.Module, input_shape: tuple[int, int, int]) -> ModelStats:
    """Parameters and FLOPs per single image of shape `input_shape` (C, H, W).

    FLOPs are counted by `FlopCounterMode` (a multiply-add counts 2) on a batch of 1, in
    eval mode under no_grad, on the model's device; the model's train/eval mode is restored.
    """
    params = sum(p.numel() for p in model.parameters())
    device = next((p.device for p in model.parameters()), torch.device("cpu"))
    was_training = model.training
    model.eval()
    try:
        counter = FlopCounterMode(display=False)
        with torch.no_grad(), counter:
            model(torch.zeros(1, *input_shape, device=device))
    finally:
        model.train(was_training)
    return ModelStats(params=int(params), flops=int(counter.get_total_flops()))
