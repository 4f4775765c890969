"""The cosine learning-rate schedule the search and retraining share."""

from __future__ import annotations

import pytest

from repair_core.train.schedule import cosine_lr


def test_cosine_schedule_runs_from_lr_towards_lr_min() -> None:
    assert cosine_lr(0, 20, 0.025, 0.001) == pytest.approx(0.025)
    assert cosine_lr(10, 20, 0.025, 0.001) == pytest.approx(0.013)
    assert 0.001 < cosine_lr(19, 20, 0.025, 0.001) < 0.0012
