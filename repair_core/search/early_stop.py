"""DARTS-ES (RobustDARTS): stop when the dominant Hessian eigenvalue grows too fast.

The rule of the reference implementation, in a stateless form: over the eigenvalues
computed so far (one every `every` epochs), take the running local averages of the last
`window` values; the average ending at the newest value is centred `every * (window // 2)`
epochs back. If it exceeds the average `delta` positions earlier by more than `factor`,
the search stops and returns the architecture of the epoch `every * delta` before that
centre, provided that epoch is at least `start_epoch`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class EarlyStopRule:
    window: int = 5
    delta: int = 4
    factor: float = 1.3
    start_epoch: int = 10  # 0-based; no stop returns an earlier architecture
    every: int = 2  # epochs between eigenvalues


def early_stop_epoch(series: Sequence[tuple[int, float]], rule: EarlyStopRule) -> int | None:
    """The 0-based epoch whose architecture to return, or None to go on.

    `series`: (0-based epoch, eigenvalue) in order, the newest last; call it after each
    new eigenvalue except the search's last epoch.
    """
    if not series:
        return None
    values = [v for _, v in series]
    newest_epoch = series[-1][0]
    first = math.ceil(rule.window / 2)
    if len(values) < first:
        return None
    local = [
        sum(values[max(0, k - rule.window) : k]) / len(values[max(0, k - rule.window) : k])
        for k in range(first, len(values) + 1)
    ]
    stop = newest_epoch - rule.every * (rule.window // 2) - rule.every * rule.delta
    if stop < rule.start_epoch or len(local) <= rule.delta:
        return None
    before = local[-1 - rule.delta]
    if before > 0 and local[-1] / before > rule.factor:
        return stop
    return None
