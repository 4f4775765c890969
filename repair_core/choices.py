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
# and its regularised variant (larger weight decay, drop path), DARTS-PT (perturbation-based
# selection of ops and inputs after the supernet's training).
SEARCH_CHOICES: tuple[str, ...] = (
    "darts-1st", "darts-2nd", "pcdarts", "robdarts", "robdarts-reg", "dartspt",
)  # fmt: skip
DEFAULT_SEARCH = "darts-1st"
# The paper's name of each strategy in a variant name (CF-DARTS, RF-PCDARTSE, ...).
SEARCH_NAMES: dict[str, str] = {
    "darts-1st": "DARTS",
    "darts-2nd": "DARTS",
    "pcdarts": "PCDARTS",
    "robdarts": "RobDARTS",
    "robdarts-reg": "RobDARTSReg",
    "dartspt": "DARTSPT",
}
# Strategies whose search ends in a discrete selection phase: a second iteration would have
# to continue a supernet that was already discretised, so they run one iteration.
ONE_ITERATION_SEARCHES: tuple[str, ...] = ("dartspt",)

# What the searched network is retrained on: D_train, or D_train ∪ C (the "E" variants).
RETRAIN_CHOICES: tuple[str, ...] = ("clean", "with-failures")
DEFAULT_RETRAIN = "clean"

# What becomes of picked failures the owner left unlabeled (label on demand, §3.3):
# replaced by the next K-center picks (asked again), or dropped from C.
UNLABELED_PICKS_CHOICES: tuple[str, ...] = ("replace", "drop")
DEFAULT_UNLABELED_PICKS = "replace"
# Deployed-model families (`repair_core.models`): this project's DARTS genotype networks,
# timm and torchvision architectures by registry name, ONNX graphs run with onnxruntime.
MODEL_FAMILIES: tuple[str, ...] = ("darts", "timm", "torchvision", "onnx")
# Families whose architecture can be rebuilt fresh and trained (Control, baselines).
TRAINABLE_FAMILIES: tuple[str, ...] = ("darts", "timm", "torchvision")

# Budget profiles (sizes and epochs of every stage), see `repair_core.profiles`.
PROFILE_CHOICES: tuple[str, ...] = ("smoke", "fast", "paper")
DEFAULT_PROFILE = "fast"


# Formats the repaired model downloads in: this project's self-describing `.safetensors`
# checkpoint, and the exports checked against it (`repair_core.export`) that run without
# this project (onnxruntime; torch.jit.load).
MODEL_FORMAT_CHOICES: tuple[str, ...] = ("safetensors", "onnx", "torchscript")
DEFAULT_MODEL_FORMAT = "safetensors"
EXPORT_FORMATS: tuple[str, ...] = MODEL_FORMAT_CHOICES[1:]
MODEL_FORMAT_SUFFIXES: dict[str, str] = {
    "safetensors": ".safetensors",
    "onnx": ".onnx",
    "torchscript": ".pt",  # what torch.jit.save's users expect
}

# The corruption suite's names in the order of docs/method.md (the registry,
# `corruptions.registry.CORRUPTIONS`, checks at import that it has exactly these) and its
# severities: what an evaluation override may name, checked without torch.
CORRUPTION_CHOICES: tuple[str, ...] = (
    "gaussian_noise", "shot_noise", "impulse_noise",
    "defocus_blur", "glass_blur", "motion_blur", "zoom_blur",
    "snow", "frost", "fog", "brightness",
    "contrast", "elastic_transform", "pixelate", "jpeg_compression",
)  # fmt: skip
SEVERITY_CHOICES: tuple[int, ...] = (1, 2, 3, 4, 5)

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


def variant_name(
    selection: str, retrain: str, baseline: str = DEFAULT_BASELINE, search: str = DEFAULT_SEARCH
) -> str:
    """CF-DARTS, RF-PCDARTSE, Control, Control-E, ... for one configuration."""
    with_failures = retrain == "with-failures"
    if baseline != DEFAULT_BASELINE:
        return BASELINE_NAMES[baseline] + ("-E" if with_failures else "")
    return f"{VARIANT_PREFIXES[selection]}-{SEARCH_NAMES[search]}" + ("E" if with_failures else "")


def parse_variant(name: str) -> dict[str, str]:
    """The config fields a variant name stands for: "CF-DARTSE" -> selection kcenter,
    retrain with-failures; "RF-PCDARTS" -> selection random, search pcdarts; "Control" ->
    baseline control, retrain clean. "DARTS" names both orders, so it sets no search.
    ValueError names the accepted forms."""
    searches = {label: s for s, label in SEARCH_NAMES.items() if label != "DARTS"}
    searches["DARTS"] = ""
    for selection, prefix in VARIANT_PREFIXES.items():
        for label, search in searches.items():
            for suffix, retrain in (("", "clean"), ("E", "with-failures")):
                if name == f"{prefix}-{label}{suffix}":
                    fields = {"selection": selection, "retrain": retrain}
                    fields["baseline"] = DEFAULT_BASELINE
                    if search:
                        fields["search"] = search
                    return fields
    for baseline, base in BASELINE_NAMES.items():
        for suffix, retrain in (("", "clean"), ("-E", "with-failures")):
            if name == base + suffix:
                return {"retrain": retrain, "baseline": baseline}
    others = ", ".join(label for label in searches if label != "DARTS")
    forms = [f"{p}-DARTS[E]" for p in VARIANT_PREFIXES.values()]
    forms += [f"{b}[-E]" for b in BASELINE_NAMES.values()]
    raise ValueError(
        f"unknown variant {name!r}; use one of {', '.join(forms)} (DARTS may also be {others})"
    )


# RepairConfig field -> (the names it accepts, its default); what the API schema and the
# CLI options are built from.
CHOICES: dict[str, tuple[tuple[str, ...], str]] = {
    "selection": (SELECTION_CHOICES, DEFAULT_SELECTION),
    "search": (SEARCH_CHOICES, DEFAULT_SEARCH),
    "retrain": (RETRAIN_CHOICES, DEFAULT_RETRAIN),
    "profile": (PROFILE_CHOICES, DEFAULT_PROFILE),
    "unlabeled_picks": (UNLABELED_PICKS_CHOICES, DEFAULT_UNLABELED_PICKS),
}


def help_text(field: str, separator: str = " | ") -> str:
    """The names a `RepairConfig` field accepts, as one line for a command-line help text."""
    return separator.join(CHOICES[field][0])


# The report's figures (`repair_core.evaluation.figures`), each written in every format;
# the API serves them as `/v1/repairs/{id}/figures/<name>.<format>`. A job lists the ones
# it has (a baseline searched nothing: no search curves).
FIGURE_NAMES: tuple[str, ...] = (
    "cell-deployed-normal",
    "cell-deployed-reduce",
    "cell-repaired-normal",
    "cell-repaired-reduce",
    "robustness-heatmap",
    "search-curves",
    "search-alphas-normal",
    "search-alphas-reduce",
    "retrain-curves",
)
FIGURE_FORMATS: dict[str, str] = {"png": "image/png", "svg": "image/svg+xml"}


def figure_files() -> tuple[str, ...]:
    """Every file name a figure may have, e.g. `robustness-heatmap.svg`."""
    return tuple(f"{name}.{fmt}" for name in FIGURE_NAMES for fmt in FIGURE_FORMATS)
