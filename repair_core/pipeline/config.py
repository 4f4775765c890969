"""What a repair is asked to do: the user-facing knobs, validated once."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

from repair_core import choices
from repair_core.errors import RepairInputError

OverrideValue = int | float | bool | str

VARIANT_PREFIXES = choices.VARIANT_PREFIXES

# The control retrains phi0's own recipe (genotype, sizes, epochs); with phi0's seed it would
# reproduce phi0 bit for bit, so it trains with this offset added to the config's seed.
CONTROL_SEED_OFFSET = 1000


@dataclass(frozen=True)
class RepairConfig:
    # The choice fields take one of `choices.CHOICES[field]`; their defaults are shared.
    selection: str = choices.DEFAULT_SELECTION  # "augment" is the AU baseline
    budget: int = 1000  # B: size of the core failure set
    search: str = choices.DEFAULT_SEARCH  # the search strategy, see profiles.SEARCH_PRESETS
    retrain: str = choices.DEFAULT_RETRAIN  # with-failures: the "E" variant
    iterations: int = 1  # search+retrain rounds, each continuing the previous search (§4.7)
    seed: int = 0  # seeds every stage
    profile: str = choices.DEFAULT_PROFILE  # sizes and epochs, see profiles.PROFILES
    # Dotted overrides of the profile, e.g. {"search.epochs": 2, "train.batch_size": 64}.
    overrides: Mapping[str, OverrideValue] = field(default_factory=dict)
    # Label of the corruption the failures come from; names the "<name>_fail" column.
    failure_name: str = "failures"
    # A baseline retrains the deployed architecture without a search ("control": the standard
    # recipe, another seed, no failure guidance).
    baseline: str = choices.DEFAULT_BASELINE
    # Also train and score the Control row (the gain is stated against it).
    control: bool = False
    # Picks the owner left unlabeled: "replace" (the next K-center picks, asked again) or
    # "drop" (C gets smaller); see pipeline/labelling.py.
    unlabeled_picks: str = choices.DEFAULT_UNLABELED_PICKS

    def __post_init__(self) -> None:
        for name, (names, _) in choices.CHOICES.items():
            _choice(name, getattr(self, name), names)
        _choice("baseline", self.baseline, choices.BASELINE_CHOICES)
        if not isinstance(self.control, bool):
            raise RepairInputError("config.control must be true or false")
        for name, low, high in (("budget", 1, 10_000_000), ("iterations", 1, 3)):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
                raise RepairInputError(f"config.{name} must be an integer in [{low}, {high}]")
        if isinstance(self.seed, bool) or not isinstance(self.seed, int) or self.seed < 0:
            raise RepairInputError("config.seed must be a non-negative integer")
        if not isinstance(self.overrides, Mapping):
            raise RepairInputError("config.overrides must be a mapping of dotted keys to values")
        for key, value in self.overrides.items():
            if not isinstance(key, str) or not isinstance(value, int | float | bool | str):
                raise RepairInputError(
                    f"config.overrides[{key!r}] must be a number, bool or string"
                )
        object.__setattr__(self, "overrides", dict(self.overrides))
        if self.search in choices.ONE_ITERATION_SEARCHES and self.iterations != 1:
            raise RepairInputError(
                f"config.iterations must be 1 for the {self.search} search (its selection "
                "phase discretises the supernet, so there is no search to continue)"
            )
        if self.baseline != choices.DEFAULT_BASELINE and self.iterations != 1:
            raise RepairInputError(
                f"config.iterations must be 1 for the {self.baseline} baseline (it has no search)"
            )

    @property
    def variant_name(self) -> str:
        """The paper's name for this configuration, e.g. CF-DARTS, RF-PCDARTSE, Control."""
        return choices.variant_name(self.selection, self.retrain, self.baseline, self.search)

    @property
    def uses_failures(self) -> bool:
        """Whether this variant selects a core set C from the failures (and so holds C out):
        every search, every E variant, and FourierStyle (C is its style bank)."""
        return (
            self.baseline in (choices.DEFAULT_BASELINE, "fourier-style")
            or self.retrain == "with-failures"
        )

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "overrides": dict(self.overrides)}

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)

    def as_variant(self, name: str) -> RepairConfig:
        """This config turned into the variant `name` (CF-DARTS, RF-PCDARTSE, CutMix, ...,
        `choices.parse_variant`): its sizes, seed and profile, that variant's choices."""
        try:
            fields = choices.parse_variant(name)
        except ValueError as exc:
            raise RepairInputError(str(exc)) from None
        return RepairConfig.from_dict({**self.to_dict(), **fields})

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> RepairConfig:
        unknown = sorted(set(data) - set(cls.__dataclass_fields__))
        if unknown:
            raise RepairInputError(f"repair config has unknown keys {unknown}")
        return cls(**dict(data))


def _choice(name: str, value: object, names: tuple[str, ...]) -> None:
    if value not in names:
        raise RepairInputError(f"config.{name} is {value!r}; choose one of {', '.join(names)}")
