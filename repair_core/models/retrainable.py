"""What the Control row and the baselines retrain: the deployed model's own architecture,
built fresh (random weights from the run's seed), whatever its family; a transfer's Control
builds it for the new dataset's input and classes.

An ONNX graph has no trainable architecture here, so its Control and baselines fall back
to the DARTS V2 genotype at the profile's network size (stated in the report's info and
in the README).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from torch import nn

from repair_core.checkpoint import save_model
from repair_core.models.registry_nets import build_registry_net
from repair_core.models.spec import DeployedModel, InputSpec
from repair_core.models.store import save_registry_model
from repair_core.search.genotype import DARTS_V2, Genotype
from repair_core.search.network import EvalNetwork

ONNX_FALLBACK = "DARTS_V2"  # the genotype an ONNX model's Control and baselines retrain


@dataclass(frozen=True)
class Architecture:
    """A trainable architecture: a DARTS genotype, or a `build(seed)` of a registry net."""

    genotype: Genotype | None
    build: Callable[[int], nn.Module] | None
    fallback: str | None = None  # why this is not the deployed model's own architecture


@dataclass(frozen=True)
class DeployedArchitecture:
    """A deployed model's architecture without its weights: what a transfer's Control
    rebuilds for another dataset."""

    family: str  # one of FAMILIES
    architecture: str = ""  # the registry name (timm, torchvision)
    genotype: Genotype | None = None  # darts only


def deployed_architecture(deployed: DeployedModel) -> Architecture:
    """The deployed model's architecture for its own input and classes."""
    own = DeployedArchitecture(deployed.family, deployed.architecture, deployed.genotype)
    return architecture_of(own, deployed.spec, deployed.num_classes)


def architecture_of(
    deployed: DeployedArchitecture, spec: InputSpec, num_classes: int
) -> Architecture:
    """`deployed` built for `spec` and `num_classes`, which may differ from the deployed
    model's own (a transfer's new dataset)."""
    if deployed.family in ("timm", "torchvision"):
        family, name = deployed.family, deployed.architecture

        def build(seed: int) -> nn.Module:
            return build_registry_net(family, name, spec, num_classes, seed=seed)

        return Architecture(None, build)
    if deployed.genotype is not None:
        return Architecture(deployed.genotype, None)
    return Architecture(
        DARTS_V2, None, f"{deployed.family} has no trainable architecture: {ONNX_FALLBACK}"
    )


def save_trained(
    path: Path, net: nn.Module, deployed: DeployedModel, extra_metadata: dict[str, str]
) -> None:
    """Save a retrained network in its family's format (DARTS checkpoint or registry)."""
    if isinstance(net, EvalNetwork):
        save_model(path, net, class_names=deployed.class_names, extra_metadata=extra_metadata)
        return
    save_registry_model(
        path,
        DeployedModel(
            net, deployed.family, deployed.architecture, deployed.spec,
            deployed.num_classes, deployed.class_names,
        ),
    )  # fmt: skip
