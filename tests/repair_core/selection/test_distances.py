"""Chunked nearest-neighbour squared distances stay exact and inside their memory budget."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from repair_core.errors import RepairInputError
from repair_core.selection.distances import (
    block_shape,
    count_blocks,
    min_sq_distances,
    sq_distances_to_row,
)


def features(seed: int, n: int, dim: int) -> torch.Tensor:
    return torch.randn(n, dim, generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("memory_budget_bytes", [1, 4, 100, 4096, 10**9])
def test_min_sq_distances_equal_cdist_for_every_budget(memory_budget_bytes: int) -> None:
    queries, refs = features(0, 70, 6), features(1, 90, 6)
    expected = torch.cdist(queries.double(), refs.double()).min(dim=1).values.square()
    got = min_sq_distances(queries, refs, memory_budget_bytes=memory_budget_bytes)
    torch.testing.assert_close(got.double(), expected, rtol=1e-5, atol=1e-5)


def test_min_sq_distances_to_no_references_are_infinite() -> None:
    got = min_sq_distances(features(0, 4, 3), torch.empty(0, 3))
    assert torch.isinf(got).all()


def test_distance_of_a_point_to_itself_is_clamped_at_zero_not_negative() -> None:
    points = features(2, 20, 8) * 1000
    got = min_sq_distances(points, points.clone())
    assert bool((got >= 0).all())
    # What remains is float32 rounding of ||a||^2 (~1e7 here), not a real distance.
    assert float(got.max()) < 1e-6 * float(points.square().sum(dim=1).max())


def test_references_in_another_dtype_are_converted_per_chunk() -> None:
    queries, refs = features(3, 10, 4), features(4, 12, 4)
    got = min_sq_distances(queries, refs.double(), memory_budget_bytes=64)
    assert got.dtype == torch.float32
    expected = torch.cdist(queries, refs).min(dim=1).values.square()
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-5)


@given(
    n_rows=st.integers(1, 100_000),
    n_cols=st.integers(1, 100_000),
    budget=st.integers(1, 2**30),
    element_size=st.sampled_from([4, 8]),
)
def test_block_never_exceeds_the_memory_budget_unless_one_element_does(
    n_rows: int, n_cols: int, budget: int, element_size: int
) -> None:
    rows, cols = block_shape(n_rows, n_cols, budget, element_size)
    assert 1 <= rows <= n_rows and 1 <= cols <= n_cols
    assert rows * cols * element_size <= max(budget, element_size)
    assert count_blocks(n_rows, n_cols, budget, element_size) >= 1


def test_block_spans_the_whole_train_set_when_it_fits() -> None:
    rows, cols = block_shape(30_000, 50_000, 256 * 2**20, 4)
    assert cols == 50_000
    assert rows * cols * 4 <= 256 * 2**20
    assert block_shape(10, 20, 10**9, 4) == (10, 20)  # the full matrix fits: one block


def test_non_positive_memory_budget_is_refused() -> None:
    with pytest.raises(RepairInputError, match="memory_budget_bytes"):
        block_shape(3, 3, 0, 4)


def test_sq_distances_to_row_match_direct_differences() -> None:
    points = features(5, 15, 5)
    got = sq_distances_to_row(points, points.square().sum(dim=1), torch.tensor(7))
    expected = (points - points[7]).square().sum(dim=1)
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-5)
    assert float(got[7]) >= 0


@pytest.mark.gpu
def test_chunked_distances_on_cuda_stay_within_budget_and_match_cpu() -> None:
    queries, refs = features(6, 2000, 64), features(7, 4000, 64)
    budget = 2**20  # the full matrix would need 32 MiB
    q, r = queries.cuda(), refs.cuda()
    # A first call creates the cuBLAS workspace, which is not part of the distance blocks.
    min_sq_distances(q[:100], r[:100], memory_budget_bytes=budget)
    torch.cuda.synchronize()
    base = torch.cuda.memory_allocated()
    torch.cuda.reset_peak_memory_stats()
    got = min_sq_distances(q, r, memory_budget_bytes=budget)
    torch.cuda.synchronize()
    extra = torch.cuda.max_memory_allocated() - base
    # The block, one chunk of references and a few (N,) vectors; far below the 32 MiB matrix.
    assert extra < budget + 4 * 2**20
    expected = min_sq_distances(queries, refs, memory_budget_bytes=budget)
    torch.testing.assert_close(got.cpu(), expected, rtol=1e-4, atol=1e-3)
