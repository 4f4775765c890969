"""Stage 3, retraining: the loop (`loop`), its settings, its resumable state, its augmentation.

`train_model` trains any network (the searched genotype's, or a deployed model phi0) with
the DARTS evaluation protocol; `augment` and `schedule` are shared with the search.
"""

from repair_core.train.loop import TrainingDiverged, TrainResult, train_model
from repair_core.train.settings import TrainSettings

__all__ = ["TrainResult", "TrainSettings", "TrainingDiverged", "train_model"]
