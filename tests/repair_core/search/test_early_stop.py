"""DARTS-ES's stop rule on given eigenvalue series (cases from a re-implementation of
the reference's stateful local-average tracker)."""

from __future__ import annotations

from collections.abc import Callable

from repair_core.search.early_stop import EarlyStopRule, early_stop_epoch

PAPER = EarlyStopRule(window=5, delta=4, factor=1.3, start_epoch=10, every=2)


def _first_stop(
    f: Callable[[int], float], rule: EarlyStopRule, epochs: int
) -> tuple[int, int] | None:
    """(epoch at which the rule fires, the epoch it returns), or None."""
    series: list[tuple[int, float]] = []
    for epoch in range(epochs - 1):  # never checked at the last epoch
        if epoch % rule.every:
            continue
        series.append((epoch, f(epoch)))
        stop = early_stop_epoch(series, rule)
        if stop is not None:
            return epoch, stop
    return None


def test_a_jump_fires_four_eigenvalues_later_and_returns_the_epoch_before_growth() -> None:
    assert _first_stop(lambda e: 1.0 if e <= 20 else 3.0, PAPER, 50) == (22, 10)


def test_a_steady_climb_fires_when_the_ratio_passes_the_factor() -> None:
    assert _first_stop(lambda e: 1.0 if e < 30 else 1.2 + 0.5 * (e - 30), PAPER, 50) == (34, 22)


def test_a_slow_drift_never_fires() -> None:
    assert _first_stop(lambda e: 1.0 + 0.01 * e, PAPER, 50) is None


def test_every_epoch_with_a_short_window() -> None:
    rule = EarlyStopRule(window=3, delta=1, factor=1.3, start_epoch=1, every=1)
    assert _first_stop(lambda e: 1.0 if e < 4 else 2.0, rule, 10) == (4, 2)


def test_a_non_positive_earlier_average_never_fires() -> None:
    rule = EarlyStopRule(window=3, delta=1, factor=1.3, start_epoch=0, every=1)
    assert _first_stop(lambda e: -1.0 if e < 4 else 5.0, rule, 6) is None
    assert early_stop_epoch([], rule) is None
