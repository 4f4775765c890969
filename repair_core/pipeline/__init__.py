"""The repair pipeline: `repair` (one resumable repair) and `compare` (CF vs RF vs AU ...)."""

from repair_core.pipeline.config import RepairConfig
from repair_core.pipeline.labelling import LabelsNeeded, OwnerLabels, Picks
from repair_core.pipeline.repair import RepairResult, compare, repair
from repair_core.pipeline.variant import VariantResult
from repair_core.profiles import PROFILES, StagePlan, build_plan

__all__ = [
    "PROFILES",
    "LabelsNeeded",
    "OwnerLabels",
    "Picks",
    "RepairConfig",
    "RepairResult",
    "StagePlan",
    "VariantResult",
    "build_plan",
    "compare",
    "repair",
]
