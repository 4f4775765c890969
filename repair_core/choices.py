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


# Retraining the deployed architecture instead of searching one (no selection for the
# control): the control row every honest comparison needs. Not a service field yet: the
# API schema takes none of these (see CHOICES below).
BASELINE_CHOICES: tuple[str, ...] = ("none", "control", "augmix", "cutmix", "fourier-style")
DEFAULT_BASELINE = "none"

# The retraining augmentation (`TrainSettings.augmentation`); a baseline picks its own.
AUGMENTATION_CHOICES: tuple[str, ...] = ("standard", "augmix", "cutmix", "fourier-style")
BASELINE_AUGMENTATION: dict[str, str] = {
    "control": "standard",
    "augmix": "augmix",
    "cutmix": "cutmix",
    "fourier-style": "fourier-style",
}

# The paper's variant name prefix of each selection method (CF-DARTS, RF-DARTS, ...) and
# the name of each baseline row; "E" appended when retrained on D_train ∪ C.
VARIANT_PREFIXES: dict[str, str] = {
    "kcenter": "CF",
    "kcenter-static": "CFS",
    "random": "RF",
    "augment": "AU",
}
BASELINE_NAMES: dict[str, str] = {
    "control": "Control",
    "augmix": "AugMix",
    "cutmix": "CutMix",
    "fourier-style": "FourierStyle",
}


def variant_name(selection: str, retrain: str, baseline: str = DEFAULT_BASELINE) -> str:
    """CF-DARTS, RF-DARTSE, Control, Control-E, ... for one configuration."""
    with_failures = retrain == "with-failures"
    if baseline != DEFAULT_BASELINE:
        return BASELINE_NAMES[baseline] + ("-E" if with_failures else "")
    return f"{VARIANT_PREFIXES[selection]}-DARTS" + ("E" if with_failures else "")


def parse_variant(name: str) -> dict[str, str]:
    """The config fields a variant name stands for: "CF-DARTSE" -> selection kcenter,
    retrain with-failures; "Control" -> baseline control, retrain clean. ValueError names
    the accepted forms."""
    for selection, prefix in VARIANT_PREFIXES.items():
        for suffix, retrain in (("", "clean"), ("E", "with-failures")):
            if name == f"{prefix}-DARTS{suffix}":
                return {"selection": selection, "retrain": retrain, "baseline": DEFAULT_BASELINE}
    for baseline, base in BASELINE_NAMES.items():
        for suffix, retrain in (("", "clean"), ("-E", "with-failures")):
            if name == base + suffix:
                return {"retrain": retrain, "baseline": baseline}
    forms = [f"{p}-DARTS[E]" for p in VARIANT_PREFIXES.values()]
    forms += [f"{b}[-E]" for b in BASELINE_NAMES.values()]
    raise ValueError(f"unknown variant {name!r}; use one of {', '.join(forms)}")


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
