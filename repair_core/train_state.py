"""The retraining loop's resumable state: what goes in the file, how it is written and read.

A state file is a plain container (dicts, lists, numbers, strings, tensors) so that it loads
with `torch.load(weights_only=True)`: nothing in it can run code. It holds everything that
decides the rest of the run (weights and buffers, optimizer and scheduler state, epoch,
history, every RNG state the loop draws from) plus what it was made from (settings and a
fingerprint of the training data), so a resume with different inputs is refused instead of
silently training something else.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from repair_core.datasets.types import ImageDataset
from repair_core.errors import RepairInputError

STATE_FORMAT = "repair_core.train_state"
STATE_VERSION = 1

# Settings that may change between an interrupted run and its resume without changing the
# numbers it computes.
RESUME_MUTABLE_SETTINGS = frozenset({"report_every_steps"})

# Distance between the seeds derived for the separate RNG streams of one run.
_SEED_STRIDE = 1_000_003


def data_fingerprint(dataset: ImageDataset) -> dict[str, Any]:
    """Cheap identity of a dataset: catches a wrong split on resume, not a forged one.

    The sums are a device reduction and one host sync, run once per `train_model` call.
    """
    return {
        "num_images": len(dataset),
        "image_shape": list(dataset.image_shape),
        "class_names": list(dataset.class_names),
        "pixel_sum": int(dataset.images.sum(dtype=torch.int64)),
        "label_sum": int(dataset.labels.sum()),
    }


def save_train_state(path: Path, state: dict[str, Any]) -> None:
    """Write `state` to `path` atomically: a reader sees the old file or the new, never half.

    Temp file in the same folder, fsync, then `os.replace`, so a crash mid-write leaves the
    previous epoch's state intact.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with tmp.open("wb") as handle:
            torch.save({"format": STATE_FORMAT, "version": STATE_VERSION, **state}, handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    # Make the rename itself durable; not every platform lets a folder be opened for this.
    with contextlib.suppress(OSError):
        dir_fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)


def load_train_state(path: Path) -> dict[str, Any]:
    """Read a state file written by `save_train_state`, safely (`weights_only=True`)."""
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises several types for unreadable or unsafe files
        raise RepairInputError(f"retraining state {path} cannot be read safely: {exc}") from exc
    if not isinstance(state, dict) or state.get("format") != STATE_FORMAT:
        raise RepairInputError(f"{path} is not a retraining state file")
    if state.get("version") != STATE_VERSION:
        raise RepairInputError(
            f"retraining state {path} has version {state.get('version')}, "
            f"this code reads version {STATE_VERSION}"
        )
    return state


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
