"""The next K-center picks after some picks were given up (an owner left them unlabeled,
or their label showed the deployed model right after all).

The greedy of Eq. (6) goes on from where it stands: D_train and the picks that stay are
the centers, the given-up rows can never be picked again, and the farthest remaining
failure is picked next, `count` times. With nothing given up this is what
`k_center_greedy` would have picked after the same picks.
"""

from __future__ import annotations

import torch

from repair_core.selection.kcenter import k_center_greedy


def next_k_center_picks(
    failure_features: torch.Tensor,
    train_features: torch.Tensor,
    kept: torch.Tensor,
    given_up: torch.Tensor,
    count: int,
) -> torch.Tensor:
    """Up to `count` more rows of `failure_features` (int64, pick order, on the CPU), none
    of them in `kept` or `given_up` (int64 row indices); empty when none is left."""
    taken = torch.zeros(failure_features.shape[0], dtype=torch.bool)
    taken[kept.cpu()] = True
    taken[given_up.cpu()] = True
    candidates = (~taken).nonzero().squeeze(1)
    if count < 1 or len(candidates) == 0:
        return torch.empty(0, dtype=torch.int64)
    centers = torch.cat([train_features, failure_features[kept.to(failure_features.device)]])
    result = k_center_greedy(
        failure_features[candidates.to(failure_features.device)],
        centers,
        min(count, len(candidates)),
    )
    return candidates[result.indices]
