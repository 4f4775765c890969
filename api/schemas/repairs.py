"""Repair job requests and responses, and the repair config the worker receives."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import TYPE_CHECKING, Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationInfo,
    field_validator,
    model_validator,
)

from api.db.models import JobStatus
from repair_core import choices
from repair_core.errors import RepairInputError
from repair_core.profiles import build_plan

# The choice fields are Literals built from repair_core's tuples (torch-free), so the
# OpenAPI schema lists exactly the names the core accepts. Type checkers cannot read a
# Literal built at runtime; to them the fields are plain strings.
if TYPE_CHECKING:
    SelectionName = str
    SearchName = str
    RetrainName = str
    ProfileName = str
    ModelFormatName = str
    UnlabeledPicksName = str
    JobKindName = str
else:
    SelectionName = Literal[choices.SELECTION_CHOICES]
    SearchName = Literal[choices.SEARCH_CHOICES]
    RetrainName = Literal[choices.RETRAIN_CHOICES]
    ProfileName = Literal[choices.PROFILE_CHOICES]
    ModelFormatName = Literal[choices.MODEL_FORMAT_CHOICES]
    UnlabeledPicksName = Literal[choices.UNLABELED_PICKS_CHOICES]
    JobKindName = Literal["repair", "transfer"]

# Variants one job may compare (each trains a network of its own).
MAX_VARIANTS = 8

OverrideKey = Annotated[
    str, StringConstraints(pattern=r"^[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)*$", max_length=64)
]
OverrideValue = int | float | bool | Annotated[str, StringConstraints(max_length=256)]


class RepairConfig(BaseModel):
    """What the repair does; defaults follow the paper (K-center, B = 1000, first order)."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "selection": "kcenter",
                    "budget": 1000,
                    "search": "darts-1st",
                    "retrain": "clean",
                    "iterations": 1,
                    "seed": 0,
                    "profile": "fast",
                    "overrides": {"search.epochs": 5},
                }
            ]
        },
    )

    selection: SelectionName = choices.DEFAULT_SELECTION
    budget: int = Field(default=1000, ge=1, le=1_000_000, description="core failure set size B")
    search: SearchName = choices.DEFAULT_SEARCH
    retrain: RetrainName = choices.DEFAULT_RETRAIN
    iterations: int = Field(default=1, ge=1, le=3, description="search + retrain rounds")
    seed: int = Field(default=0, ge=0, le=2**63 - 1)
    profile: ProfileName = choices.DEFAULT_PROFILE
    overrides: dict[OverrideKey, OverrideValue] = Field(
        default_factory=dict,
        max_length=32,
        description='per-run settings, e.g. {"search.epochs": 5, "train.epochs": 20}',
    )
    # Picked failures the owner leaves unlabeled: replaced by the next K-center picks
    # (asked again) or dropped from C.
    unlabeled_picks: UnlabeledPicksName = choices.DEFAULT_UNLABELED_PICKS

    @field_validator("iterations")
    @classmethod
    def _one_iteration_for_selection_searches(cls, value: int, info: ValidationInfo) -> int:
        # Refused here (422) rather than by the worker after the job was queued.
        search = info.data.get("search")
        if search in choices.ONE_ITERATION_SEARCHES and value != 1:
            raise ValueError(
                f"iterations must be 1 for the {search} search: its selection phase "
                "discretises the supernet, so there is no search to continue"
            )
        return value

    @model_validator(mode="after")
    def _overrides_fit_the_profile(self) -> RepairConfig:
        check_overrides(self.profile, self.overrides, search=self.search, seed=self.seed)
        return self


def check_overrides(
    profile: str, overrides: dict[str, Any], *, search: str = choices.DEFAULT_SEARCH, seed: int = 0
) -> None:
    """ValueError naming the bad key or value (and the valid keys) unless `overrides` build
    a plan of `profile`: refused when the job is created, not by the worker after queueing.
    The profiles are torch-free config dataclasses, so this runs in the API process."""
    try:
        build_plan(profile, overrides, search=search, seed=seed)
    except RepairInputError as exc:
        raise ValueError(f"overrides: {exc}") from None


