"""Resumable search state: everything needed to continue a search exactly at an epoch end.

Saved with `torch.save` as a dict of tensors and plain values (no objects), read back
with `weights_only=True`, written atomically (`train.state.write_state_file`, as the
retraining state is), so a crash mid-write leaves the previous state intact.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from repair_core.errors import RepairInputError
from repair_core.search.supernet import SuperNet
from repair_core.train.state import read_state_file, write_state_file

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
    extra: dict[str, Any] | None = None,
) -> None:
    """`epoch`: epochs completed; `history`: one dict of floats/strings per epoch;
    `extra`: tensors and plain values of optional strategy parts (drop path generator,
    arch snapshots, an early stop)."""
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
        "extra": extra or {},
    }
    write_state_file(path, state)


def load_search_state(
    path: Path,
    *,
    model: SuperNet,
    weight_optimizer: torch.optim.Optimizer,
    alpha_optimizer: torch.optim.Optimizer,
    generator: torch.Generator,
    fingerprint: str,
) -> tuple[int, list[dict[str, Any]], dict[str, Any]]:
    """Restore the saved state into the given objects; returns (epochs done, history, extra).

    States written before `extra` existed have none: `{}`."""
    state = read_state_file(
        path, file_format=STATE_FORMAT, version=STATE_VERSION, what="search state"
    )
    if state.get("fingerprint") != fingerprint:
        raise RepairInputError(
            f"search state {path} was written by a search with other data, config or settings"
        )
    model.load_state_dict(state["model"])
    weight_optimizer.load_state_dict(state["weight_optimizer"])
    alpha_optimizer.load_state_dict(state["alpha_optimizer"])
    generator.set_state(state["generator"])
    return int(state["epoch"]), list(state["history"]), dict(state.get("extra", {}))
