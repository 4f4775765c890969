"""Eager and lazy distance bookkeeping give the same farthest failure after every center."""

from __future__ import annotations

import pytest
import torch

from repair_core.selection.coverage import EagerCoverage, LazyCoverage
from repair_core.selection.distances import min_sq_distances


def clustered(seed: int, n: int, dim: int, clusters: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    means = torch.randn(clusters, dim, generator=g, dtype=torch.float64) * 5
    noise = torch.randn(n, dim, generator=g, dtype=torch.float64)
    return means[torch.randint(clusters, (n,), generator=g)] + noise


@pytest.mark.parametrize("first_candidates", [1, 2, 7, 64])
@pytest.mark.parametrize("empty_train", [False, True])
def test_lazy_farthest_equals_eager_farthest_after_every_center(
    first_candidates: int, empty_train: bool
) -> None:
    points = clustered(0, 300, 6, 4)
    train = clustered(1, 0 if empty_train else 200, 6, 4)
    start = min_sq_distances(points, train)
    eager = EagerCoverage(points, start.clone())
    lazy = LazyCoverage(points, start.clone(), 120, first_candidates=first_candidates)
    g = torch.Generator().manual_seed(2)
    for step in range(120):
        e_index, e_value = eager.farthest()
        l_index, l_value = lazy.farthest()
        assert int(l_index) == int(e_index), step
        torch.testing.assert_close(l_value, e_value)
        # Alternate greedy picks with arbitrary ones (as the static variant makes).
        index = e_index if step % 3 else torch.randint(300, (), generator=g)
        eager.add(index)
        lazy.add(index)


def test_lazy_bounds_stay_upper_bounds_of_the_true_distances() -> None:
    points = clustered(3, 200, 4, 3)
    true = min_sq_distances(points, clustered(4, 50, 4, 3))
    lazy = LazyCoverage(points, true.clone(), 40, first_candidates=1)
    for _ in range(40):
        index, _ = lazy.farthest()
        lazy.add(index)
        true = torch.minimum(true, (points - points[int(index)]).square().sum(dim=1))
        true[int(index)] = -torch.inf
    assert bool((lazy.bound >= true - 1e-9).all())


def test_every_failure_covered_reports_minus_infinity() -> None:
    points = clustered(5, 4, 2, 1)
    lazy = LazyCoverage(points, torch.full((4,), torch.inf, dtype=torch.float64), 4)
    for i in range(4):
        lazy.add(torch.tensor(i))
    assert float(lazy.farthest()[1]) == -torch.inf