class RepairCreate(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "model_id": "5c1f1e0a-2b6d-4d7e-8a39-0c3b4f5e6d7a",
                    "failure_batch_ids": None,
                    "config": {"budget": 1000, "profile": "fast"},
                }
            ]
        },
    )

    model_id: uuid.UUID
    failure_batch_ids: list[uuid.UUID] | None = Field(
        None, max_length=100, description="default: every failure batch of the model"
    )
    config: RepairConfig = Field(default_factory=lambda: RepairConfig())
    variants: list[Annotated[str, StringConstraints(max_length=64)]] | None = Field(
        None,
        min_length=1,
        max_length=MAX_VARIANTS,
        description="variants to compare in one report with the Control row, e.g. "
        '["CF-DARTS", "RF-DARTSE", "CutMix"]; the first is the primary (its model is the '
        "default download); each takes `config` and sets its own selection, retrain, "
        "search and baseline. Baselines: AugMix, CutMix, FourierStyle, Control ([-E])",
    )

    @model_validator(mode="after")
    def _known_variants(self) -> RepairCreate:
        # Refused here (422 naming the entry) rather than by the worker after queueing.
        names = self.variants or []
        for k, name in enumerate(names):
            try:
                fields = choices.parse_variant(name)
            except ValueError as exc:
                raise ValueError(f"variants[{k}]: {exc}") from None
            if names.index(name) != k:
                raise ValueError(f"variants[{k}]: {name!r} is listed twice")
            search = fields.get("search", self.config.search)
            baseline = fields["baseline"]
            if search != self.config.search:
                # Another search applies its own preset under the same overrides.
                try:
                    check_overrides(
                        self.config.profile, self.config.overrides, search=search,
                        seed=self.config.seed,
                    )  # fmt: skip
                except ValueError as exc:
                    raise ValueError(f"variants[{k}] ({name}): {exc}") from None
            if self.config.iterations != 1 and (
                baseline != choices.DEFAULT_BASELINE or search in choices.ONE_ITERATION_SEARCHES
            ):
                why = (
                    "has no search"
                    if baseline != choices.DEFAULT_BASELINE
                    else "discretises its supernet"
                )
                raise ValueError(
                    f"variants[{k}]: {name} runs one iteration (it {why}); "
                    "set config.iterations to 1"
                )
        return self


