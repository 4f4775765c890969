"""next_k_center_picks: the greedy goes on past the picks that stay, never taking a
given-up row."""

from __future__ import annotations

import torch

from repair_core.selection import k_center_greedy
from repair_core.selection.extend import next_k_center_picks


def _features(seed: int, n: int) -> torch.Tensor:
    return torch.randn(n, 6, generator=torch.Generator().manual_seed(seed))


def test_with_nothing_given_up_the_next_picks_are_the_greedys_own_next_picks() -> None:
    failures, train = _features(0, 60), _features(1, 40)
    whole = k_center_greedy(failures, train, 9).indices
    more = next_k_center_picks(failures, train, whole[:5], torch.empty(0, dtype=torch.int64), 4)
    assert more.tolist() == whole[5:].tolist()


def test_given_up_and_kept_rows_are_never_picked_again_and_the_count_is_capped() -> None:
    failures, train = _features(2, 12), _features(3, 20)
    first = k_center_greedy(failures, train, 6).indices
    kept, given_up = first[:4], first[4:]
    more = next_k_center_picks(failures, train, kept, given_up, 2)
    assert len(more) == 2 and not set(more.tolist()) & set(first.tolist())
    rest = next_k_center_picks(failures, train, kept, given_up, 100)
    assert sorted(rest.tolist()) == sorted(set(range(12)) - set(first.tolist()))
    everything = torch.arange(12)
    assert len(next_k_center_picks(failures, train, everything, given_up[:0], 3)) == 0
