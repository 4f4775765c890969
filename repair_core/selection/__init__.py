"""Stage 1 of a repair: choose the core failure set C (or its stand-ins) for the search.

Methods by name (`repair_core.choices.SELECTION_CHOICES`, the names the API accepts),
all dispatched by `select` (module `dispatch`):
- "kcenter": K-center greedy of Eq. (6), distances to D_train ∪ C updated after every pick.
- "kcenter-static": Algorithm 1 as printed, the B failures farthest from D_train.
- "random": B failures drawn uniformly (the RF baseline).
- "augment": B augmented training images instead of failures (the AU baseline); it selects
  no failures, so `select` builds it with `augmentation_set` from training images.
"""

from __future__ import annotations

from repair_core.selection.augment import AUGMENT_OPS, AugmentationSet, augmentation_set
from repair_core.selection.dispatch import (
    FAILURE_SELECTION_METHODS,
    SELECTION_METHODS,
    CoreSetSelection,
    Selection,
    select,
    select_core_set,
)
from repair_core.selection.distances import DEFAULT_MEMORY_BUDGET_BYTES, min_sq_distances
from repair_core.selection.features import FeatureModel, extract_features
from repair_core.selection.kcenter import KCenterResult, k_center_greedy, k_center_static
from repair_core.selection.random_select import random_selection
from repair_core.selection.split import SplitHalves, split_halves

__all__ = [
    "AUGMENT_OPS",
    "DEFAULT_MEMORY_BUDGET_BYTES",
    "FAILURE_SELECTION_METHODS",
    "SELECTION_METHODS",
    "AugmentationSet",
    "CoreSetSelection",
    "FeatureModel",
    "KCenterResult",
    "Selection",
    "SplitHalves",
    "augmentation_set",
    "extract_features",
    "k_center_greedy",
    "k_center_static",
    "min_sq_distances",
    "random_selection",
    "select",
    "select_core_set",
    "split_halves",
]
