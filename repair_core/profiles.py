"""Budget profiles: the sizes and epochs of every stage, and dotted overrides of them.

`smoke` runs in seconds on a CPU (tests, demo); `fast` is sized for minutes on one GPU;
`paper` is the paper's protocol (20 search epochs, 600 retraining epochs).

A search strategy other than DARTS is a preset of settings (`SEARCH_PRESETS`) applied to
the profile before the user's overrides: the `paper` values are the reference
implementation's defaults, `fast` and `smoke` scale them down. Smoke RobustDARTS runs
first order to stay within CPU seconds (the reference unrolls). DARTS-PT's fine-tuning
between decisions is 15 steps an epoch in `fast` and one in `smoke`, its scores a few
val batches (the reference: every val image); smoke DARTS-PT searches two-node cells.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any, Literal

from repair_core.choices import CORRUPTION_CHOICES, SEVERITY_CHOICES
from repair_core.errors import RepairInputError
from repair_core.search.settings import SearchSettings
from repair_core.train.settings import TrainSettings


@dataclass(frozen=True)
class NetSize:
    init_channels: int  # channels of the first cells; doubled at each reduction
    layers: int  # cells, reductions at 1/3 and 2/3 of depth
    auxiliary: bool = False  # auxiliary head (evaluation network only)
    partial_channels: int = 1  # PC-DARTS's K (search network only)
    edge_normalization: bool = False  # PC-DARTS's betas (search network only)
    steps: int = 4  # intermediate nodes per cell (search network only; DARTS: 4)
    multiplier: int = 4  # last nodes concatenated into a cell's output (search network only)

    def __post_init__(self) -> None:
        # Checked here too, so a bad plan is refused when the job is created, not mid-run.
        k = self.partial_channels
        if isinstance(k, bool) or not isinstance(k, int) or k < 1 or self.init_channels % k:
            raise RepairInputError(
                f"search_net.init_channels {self.init_channels} must be a multiple of "
                f"partial_channels {k} (a positive integer)"
            )
        steps, multiplier = self.steps, self.multiplier
        if isinstance(steps, bool) or not isinstance(steps, int) or not 1 <= steps <= 16:
            raise RepairInputError(f"search_net.steps must be an integer in [1, 16], got {steps}")
        if (
            isinstance(multiplier, bool)
            or not isinstance(multiplier, int)
            or not (1 <= multiplier <= steps)
        ):
            raise RepairInputError(
                f"search_net.multiplier must be an integer in [1, steps={steps}], got {multiplier}"
            )


@dataclass(frozen=True)
class DataLimits:
    search_max_images: int | None = None  # cap on D_train images fed to the search
    train_max_images: int | None = None  # cap on D_train images used for retraining
    feature_batch_size: int = 256  # images per forward pass when extracting features


@dataclass(frozen=True)
class EvaluationSettings:
    corruptions: tuple[str, ...] = CORRUPTION_CHOICES
    severities: tuple[int, ...] = SEVERITY_CHOICES
    max_images: int | None = None  # cap on test images per corruption set (seeded subset)
    batch_size: int = 256

    def __post_init__(self) -> None:
        # Checked here, so a misspelt corruption is refused when the job is created, not
        # after hours of search when the evaluation starts.
        unknown = [c for c in self.corruptions if c not in CORRUPTION_CHOICES]
        if unknown:
            raise RepairInputError(
                f"evaluation.corruptions: unknown {', '.join(map(repr, unknown))}; "
                f"choose from {', '.join(CORRUPTION_CHOICES)}"
            )
        bad = [s for s in self.severities if s not in SEVERITY_CHOICES]
        if bad:
            raise RepairInputError(
                f"evaluation.severities: {bad} not in {', '.join(map(str, SEVERITY_CHOICES))}"
            )


@dataclass(frozen=True)
class StagePlan:
    search_net: NetSize
    search: SearchSettings
    # The repaired network's size, a stated choice of the profile (the report prints it
    # beside the parameters and FLOPs of the deployed and repaired models).
    net: NetSize
    train: TrainSettings
    evaluation: EvaluationSettings = field(default_factory=EvaluationSettings)
    data: DataLimits = field(default_factory=DataLimits)


PROFILES: dict[str, StagePlan] = {
    "smoke": StagePlan(
        search_net=NetSize(init_channels=4, layers=3),
        search=SearchSettings(epochs=2, batch_size=32, steps_per_epoch=3, report_every=1),
        net=NetSize(init_channels=4, layers=3),
        train=TrainSettings(epochs=3, batch_size=32, drop_path_prob=0.0, report_every_steps=5),
        evaluation=EvaluationSettings(severities=(1, 3, 5), max_images=120, batch_size=128),
        data=DataLimits(search_max_images=256, train_max_images=1024),
    ),
    "fast": StagePlan(
        search_net=NetSize(init_channels=16, layers=5),
        search=SearchSettings(epochs=4, batch_size=96, steps_per_epoch=60, report_every=20),
        net=NetSize(init_channels=16, layers=8, auxiliary=True),
        train=TrainSettings(epochs=15, batch_size=256, lr=0.05, report_every_steps=50),
        evaluation=EvaluationSettings(max_images=2000, batch_size=512),
        data=DataLimits(search_max_images=20_000),
    ),
    "paper": StagePlan(
        search_net=NetSize(init_channels=16, layers=8),
        search=SearchSettings(epochs=20, batch_size=64),
        net=NetSize(init_channels=36, layers=20, auxiliary=True),
        train=TrainSettings(epochs=600, batch_size=96),
    ),
}

_SECTIONS = ("search_net", "search", "net", "train", "evaluation", "data")

Order = Literal["first", "second"]
_PC_DARTS: dict[str, Any] = {
    "search.lr": 0.1,
    "search.arch_lr": 6e-4,
    "search_net.partial_channels": 4,
    "search_net.edge_normalization": True,
}
_ROB_PAPER: dict[str, Any] = {
    "search.epochs": 50,
    "search.hessian_every": 2,
    "search.early_stop": True,
    "search.es_window": 5,
    "search.es_delta": 4,
    "search.es_factor": 1.3,
    "search.es_start_epoch": 10,
    "search.power_iters": 20,
}
_ROB_FAST: dict[str, Any] = {
    "search.epochs": 8,
    "search.hessian_every": 1,
    "search.early_stop": True,
    "search.es_window": 3,
    "search.es_delta": 2,
    "search.es_start_epoch": 2,
    "search.power_iters": 10,
}
_ROB_SMOKE: dict[str, Any] = {
    "search.epochs": 3,
    "search.hessian_every": 1,
    "search.early_stop": True,
    "search.es_window": 3,
    "search.es_delta": 1,
    "search.es_start_epoch": 0,
    "search.power_iters": 3,
}
# R-DARTS(L2 + DP): the tops of the paper's grids, L2 in {3, 9, 27, 81}e-4, DP in
# {0, .2, .4, .6} (it picks per benchmark; override to choose another point).
_REGULARISED: dict[str, Any] = {"search.weight_decay": 8.1e-3, "search.drop_path_prob": 0.6}

# DARTS-PT (ruocwang/darts-pt, exp_scripts/darts-proj-sota.sh): a first-order DARTS
# supernet of 50 epochs, then a decision every 5 fine-tuning epochs at lr / 10, each scored
# on the whole val set.
_PT: dict[str, Any] = {"search.projection": True}

# search choice -> profile -> dotted settings, applied before the user's overrides.
SEARCH_PRESETS: dict[str, dict[str, dict[str, Any]]] = {
    "darts-1st": {},
    "darts-2nd": {},
    "pcdarts": {
        "paper": {
            **_PC_DARTS,
            "search.epochs": 50,
            "search.batch_size": 256,
            "search.warmup_epochs": 15,
        },
        "fast": {
            **_PC_DARTS,
            "search.epochs": 6,
            "search.batch_size": 256,
            "search.steps_per_epoch": 25,
            "search.warmup_epochs": 2,
        },
        "smoke": {**_PC_DARTS, "search_net.init_channels": 8, "search.warmup_epochs": 1},
    },
    "robdarts": {"paper": _ROB_PAPER, "fast": _ROB_FAST, "smoke": _ROB_SMOKE},
    "robdarts-reg": {
        "paper": {**_ROB_PAPER, **_REGULARISED},
        "fast": {**_ROB_FAST, **_REGULARISED},
        "smoke": {**_ROB_SMOKE, **_REGULARISED},
    },
    "dartspt": {
        "paper": {**_PT, "search.epochs": 50, "search.proj_interval": 5, "search.proj_lr": 0.0025},
        "fast": {
            **_PT,
            "search.proj_interval": 1,
            "search.proj_steps_per_epoch": 15,
            "search.proj_eval_batches": 4,
        },
        "smoke": {
            **_PT,
            # Two-node cells: 6 decision points of 76 removal scores instead of 17 of 220,
            # each scoring a smaller supernet (the scores are the phase's main cost).
            "search_net.steps": 2,
            "search_net.multiplier": 2,
            "search.batch_size": 16,
            "search.proj_interval": 1,
            "search.proj_steps_per_epoch": 1,
            "search.proj_eval_batches": 1,
        },
    },
}
# search choice -> profile -> the order of the architecture gradient.
SEARCH_ORDERS: dict[str, dict[str, Order]] = {
    "darts-1st": dict.fromkeys(PROFILES, "first"),
    "darts-2nd": dict.fromkeys(PROFILES, "second"),
    "pcdarts": dict.fromkeys(PROFILES, "first"),
    "robdarts": {"paper": "second", "fast": "second", "smoke": "first"},
    "robdarts-reg": {"paper": "second", "fast": "second", "smoke": "first"},
    "dartspt": dict.fromkeys(PROFILES, "first"),
}


def build_plan(profile: str, overrides: Mapping[str, Any], *, search: str, seed: int) -> StagePlan:
    """The profile with the search preset, then `overrides` ("section.field" -> value),
    applied; order and seed set."""
    if profile not in PROFILES:
        raise RepairInputError(f"unknown profile {profile!r}; choose one of {', '.join(PROFILES)}")
    if search not in SEARCH_ORDERS:
        raise RepairInputError(
            f"unknown search {search!r}; choose one of {', '.join(SEARCH_ORDERS)}"
        )
    plan = PROFILES[profile]
    grouped: dict[str, dict[str, Any]] = {}
    for key, value in {**SEARCH_PRESETS[search].get(profile, {}), **overrides}.items():
        section, _, name = key.partition(".")
        if section not in _SECTIONS or not name:
            raise RepairInputError(
                f"override {key!r}: use 'section.field' with section one of {', '.join(_SECTIONS)}"
            )
        grouped.setdefault(section, {})[name] = value
    for section, values in grouped.items():
        plan = replace(plan, **{section: _override(getattr(plan, section), section, values)})
    order = SEARCH_ORDERS[search][profile]
    return replace(
        plan,
        search=replace(plan.search, order=order, seed=seed),
        train=replace(plan.train, seed=seed),
    )


def _override(obj: Any, section: str, values: Mapping[str, Any]) -> Any:
    known = {f.name: f for f in dataclasses.fields(obj)}
    changes: dict[str, Any] = {}
    for name, value in values.items():
        if name not in known or name in ("seed", "order"):
            allowed = ", ".join(sorted(n for n in known if n not in ("seed", "order")))
            raise RepairInputError(
                f"override '{section}.{name}' is not a setting; {section} has {allowed}"
            )
        changes[name] = _coerce(getattr(obj, name), value, f"{section}.{name}")
    try:
        return replace(obj, **changes)
    except (TypeError, ValueError) as exc:
        raise RepairInputError(f"invalid override in {section}: {exc}") from None


def _coerce(current: Any, value: Any, key: str) -> Any:
    # Overrides arrive from JSON or a command line; match the type of the default.
    if isinstance(current, bool):
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "false", "1", "0"):
            return value.lower() in ("true", "1")
    elif isinstance(current, int) or current is None:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lstrip("-").isdigit():
            return int(value)
        if current is None and isinstance(value, str) and value.lower() == "none":
            return None
    elif isinstance(current, float):
        if isinstance(value, int | float) and not isinstance(value, bool):
            return float(value)
        try:
            return float(value)
        except (TypeError, ValueError):
            pass
    elif isinstance(current, tuple):
        items = value.split(",") if isinstance(value, str) else [value]
        return tuple(type(current[0])(item) if current else item for item in items)
    elif isinstance(current, str):
        return str(value)
    raise RepairInputError(f"override {key!r}={value!r} does not fit a {type(current).__name__}")


# Every batch size of a plan: an out-of-memory retry halves them all.
BATCH_SIZE_KEYS = (
    "search.batch_size",
    "train.batch_size",
    "train.eval_batch_size",
    "evaluation.batch_size",
    "data.feature_batch_size",
)


def halved_batch_sizes(
    profile: str, overrides: Mapping[str, Any], *, search: str, seed: int
) -> dict[str, int]:
    """Overrides that halve every batch size of the plan (at least 1 each)."""
    plan = build_plan(profile, overrides, search=search, seed=seed)
    halved = {}
    for key in BATCH_SIZE_KEYS:
        section, _, name = key.partition(".")
        halved[key] = max(1, int(getattr(getattr(plan, section), name)) // 2)
    return halved
