"""Stage 3, retraining: the loop (`loop`), its settings, its resumable state, its augmentation.

`train_model` trains any network (the searched genotype's, or a deployed model phi0) with
the DARTS evaluation protocol; `augment` and `schedule` are shared with the search.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from repair_core.train.settings import TrainSettings

if TYPE_CHECKING:
    from repair_core.train.loop import TrainingDiverged, TrainResult, train_model

_LOOP = ("TrainResult", "TrainingDiverged", "train_model")


def __getattr__(name: str) -> Any:
    # The loop (torch) loads on first use, so `repair_core.train.settings` stays torch-free
    # for the API, which checks a job's overrides against the settings.
    if name in _LOOP:
        from repair_core.train import loop

        return getattr(loop, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ["TrainResult", "TrainSettings", "TrainingDiverged", "train_model"]
