"""Deployed-model families (darts, timm, torchvision, onnx) behind one interface.

A `DeployedModel` holds an nn.Module with `forward` (logits) and `features` (the final
classifier's input) on float images in [0, 1], its `InputSpec` and its classes. Built by
name from a registry (`registry_nets`), from a DARTS checkpoint (`store.from_loaded`), or
from a prepared ONNX graph (`onnx_net`); stored and read back by `store`; sized by `stats`.
"""

from repair_core.models.spec import (
    FAMILIES,
    TRAINABLE_FAMILIES,
    DeployedModel,
    InputSpec,
    check_family,
)
from repair_core.models.stats import ModelStats, model_stats
from repair_core.models.store import as_deployed, load_deployed

__all__ = [
    "FAMILIES",
    "TRAINABLE_FAMILIES",
    "DeployedModel",
    "InputSpec",
    "ModelStats",
    "as_deployed",
    "check_family",
    "load_deployed",
    "model_stats",
]
