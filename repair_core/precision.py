"""Mixed precision switches: bf16 autocast and channels_last, off unless asked for."""

from __future__ import annotations

import contextlib

import torch
from torch import nn


def autocast(device: torch.device, bf16: bool) -> contextlib.AbstractContextManager[object]:
    """bf16 autocast on `device` when `bf16`, else a no-op context."""
    if not bf16:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=torch.bfloat16)


def to_channels_last(model: nn.Module) -> nn.Module:
    """Convert 4-d weights to channels_last in place (inputs should follow)."""
    return model.to(memory_format=torch.channels_last)
