"""Squared L2 distances between feature sets, computed in bounded memory.

Distances use the expansion ||a||^2 - 2 a.b + ||b||^2 so the work is one matrix product per
block (the fast path on every backend) instead of materialising a - b differences. The
expansion loses precision for nearly equal points, so results are clamped at zero.
"""

from __future__ import annotations

import math

import torch

from repair_core.errors import RepairInputError
from repair_core.progress import CancelToken, Progress, ProgressCallback, ignore_progress

# 256 MiB of distance block: large enough that each block is an efficient matrix product,
# small enough to sit beside a 50k x 512 training set on a small GPU or CPU worker.
DEFAULT_MEMORY_BUDGET_BYTES = 256 * 2**20

# Fewer failure rows than this per block makes the matrix product inefficient, so below it
# the training set is split into column chunks instead.
_MIN_BLOCK_ROWS = 64


def compute_dtype(*features: torch.Tensor) -> torch.dtype:
    """float64 stays float64; everything else is computed in float32 (half is too coarse)."""
    if any(f.dtype == torch.float64 for f in features):
        return torch.float64
    return torch.float32


def block_shape(
    n_rows: int, n_cols: int, memory_budget_bytes: int, element_size: int
) -> tuple[int, int]:
    """Rows x columns of the distance block that fits the budget (at least 1 x 1)."""
    if memory_budget_bytes <= 0:
        raise RepairInputError(f"memory_budget_bytes must be positive, got {memory_budget_bytes}")
    elements = max(1, memory_budget_bytes // element_size)
    min_rows = max(1, min(n_rows, _MIN_BLOCK_ROWS))
    cols = max(1, n_cols) if max(1, n_cols) * min_rows <= elements else elements // min_rows
    cols = max(1, cols)
    rows = max(1, min(n_rows, elements // cols))
    return rows, cols


def count_blocks(n_rows: int, n_cols: int, memory_budget_bytes: int, element_size: int) -> int:
    """How many distance blocks (progress steps) `min_sq_distances` will compute."""
    if n_rows == 0 or n_cols == 0:
        return 0
    rows, cols = block_shape(n_rows, n_cols, memory_budget_bytes, element_size)
    return math.ceil(n_rows / rows) * math.ceil(n_cols / cols)


def min_sq_distances(
    queries: torch.Tensor,
    references: torch.Tensor,
    *,
    memory_budget_bytes: int = DEFAULT_MEMORY_BUDGET_BYTES,
    on_progress: ProgressCallback = ignore_progress,
    cancel: CancelToken | None = None,
    stage: str = "selecting",
    extra_steps: int = 0,
) -> torch.Tensor:
    """Squared L2 distance from every query row to its nearest reference row.

    queries (N, D) and references (M, D) are already validated and of the compute dtype.
    The result is (N,) on the queries' device; +inf for every row when M == 0. References may
    live on another device (e.g. a large training set kept on the host): they are copied to
    the queries' device one column chunk at a time. At most one rows x cols block of the
    N x M distance matrix (plus one chunk of references) exists at a time. Progress counts
    blocks; `extra_steps` are added to the total for work the caller does afterwards.
    """
    n, m = queries.shape[0], references.shape[0]
    device, dtype = queries.device, queries.dtype
    best = torch.full((n,), math.inf, dtype=dtype, device=device)
    if m == 0 or n == 0:
        return best
    rows, cols = block_shape(n, m, memory_budget_bytes, queries.element_size())
    query_sq = queries.square().sum(dim=1)
    # One buffer reused for every block: on the CPU a fresh large allocation per block costs
    # page faults comparable to the block's amin pass.
    buffer = torch.empty(rows * cols, dtype=dtype, device=device)
    col_starts = range(0, m, cols)
    total = count_blocks(n, m, memory_budget_bytes, queries.element_size()) + extra_steps
    step = 0
    for c0 in col_starts:
        ref = references[c0 : c0 + cols].to(device=device, dtype=dtype)
        ref_sq = ref.square().sum(dim=1)
        for r0 in range(0, n, rows):
            if cancel is not None:
                cancel.check()
            q = queries[r0 : r0 + rows]
            block = buffer[: q.shape[0] * ref.shape[0]].view(q.shape[0], ref.shape[0])
            # block = ||r||^2 - 2 q.r ; ||q||^2 is constant per row, added after the min.
            torch.addmm(ref_sq, q, ref.T, beta=1, alpha=-2, out=block)
            torch.minimum(best[r0 : r0 + rows], block.amin(dim=1), out=best[r0 : r0 + rows])
            step += 1
            on_progress(Progress(stage, step, total))
    return best.add_(query_sq).clamp_(min=0)


def sq_distances_to_row(
    points: torch.Tensor, point_sq: torch.Tensor, index: torch.Tensor
) -> torch.Tensor:
    """Squared distance from every row of points to points[index] (index: 0-d or (1,) long).

    One matrix-vector product; index stays a device tensor so a GPU loop never syncs here.
    """
    center = points.index_select(0, index.view(1)).squeeze(0)
    center_sq = point_sq.index_select(0, index.view(1))
    dist = torch.addmv(point_sq, points, center, beta=1, alpha=-2)
    return dist.add_(center_sq).clamp_(min=0)
