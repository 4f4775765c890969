"""The names a repair accepts for each choice, defined once for the API, the CLI and the core.

The API's request schema, repairctl's options and `RepairConfig` all derive from these
tuples; `repair_core` checks that its registries (selection methods, profiles) agree
with them. Standard library only: the API process imports this and must not load torch.
"""

from __future__ import annotations

# Core failure set selection (paper §3.1): K-center greedy (Eq. 6), Algorithm 1 as
# printed, uniform random (the RF baseline), augmented training images (the AU baseline).
SELECTION_CHOICES: tuple[str, ...] = ("kcenter", "kcenter-static", "random", "augment")
DEFAULT_SELECTION = "kcenter"

# The order of the architecture gradient: first order, or second order by unrolling.
SEARCH_CHOICES: tuple[str, ...] = ("darts-1st", "darts-2nd")
DEFAULT_SEARCH = "darts-1st"

# What the searched network is retrained on: D_train, or D_train ∪ C (the "E" variants).
RETRAIN_CHOICES: tuple[str, ...] = ("clean", "with-failures")
DEFAULT_RETRAIN = "clean"

# Budget profiles (sizes and epochs of every stage), see `repair_core.pipeline.profiles`.
PROFILE_CHOICES: tuple[str, ...] = ("smoke", "fast", "paper")
DEFAULT_PROFILE = "fast"


def choices_help(choices: tuple[str, ...], separator: str = " | ") -> str:
    """The choices as one line for a command-line help text."""
    return separator.join(choices)
