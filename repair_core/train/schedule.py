"""The cosine learning-rate schedule that the search and retraining both follow.

Closed form, a function of the epoch alone: a resumed run recomputes its rate from the
epoch it resumes at, with no scheduler state to save, and a search continued for more
epochs (paper §4.7) simply evaluates the same curve over its new length.
"""

from __future__ import annotations

import math


def cosine_lr(epoch: int, epochs: int, lr: float, lr_min: float) -> float:
    """Learning rate of `epoch` (0-based) on a cosine from `lr` at 0 towards `lr_min`."""
    return lr_min + (lr - lr_min) * (1 + math.cos(math.pi * epoch / epochs)) / 2
