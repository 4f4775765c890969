"""Device selection: callers pass a name, `repair_core` never guesses silently."""

from __future__ import annotations

import torch

from repair_core.errors import RepairInputError


def resolve_device(name: str = "auto") -> torch.device:
    """Map "auto" | "cpu" | "cuda" | "cuda:N" to a device that exists here."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError as exc:
        raise RepairInputError(f"unknown device {name!r}: use auto, cpu, cuda or cuda:N") from exc
    if device.type == "cuda" and not torch.cuda.is_available():
        raise RepairInputError(f"device {name!r} requested but no CUDA device is available")
    return device
