"""Turns each stage's own progress into one overall percentage for the whole repair."""

from __future__ import annotations

from dataclasses import replace

from repair_core.progress import Progress, ProgressCallback

# Share of the whole repair each stage takes (search and retraining split per iteration).
_FIXED = {"confirming": 0.02, "selecting": 0.06, "evaluating": 0.12}
_PER_ITERATION = {"searching": 0.32, "retraining": 0.48}


class OverallProgress:
    """Wraps the caller's callback; adds metrics `overall_percent` and `iteration`."""

    def __init__(self, callback: ProgressCallback, iterations: int) -> None:
        self._callback = callback
        self._iterations = iterations
        self.stage = "confirming"
        self.iteration = 1

    def _start_of(self, stage: str, iteration: int) -> float:
        start = 0.0
        order = ["confirming", "selecting"]
        for it in range(1, self._iterations + 1):
            order += [f"searching@{it}", f"retraining@{it}"]
        order.append("evaluating")
        key = stage if stage in _FIXED else f"{stage}@{iteration}"
        for name in order:
            if name == key:
                return start
            start += self._weight(name)
        return start

    def _weight(self, name: str) -> float:
        stage = name.split("@")[0]
        if stage in _FIXED:
            return _FIXED[stage]
        return _PER_ITERATION[stage] / self._iterations

    def enter(self, stage: str, iteration: int = 1) -> ProgressCallback:
        """The callback for `stage`: reports under that stage name whatever it is given."""

        def report(progress: Progress) -> None:
            self.stage, self.iteration = stage, iteration
            key = stage if stage in _FIXED else f"{stage}@{iteration}"
            fraction = progress.step / progress.total if progress.total else 0.0
            overall = self._start_of(stage, iteration) + self._weight(key) * min(fraction, 1.0)
            metrics = {
                **progress.metrics,
                "overall_percent": round(100.0 * overall, 2),
                "iteration": float(iteration),
            }
            self._callback(replace(progress, stage=stage, metrics=metrics))

        report(Progress(stage, 0, 1))
        return report


def variant_share(callback: ProgressCallback, index: int, count: int) -> ProgressCallback:
    """Variant `index` of `count` run one after another: its 0..88 % (everything before
    evaluating) becomes its share of that span, so the overall percentage never goes back."""
    span = 100.0 * (1.0 - _FIXED["evaluating"])
    if count == 1:
        return callback

    def report(progress: Progress) -> None:
        percent = progress.metrics.get("overall_percent")
        if percent is not None:
            shared = (index * span + min(percent, span)) / count
            progress = replace(
                progress, metrics={**progress.metrics, "overall_percent": round(shared, 2)}
            )
        callback(progress)

    return report


def span_share(
    callback: ProgressCallback, stage: str, start: float, end: float
) -> ProgressCallback:
    """Reports under `stage`, the step fraction mapped onto `start`..`end` percent overall
    (for runs of fixed parts, e.g. a transfer's two retrainings and its evaluation)."""

    def report(progress: Progress) -> None:
        fraction = min(progress.step / progress.total, 1.0) if progress.total else 0.0
        overall = round(start + (end - start) * fraction, 2)
        metrics = {**progress.metrics, "overall_percent": overall}
        callback(replace(progress, stage=stage, metrics=metrics))

    report(Progress(stage, 0, 1))
    return report
