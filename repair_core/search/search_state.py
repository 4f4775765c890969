"""Resumable search state: everything needed to continue a search exactly at an epoch end.

Saved with `torch.save` as a dict of tensors and plain values (no objects), read back
with `weights_only=True`, written to a temporary file and renamed, so a crash mid-write
leaves the previous state intact.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

import torch

from repair_core.errors import RepairInputError
from repair_core.search.supernet import SuperNet

STATE_FORMAT = "repair-core-search-state"
STATE_VERSION = 1


def save_search_state(
    path: Path,
    *,
    model: SuperNet,
    weight_optimizer: torch.optim.Optimizer,
    alpha_optimizer: torch.optim.Optimizer,
    generator: torch.Generator,
    epoch: int,
    history: list[dict[str, Any]],
    fingerprint: str,
) -> None:
    """`epoch`: epochs completed; `history`: one dict of floats/strings per epoch."""
    state = {
        "format": STATE_FORMAT,
        "version": STATE_VERSION,
        "fingerprint": fingerprint,
        "epoch": epoch,
        "model": model.state_dict(),
        "weight_optimizer": weight_optimizer.state_dict(),
        "alpha_optimizer": alpha_optimizer.state_dict(),
        "generator": generator.get_state(),
        "history": history,
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            torch.save(state, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def load_search_state(
    path: Path,
    *,
    model: SuperNet,
    weight_optimizer: torch.optim.Optimizer,
    alpha_optimizer: torch.optim.Optimizer,
    generator: torch.Generator,
    fingerprint: str,
) -> tuple[int, list[dict[str, Any]]]:
    """Restore the saved state into the given objects; returns (epochs done, history)."""
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # any unreadable or unsafe file is unusable input
        raise RepairInputError(f"search state {path} cannot be read: {exc}") from None
    if not isinstance(state, dict) or state.get("format") != STATE_FORMAT:
        raise RepairInputError(f"{path} is not a search state file")
    if state.get("version") != STATE_VERSION:
        raise RepairInputError(
            f"search state {path} has version {state.get('version')}; expected {STATE_VERSION}"
        )
    if state.get("fingerprint") != fingerprint:
        raise RepairInputError(
            f"search state {path} was written by a search with other data, config or settings"
        )
    model.load_state_dict(state["model"])
    weight_optimizer.load_state_dict(state["weight_optimizer"])
    alpha_optimizer.load_state_dict(state["alpha_optimizer"])
    generator.set_state(state["generator"])
    return int(state["epoch"]), list(state["history"])
