"""Split a selected core set into the halves C_t (weight training) and C_v (alpha updates)."""

from __future__ import annotations

from typing import NamedTuple

import torch

from repair_core.errors import RepairInputError
from repair_core.rng import seeded_generator


class SplitHalves(NamedTuple):
    train: torch.Tensor  # C_t: the first half's entries of `indices`, in their original order
    val: torch.Tensor  # C_v: the rest, in their original order


def split_halves(indices: torch.Tensor, labels: torch.Tensor | None, *, seed: int) -> SplitHalves:
    """Seeded split of `indices` into two halves, stratified by label when labels are given.

    labels, when given, is aligned with indices: labels[i] is the label of indices[i]
    (pass `all_labels[indices]`). Every label group is shuffled and halved; the odd members
    left over are shuffled together and shared so that train gets ceil(n/2) entries and val
    floor(n/2). Each group's two halves therefore differ by at most one. Both halves keep
    the order the entries had in `indices` (pick order for k-center).
    """
    if not isinstance(indices, torch.Tensor) or indices.dim() != 1:
        raise RepairInputError("indices must be a 1-D tensor")
    n = indices.shape[0]
    generator = seeded_generator(seed)
    in_train = torch.zeros(n, dtype=torch.bool)
    if labels is None:
        in_train[torch.randperm(n, generator=generator)[: (n + 1) // 2]] = True
    else:
        _check_labels(labels, n)
        leftovers: list[torch.Tensor] = []
        for value in torch.unique(labels.cpu()):
            members = (labels.cpu() == value).nonzero().squeeze(1)
            members = members[torch.randperm(members.shape[0], generator=generator)]
            half = members.shape[0] // 2
            in_train[members[:half]] = True
            leftovers.append(members[2 * half :])
        spare = torch.cat(leftovers) if leftovers else torch.empty(0, dtype=torch.long)
        spare = spare[torch.randperm(spare.shape[0], generator=generator)]
        in_train[spare[: (n + 1) // 2 - int(in_train.sum())]] = True
    mask = in_train.to(indices.device)
    return SplitHalves(train=indices[mask], val=indices[~mask])


def _check_labels(labels: torch.Tensor, n: int) -> None:
    if not isinstance(labels, torch.Tensor) or labels.dim() != 1 or labels.shape[0] != n:
        shape = tuple(labels.shape) if isinstance(labels, torch.Tensor) else type(labels).__name__
        raise RepairInputError(
            f"labels must be a 1-D tensor aligned with indices ({n} entries), got {shape}; "
            "pass all_labels[indices]"
        )
    if labels.is_floating_point() or labels.is_complex() or labels.dtype == torch.bool:
        raise RepairInputError(f"labels must be an integer tensor, got {labels.dtype}")
