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

# The search strategy: DARTS (first order, or second order by unrolling), PC-DARTS
# (partial channels, edge normalisation), RobustDARTS's DARTS-ES (eigenvalue early stop)
# and its regularised variant (larger weight decay, drop path).
SEARCH_CHOICES: tuple[str, ...] = ("darts-1st", "darts-2nd", "pcdarts", "robdarts", "robdarts-reg")
DEFAULT_SEARCH = "darts-1st"
# The paper's name of each strategy in a variant name (CF-DARTS, RF-PCDARTSE, ...).
SEARCH_NAMES: dict[str, str] = {
    "darts-1st": "DARTS",
    "darts-2nd": "DARTS",
    "pcdarts": "PCDARTS",
    "robdarts": "RobDARTS",
    "robdarts-reg": "RobDARTSReg",
}

# What the searched network is retrained on: D_train, or D_train ∪ C (the "E" variants).
RETRAIN_CHOICES: tuple[str, ...] = ("clean", "with-failures")
DEFAULT_RETRAIN = "clean"

# Budget profiles (sizes and epochs of every stage), see `repair_core.pipeline.profiles`.
PROFILE_CHOICES: tuple[str, ...] = ("smoke", "fast", "paper")
DEFAULT_PROFILE = "fast"


# RepairConfig field -> (the names it accepts, its default); what the API schema and the
# CLI options are built from.
CHOICES: dict[str, tuple[tuple[str, ...], str]] = {
    "selection": (SELECTION_CHOICES, DEFAULT_SELECTION),
    "search": (SEARCH_CHOICES, DEFAULT_SEARCH),
    "retrain": (RETRAIN_CHOICES, DEFAULT_RETRAIN),
    "profile": (PROFILE_CHOICES, DEFAULT_PROFILE),
}


def help_text(field: str, separator: str = " | ") -> str:
    """The names a `RepairConfig` field accepts, as one line for a command-line help text."""
    return separator.join(CHOICES[field][0])