class TransferCreate(BaseModel):
    """Retrain a succeeded job's genotype on another dataset (docs/transfer.md)."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [{"dataset_id": "3e4f5a6b-7c8d-4e9f-a0b1-c2d3e4f5a6b7", "profile": "fast"}]
        },
    )

    dataset_id: uuid.UUID = Field(description="the dataset to retrain and evaluate on")
    profile: ProfileName | None = Field(None, description="default: the source job's profile")
    overrides: dict[OverrideKey, OverrideValue] = Field(
        default_factory=dict,
        max_length=32,
        description='per-run settings, e.g. {"train.epochs": 20}',
    )


class ModelSize(BaseModel):
    params: int = Field(description="parameters")
    flops: int = Field(description="FLOPs of one forward pass on one image (a MAC is 2)")


class ModelSizes(BaseModel):
    """The deployed and the repaired model side by side."""

    deployed: ModelSize
    repaired: ModelSize


class RepairPublic(BaseModel):
    model_config = ConfigDict(
        from_attributes=True,
        json_schema_extra={
            "examples": [
                {
                    "id": "9a8b7c6d-5e4f-4a3b-8c2d-1e0f9a8b7c6d",
                    "model_id": "5c1f1e0a-2b6d-4d7e-8a39-0c3b4f5e6d7a",
                    "failure_batch_ids": ["7d2b9c1e-4f3a-4b8c-9d0e-1a2b3c4d5e6f"],
                    "config": {"selection": "kcenter", "budget": 1000},
                    "status": "running",
                    "stage": "searching",
                    "progress": 42.5,
                    "step": 8,
                    "total": 20,
                    "eta_seconds": 5400.0,
                    "attempts": 1,
                    "max_attempts": 3,
                    "handoffs": 0,
                    "oom_retries": 0,
                    "live_metrics": {"loss": 0.71, "accuracy": 0.78},
                    "metrics": {},
                    "genotype": None,
                    "error": None,
                    "error_type": None,
                    "timings": {"confirming": 3.1, "selecting": 12.4},
                    "result_sha256": None,
                    "created_at": "2026-11-26T10:15:00Z",
                    "started_at": "2026-11-26T10:15:02Z",
                    "finished_at": None,
                    "updated_at": "2026-11-26T11:02:40Z",
                }
            ]
        },
    )

    id: uuid.UUID
    kind: JobKindName = Field(
        "repair", description="a repair, or a transfer of a repair's genotype to a dataset"
    )
    source_job_id: uuid.UUID | None = Field(None, description="a transfer's source job")
    dataset_id: uuid.UUID | None = Field(None, description="the dataset a transfer trains on")
    model_id: uuid.UUID
    failure_batch_ids: list[uuid.UUID]
    config: dict[str, Any]
    status: JobStatus
    stage: str | None
    progress: float = Field(description="percent, 0-100")
    step: int
    total: int
    eta_seconds: float | None
    attempts: int = Field(description="failed attempts plus the running one")
    max_attempts: int
    handoffs: int = Field(
        description="runs handed on by a deploy, an outage or the soft time limit "
        "(they spend no attempt)"
    )
    oom_retries: int = Field(description="1 once it was retried with half its batch sizes")
    live_metrics: dict[str, float] = Field(description="latest numbers of the running stage")
    metrics: dict[str, float] = Field(description="final evaluation numbers")
    genotype: dict[str, Any] | None = Field(description="the architecture found (last iteration)")
    error: str | None
    error_type: str | None
    timings: dict[str, float]
    result_sha256: str | None
    model_formats: list[ModelFormatName] = Field(
        default_factory=list,
        description="formats GET /v1/repairs/{id}/model?format= serves (once succeeded)",
    )
    model_size: ModelSizes | None = Field(
        None, description="parameters and FLOPs per image, deployed vs repaired"
    )
    export_max_abs_diff: dict[ModelFormatName, float] = Field(
        default_factory=dict,
        description="per export: max abs logit difference against PyTorch on a probe batch",
    )
    clean_accuracy_dropped: bool | None = Field(
        None,
        description="true when the repaired model's clean accuracy is more than 1 point "
        "below the deployed model's (the report says so in words)",
    )
    # Label on demand (docs/label-on-demand.md).
    picks_to_label: int = Field(0, description="picks waiting for labels (awaiting_labels)")
    label_rounds: int = Field(0, description="label uploads taken so far")
    labels_requested_at: datetime | None = None
    failures_confirmed: int | None = Field(
        None, description="labelled failures the deployed model was seen to misclassify"
    )
    failures_on_trust: int | None = Field(
        None, description="unlabeled failures, taken on trust as misclassified"
    )
    figures: list[str] = Field(
        default_factory=list,
        description="report figures this job has, as `/v1/repairs/{id}/figures/<name>` names",
    )
    variants: list[str] = Field(
        default_factory=list, description="the variants compared (the first is the primary)"
    )
    variant_downloads: dict[str, list[ModelFormatName]] = Field(
        default_factory=dict,
        description="variant -> formats GET /v1/repairs/{id}/model?variant=&format= serves "
        "(once succeeded): the primary in every exported format, the others (and the "
        "Control) as safetensors",
    )
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    updated_at: datetime


class RepairsPublic(BaseModel):
    data: list[RepairPublic]
    count: int = Field(description="jobs matching the filter, over all pages")
    limit: int
    offset: int


class PickPublic(BaseModel):
    id: int = Field(description="the failure's row in the job's failure batches; stable")
    file: str = Field(description="its file name in the picks archive")
    predicted: int = Field(description="the deployed model's class, a hint")
    predicted_name: str
    confidence: float = Field(description="the model's softmax probability of that class")


class PicksPublic(BaseModel):
    job_id: uuid.UUID
    round: int = Field(description="1 for the first request, 2 when replacements are asked")
    picks: list[PickPublic]
