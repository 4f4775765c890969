"""K-center greedy (Eq. 6) and Algorithm 1 as printed, against brute force and by property."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from repair_core.errors import RepairInputError
from repair_core.progress import CancelToken, Progress, RepairCancelled
from repair_core.selection.kcenter import k_center_greedy, k_center_static


def brute_force_k_center(
    fail: torch.Tensor, train: torch.Tensor, budget: int
) -> tuple[list[int], list[float]]:
    """Eq. (6) the slow way: every step recomputes all distances to D_train ∪ C from scratch."""
    fail, train = fail.double(), train.double()
    picks: list[int] = []
    radii: list[float] = []

    def nearest(centers: torch.Tensor) -> torch.Tensor:
        if centers.shape[0] == 0:
            return torch.full((fail.shape[0],), float("inf"), dtype=torch.float64)
        dist: torch.Tensor = (fail[:, None, :] - centers[None, :, :]).norm(dim=2)
        return dist.min(dim=1).values

    for _ in range(min(budget, fail.shape[0])):
        dist = nearest(torch.cat([train, fail[picks]]))
        dist[picks] = -1.0  # a set: a failure already in C is not picked again
        picks.append(int(torch.argmax(dist)))  # first maximum: the lowest index wins ties
        after = nearest(torch.cat([train, fail[picks]]))
        after[picks] = 0.0
        radii.append(float(after.max()))
    return picks, radii


def random_features(seed: int, n_fail: int, n_train: int, dim: int) -> tuple[torch.Tensor, ...]:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n_fail, dim, generator=g), torch.randn(n_train, dim, generator=g)


@pytest.mark.parametrize("lazy", [True, False])
@pytest.mark.parametrize("seed", range(5))
@pytest.mark.parametrize("memory_budget_bytes", [64, 4096, 2**20])
def test_greedy_picks_and_radii_equal_brute_force(
    seed: int, memory_budget_bytes: int, lazy: bool
) -> None:
    fail, train = random_features(seed, 60, 40, 5)
    result = k_center_greedy(fail, train, 25, memory_budget_bytes=memory_budget_bytes, lazy=lazy)
    picks, radii = brute_force_k_center(fail, train, 25)
    assert result.indices.tolist() == picks
    torch.testing.assert_close(
        result.radii.double(), torch.tensor(radii, dtype=torch.float64), rtol=1e-5, atol=1e-5
    )
    assert not result.budget_clipped


def test_greedy_in_float64_keeps_float64_radii() -> None:
    fail, train = random_features(7, 30, 20, 3)
    result = k_center_greedy(fail.double(), train.double(), 10)
    picks, radii = brute_force_k_center(fail, train, 10)
    assert result.indices.tolist() == picks
    assert result.radii.dtype == torch.float64
    torch.testing.assert_close(result.radii, torch.tensor(radii, dtype=torch.float64))


small_ints = st.integers(min_value=-3, max_value=3)


@st.composite
def integer_feature_sets(draw: st.DrawFn) -> tuple[torch.Tensor, torch.Tensor, int]:
    # Small integers make float32 distances exact, so ties are real and must go to the
    # lowest index exactly as in the brute force.
    dim = draw(st.integers(1, 4))
    n_fail = draw(st.integers(1, 25))
    n_train = draw(st.integers(0, 15))
    fail = draw(arrays(np.int64, (n_fail, dim), elements=small_ints))
    train = draw(arrays(np.int64, (n_train, dim), elements=small_ints))
    budget = draw(st.integers(1, 30))
    return torch.from_numpy(fail).float(), torch.from_numpy(train).float(), budget


@settings(max_examples=60, deadline=None)
@given(integer_feature_sets(), st.booleans())
def test_greedy_breaks_exact_ties_like_brute_force(
    case: tuple[torch.Tensor, ...], lazy: bool
) -> None:
    fail, train, budget = case
    result = k_center_greedy(fail, train, int(budget), lazy=lazy)
    picks, radii = brute_force_k_center(fail, train, int(budget))
    assert result.indices.tolist() == picks
    torch.testing.assert_close(
        result.radii.double(), torch.tensor(radii, dtype=torch.float64), rtol=1e-6, atol=1e-6
    )


float_elems = st.floats(-10, 10, width=32, allow_nan=False, allow_infinity=False)


@st.composite
def float_feature_sets(draw: st.DrawFn) -> tuple[torch.Tensor, torch.Tensor, int]:
    dim = draw(st.integers(1, 6))
    fail = draw(arrays(np.float32, (draw(st.integers(1, 40)), dim), elements=float_elems))
    train = draw(arrays(np.float32, (draw(st.integers(1, 20)), dim), elements=float_elems))
    return torch.from_numpy(fail), torch.from_numpy(train), draw(st.integers(1, 45))


@settings(max_examples=80, deadline=None)
@given(float_feature_sets(), st.booleans())
def test_greedy_radius_never_increases_and_picks_are_unique(
    case: tuple[torch.Tensor, ...], lazy: bool
) -> None:
    fail, train, budget = case
    result = k_center_greedy(fail, train, int(budget), lazy=lazy)
    assert result.indices.shape[0] == min(int(budget), fail.shape[0])
    assert len(set(result.indices.tolist())) == result.indices.shape[0]
    assert bool((result.radii[1:] <= result.radii[:-1]).all())
    assert bool((result.radii >= 0).all())


@settings(max_examples=80, deadline=None)
@given(float_feature_sets())
def test_greedy_first_pick_is_the_failure_farthest_from_train(
    case: tuple[torch.Tensor, ...],
) -> None:
    fail, train, budget = case
    result = k_center_greedy(fail, train, int(budget))
    dist = torch.cdist(fail.double(), train.double()).min(dim=1).values
    # float32 expansion error for features up to 10 in 6-d is far below 1e-3.
    assert float(dist[result.indices[0]]) >= float(dist.max()) - 1e-3


def test_lazy_and_eager_bookkeeping_agree_on_clustered_features() -> None:
    # Clusters make many bounds stale at once: the lazy path must widen its candidate set.
    g = torch.Generator().manual_seed(11)
    means = torch.randn(5, 16, generator=g) * 4
    fail = means[torch.randint(5, (1500,), generator=g)] + torch.randn(1500, 16, generator=g)
    train = means[torch.randint(5, (800,), generator=g)] + torch.randn(800, 16, generator=g)
    fail, train = fail.double(), train.double()
    lazy = k_center_greedy(fail, train, 300, lazy=True)
    eager = k_center_greedy(fail, train, 300, lazy=False)
    assert torch.equal(lazy.indices, eager.indices)
    torch.testing.assert_close(lazy.radii, eager.radii)
    static_lazy = k_center_static(fail, train, 50, lazy=True)
    static_eager = k_center_static(fail, train, 50, lazy=False)
    assert torch.equal(static_lazy.indices, static_eager.indices)
    torch.testing.assert_close(static_lazy.radii, static_eager.radii)


def test_static_variant_returns_failures_farthest_from_train_in_order() -> None:
    fail, train = random_features(3, 50, 30, 4)
    result = k_center_static(fail, train, 10, memory_budget_bytes=256)
    dist = torch.cdist(fail.double(), train.double()).min(dim=1).values
    assert result.indices.tolist() == torch.argsort(dist, descending=True)[:10].tolist()
    assert bool((result.radii[1:] <= result.radii[:-1]).all())


def test_static_variant_covers_worse_than_greedy_on_clustered_failures() -> None:
    # Eight far-away near-duplicates: static takes them all, greedy takes one then moves on.
    g = torch.Generator().manual_seed(0)
    train = torch.randn(30, 2, generator=g)
    far = torch.tensor([[20.0, 20.0]]) + 0.01 * torch.randn(8, 2, generator=g)
    near = torch.randn(40, 2, generator=g) * 4
    fail = torch.cat([far, near])
    static = k_center_static(fail, train, 8)
    greedy = k_center_greedy(fail, train, 8)
    assert sorted(static.indices.tolist()) == list(range(8))
    assert sum(i < 8 for i in greedy.indices.tolist()) == 1
    assert greedy.radius < static.radius


@pytest.mark.parametrize("lazy", [True, False])
def test_budget_above_failure_count_selects_all_and_says_so(lazy: bool) -> None:
    fail, train = random_features(0, 6, 5, 3)
    for select in (k_center_greedy, k_center_static):
        result = select(fail, train, 10, lazy=lazy)
        assert sorted(result.indices.tolist()) == list(range(6))
        assert result.budget_clipped
        assert result.radius == 0.0


@pytest.mark.parametrize("lazy", [True, False])
def test_duplicate_failures_are_never_picked_twice(lazy: bool) -> None:
    fail = torch.ones(5, 3)
    result = k_center_greedy(fail, torch.zeros(2, 3), 5, lazy=lazy)
    assert result.indices.tolist() == [0, 1, 2, 3, 4]
    assert result.radii.tolist() == [0.0] * 5


def test_empty_train_set_starts_at_index_zero_or_at_a_seeded_random_failure() -> None:
    fail, _ = random_features(1, 40, 0, 3)
    empty = torch.empty(0, 3)
    assert int(k_center_greedy(fail, empty, 3).indices[0]) == 0
    lazy = k_center_greedy(fail, empty, 10, lazy=True)
    assert lazy.indices.tolist() == brute_force_k_center(fail, empty, 10)[0]
    assert torch.equal(lazy.indices, k_center_greedy(fail, empty, 10, lazy=False).indices)
    firsts = [
        int(k_center_greedy(fail, empty, 3, generator=torch.Generator().manual_seed(s)).indices[0])
        for s in range(6)
    ]
    again = k_center_greedy(fail, empty, 3, generator=torch.Generator().manual_seed(0))
    assert int(again.indices[0]) == firsts[0]
    assert len(set(firsts)) > 1


def test_results_are_deterministic_and_on_the_cpu() -> None:
    fail, train = random_features(2, 80, 50, 6)
    first = k_center_greedy(fail, train, 20, memory_budget_bytes=1000)
    second = k_center_greedy(fail, train, 20, memory_budget_bytes=1000)
    assert torch.equal(first.indices, second.indices)
    assert torch.equal(first.radii, second.radii)
    assert first.indices.dtype == torch.int64 and first.indices.device.type == "cpu"


def test_half_precision_features_are_computed_in_float32() -> None:
    fail, train = random_features(4, 30, 20, 4)
    result = k_center_greedy(fail.half(), train.half(), 5)
    assert result.radii.dtype == torch.float32
    assert result.indices.tolist() == brute_force_k_center(fail.half(), train.half(), 5)[0]


@pytest.mark.parametrize(
    ("fail", "train", "budget", "message"),
    [
        (torch.zeros(4, 3), torch.zeros(2, 3), 0, "budget"),
        (torch.zeros(4, 3), torch.zeros(2, 3), -5, "budget"),
        (torch.zeros(4, 3), torch.zeros(2, 3), 2.5, "budget"),
        (torch.zeros(0, 3), torch.zeros(2, 3), 2, "empty"),
        (torch.zeros(4, 3), torch.zeros(2, 5), 2, "dimension mismatch"),
        (torch.zeros(4), torch.zeros(2, 4), 2, "2-D"),
        (torch.zeros(4, 3, dtype=torch.long), torch.zeros(2, 3), 2, "floating point"),
        (torch.tensor([[0.0], [float("nan")]]), torch.zeros(2, 1), 1, "NaN"),
        (torch.zeros(2, 1), torch.tensor([[float("inf")]]), 1, "train_features"),
    ],
)
def test_invalid_inputs_raise_clear_errors(
    fail: torch.Tensor, train: torch.Tensor, budget: int, message: str
) -> None:
    for select in (k_center_greedy, k_center_static):
        with pytest.raises(RepairInputError, match=message):
            select(fail, train, budget)


def test_invalid_memory_budget_is_refused() -> None:
    with pytest.raises(RepairInputError, match="memory_budget_bytes"):
        k_center_greedy(torch.zeros(3, 2), torch.zeros(3, 2), 1, memory_budget_bytes=0)


def test_progress_reaches_its_total_in_non_decreasing_steps() -> None:
    fail, train = random_features(5, 50, 40, 3)
    seen: list[Progress] = []
    result = k_center_greedy(fail, train, 30, memory_budget_bytes=400, on_progress=seen.append)
    assert all(p.stage == "selecting" for p in seen)
    steps = [p.step for p in seen]
    assert steps == sorted(steps)
    assert len({p.total for p in seen}) == 1
    assert seen[-1].step == seen[-1].total > 30
    assert seen[-1].metrics["radius"] == pytest.approx(result.radius)


def test_cancel_stops_the_selection_at_a_step_boundary() -> None:
    fail, train = random_features(6, 50, 40, 3)
    token = CancelToken()

    def cancel_in_the_greedy_loop(progress: Progress) -> None:
        if progress.step > 1:  # step 1 is the single block of D_train distances
            token.cancel()

    threads = torch.get_num_threads()
    with pytest.raises(RepairCancelled):
        k_center_greedy(fail, train, 30, on_progress=cancel_in_the_greedy_loop, cancel=token)
    # The loop runs on one CPU thread; the caller's thread count comes back even on cancel.
    assert torch.get_num_threads() == threads
