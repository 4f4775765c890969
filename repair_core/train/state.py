"""The retraining loop's resumable state: what goes in the file, how it is written and read.

A state file is a plain container (dicts, lists, numbers, strings, tensors) so that it loads
with `torch.load(weights_only=True)`: nothing in it can run code. It holds everything that
decides the rest of the run (weights and buffers, optimizer state, epoch, history, every
RNG state the loop draws from; the learning rate follows from the epoch) plus what it was
made from (settings and a fingerprint of the training data), so a resume with different
inputs is refused instead of silently training something else.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn

from repair_core.atomic import atomic_open
from repair_core.errors import RepairInputError

# The file's format tag; kept as first written so state files from before the move to
# `repair_core.train.state` still resume.
STATE_FORMAT = "repair_core.train_state"
STATE_VERSION = 1

# Settings that may change between an interrupted run and its resume without changing the
# numbers it computes.
# Speed switches change how a step runs, not what it computes: a run may resume with them
# flipped, and states written before they existed still resume.
RESUME_MUTABLE_SETTINGS = frozenset(
    {"report_every_steps", "compile", "cuda_graph", "fused_optimizer"}
)

# Distance between the seeds derived for the separate RNG streams of one run.
_SEED_STRIDE = 1_000_003


def write_state_file(path: Path, state: Mapping[str, Any]) -> None:
    """`torch.save` a plain container atomically: a crash mid-write leaves the previous file.

    Shared by the retraining loop and the search, whose state files differ only in content.
    """
    with atomic_open(path) as handle:
        torch.save(dict(state), handle)


def read_state_file(path: Path, *, file_format: str, version: int, what: str) -> dict[str, Any]:
    """Read a state file safely (`weights_only=True`) and check its format tag and version.

    `what` names the kind of file in error messages, e.g. "retraining state".
    """
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises several types for unreadable or unsafe files
        raise RepairInputError(f"{what} {path} cannot be read safely: {exc}") from None
    if not isinstance(state, dict) or state.get("format") != file_format:
        raise RepairInputError(f"{path} is not a {what} file")
    if state.get("version") != version:
        raise RepairInputError(
            f"{what} {path} has version {state.get('version')}, this code reads version {version}"
        )
    return state


def save_train_state(path: Path, state: dict[str, Any]) -> None:
    """Write the retraining loop's `state` to `path` atomically."""
    write_state_file(path, {"format": STATE_FORMAT, "version": STATE_VERSION, **state})


def load_train_state(path: Path) -> dict[str, Any]:
    """Read a state file written by `save_train_state`."""
    return read_state_file(
        path, file_format=STATE_FORMAT, version=STATE_VERSION, what="retraining state"
    )


def resume_train_state(
    path: Path,
    *,
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    generators: Mapping[str, torch.Generator],
    settings: dict[str, Any],
    fingerprint: dict[str, Any],
    device: torch.device,
) -> tuple[int, list[dict[str, float]]]:
    """Load the state file at `path` into the model, optimizer and RNG streams of a run with
    these `settings` on data with this `fingerprint`; returns (epochs done, history)."""
    state = load_train_state(path)
    check_resumable(state, settings, fingerprint, path)
    try:
        model.load_state_dict(state["model"])
    except RuntimeError as exc:
        raise RepairInputError(f"retraining state {path} does not fit this model: {exc}") from exc
    optimizer.load_state_dict(state["optimizer"])
    epoch = int(state["epoch"])
    if state["device_type"] == device.type:
        try:
            restore_rng(state["rng"], generators, device)
        except (KeyError, RuntimeError) as exc:
            raise RepairInputError(
                f"retraining state {path} has no usable RNG state for this model: {exc}"
            ) from exc
    else:
        # RNG states do not carry across device types (CPU and CUDA generators differ):
        # continue with a fresh seed per epoch, correct but not bit-identical.
        seed_rng(settings["seed"] + epoch, generators, device)
    return epoch, [dict(record) for record in state["history"]]


def check_resumable(
    state: dict[str, Any], settings: dict[str, Any], fingerprint: dict[str, Any], path: Path
) -> None:
    """Refuse to resume from a state made with other settings or other training data."""
    saved = state["settings"]
    changed = sorted(
        name
        for name in set(saved) | set(settings)
        if name not in RESUME_MUTABLE_SETTINGS and saved.get(name) != settings.get(name)
    )
    if changed:
        details = ", ".join(f"{n}: {saved.get(n)!r} -> {settings.get(n)!r}" for n in changed)
        raise RepairInputError(
            f"retraining state {path} was made with other settings ({details}); "
            "resume with the same settings or start from a new state path"
        )
    if state["data"] != fingerprint:
        raise RepairInputError(
            f"retraining state {path} was made from other training data "
            f"({state['data']['num_images']} images, now {fingerprint['num_images']})"
        )


def _cuda_index(device: torch.device) -> int:
    return device.index if device.index is not None else torch.cuda.current_device()


def seed_rng(seed: int, generators: Mapping[str, torch.Generator], device: torch.device) -> None:
    """Seed the loop's own generators and the global RNG (dropout, drop path without one).

    Each stream gets a different seed derived from `seed`, so no two are the same sequence.
    Callers run this inside `torch.random.fork_rng`, so the caller's global RNG is restored.
    """
    for position, name in enumerate(sorted(generators), start=1):
        generators[name].manual_seed(seed + position * _SEED_STRIDE)
    torch.default_generator.manual_seed(seed)
    if device.type == "cuda":
        with torch.cuda.device(_cuda_index(device)):
            torch.cuda.manual_seed(seed)


def capture_rng(
    generators: Mapping[str, torch.Generator], device: torch.device
) -> dict[str, torch.Tensor]:
    states = {f"generator/{name}": g.get_state() for name, g in generators.items()}
    states["torch_cpu"] = torch.get_rng_state()
    if device.type == "cuda":
        states["torch_cuda"] = torch.cuda.get_rng_state(_cuda_index(device))
    return states


def restore_rng(
    states: dict[str, torch.Tensor],
    generators: Mapping[str, torch.Generator],
    device: torch.device,
) -> None:
    for name, generator in generators.items():
        generator.set_state(states[f"generator/{name}"])
    torch.set_rng_state(states["torch_cpu"])
    if device.type == "cuda":
        torch.cuda.set_rng_state(states["torch_cuda"], _cuda_index(device))
