"""A rich progress bar per stage, fed by `repair_core.progress.Progress` reports."""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.progress import BarColumn, Progress, TaskID, TextColumn, TimeElapsedColumn


class StageBars:
    """Context manager; call it with each Progress report."""

    def __init__(self, console: Console | None = None) -> None:
        self._bars = Progress(
            TextColumn("{task.description:<14}"),
            BarColumn(),
            TextColumn("{task.completed:>6.0f}/{task.total:<6.0f}"),
            TextColumn("{task.fields[metrics]}"),
            TimeElapsedColumn(),
            console=console,
        )
        self._tasks: dict[str, TaskID] = {}

    def __enter__(self) -> StageBars:
        self._bars.__enter__()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._bars.__exit__(*exc)

    def __call__(self, progress: Any) -> None:
        label = progress.stage
        iteration = progress.metrics.get("iteration")
        if progress.stage in ("searching", "retraining") and iteration:
            label = f"{progress.stage} #{int(iteration)}"
        shown = {k: v for k, v in progress.metrics.items() if k in ("loss", "train_acc", "epoch")}
        text = " ".join(f"{k}={v:.3g}" for k, v in shown.items())
        if label not in self._tasks:
            self._tasks[label] = self._bars.add_task(label, total=progress.total, metrics=text)
        self._bars.update(
            self._tasks[label], completed=progress.step, total=progress.total or None, metrics=text
        )
