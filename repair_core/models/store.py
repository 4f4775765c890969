"""Deployed models on disk, one file each, self-describing, for every family.

- darts: the checkpoint format of `repair_core.checkpoint` (genotype, config, classes);
- timm / torchvision: `.safetensors` whose metadata names the family, the registry name,
  the input spec and the classes, with the network's state dict as tensors;
- onnx: the prepared graph (`onnx_net.prepare_onnx`) with the same facts as a JSON
  metadata entry.

`load_deployed` tells them apart by suffix and metadata; it reads files this project
wrote after validating the upload.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import torch
from safetensors.torch import save_file

from repair_core.atomic import atomic_path
from repair_core.checkpoint import LoadedModel, load_model, load_weights, read_state_dict
from repair_core.checkpoint.format import FORMAT_NAME
from repair_core.checkpoint.header import read_safetensors_header
from repair_core.errors import RepairInputError
from repair_core.models.onnx_net import OnnxNet, PreparedOnnx
from repair_core.models.registry_nets import build_registry_net
from repair_core.models.spec import DeployedModel, InputSpec

DEPLOYED_FORMAT = "repair-core-deployed"
DEPLOYED_VERSION = "1"
ONNX_METADATA_KEY = "repair_core"


def from_loaded(loaded: LoadedModel) -> DeployedModel:
    """A DARTS checkpoint as a deployed model."""
    c = loaded.config
    spec = InputSpec(c.in_channels, c.image_size, c.width, c.mean, c.std)
    return DeployedModel(
        loaded.model, "darts", "", spec, c.num_classes, loaded.class_names, loaded.genotype
    )


def as_deployed(model: LoadedModel | DeployedModel) -> DeployedModel:
    return model if isinstance(model, DeployedModel) else from_loaded(model)


def save_registry_model(path: Path | str, deployed: DeployedModel) -> None:
    """Write a timm / torchvision deployed model (its inner network's weights), atomically."""
    if deployed.family not in ("timm", "torchvision"):
        raise RepairInputError(f"save_registry_model: not a registry family: {deployed.family}")
    net = getattr(deployed.model, "net")  # noqa: B009 (TimmNet and TorchvisionNet hold `net`)
    metadata = {
        "format": DEPLOYED_FORMAT,
        "format_version": DEPLOYED_VERSION,
        "family": deployed.family,
        "architecture": deployed.architecture,
        "num_classes": str(deployed.num_classes),
        "input_spec": json.dumps(deployed.spec.to_dict()),
        "class_names": json.dumps(list(deployed.class_names)),
    }
    tensors = {k: v.detach().to("cpu").contiguous() for k, v in net.state_dict().items()}
    with atomic_path(Path(path)) as tmp:
        save_file(tensors, tmp, metadata=metadata)


def registry_model(
    family: str,
    architecture: str,
    spec: InputSpec,
    class_names: Sequence[str],
    state: dict[str, torch.Tensor] | None = None,
    *,
    seed: int | None = None,
    source: str = "weights",
) -> DeployedModel:
    """A timm / torchvision deployed model, fresh (seeded) or with `state` loaded strictly."""
    net = build_registry_net(family, architecture, spec, len(class_names), seed=seed)
    if state is not None:
        inner = getattr(net, "net")  # noqa: B009 (TimmNet and TorchvisionNet hold `net`)
        _check_class_count(inner, state, len(class_names), source)
        load_weights(inner, state, source=source)
    return DeployedModel(
        net.eval(), family, architecture, spec, len(class_names), tuple(class_names)
    )


def _check_class_count(
    net: torch.nn.Module, state: dict[str, torch.Tensor], num_classes: int, source: str
) -> None:
    """Name a wrong class count as such, not as a shape mismatch among many."""
    heads = [name for name, m in net.named_modules() if isinstance(m, torch.nn.Linear)]
    if not heads:
        return
    weight = state.get(f"{heads[-1]}.weight")
    if weight is not None and weight.dim() == 2 and weight.shape[0] != num_classes:
        raise RepairInputError(
            f"{source}: the classifier ({heads[-1]}) has {weight.shape[0]} outputs but the "
            f"dataset has {num_classes} classes"
        )


def save_onnx_model(
    path: Path | str, prepared: PreparedOnnx, spec: InputSpec, class_names: Sequence[str]
) -> None:
    import onnx

    model = onnx.load_model_from_string(prepared.data)
    facts = {
        "input_spec": spec.to_dict(),
        "class_names": list(class_names),
        "input_name": prepared.input_name,
        "logits_name": prepared.logits_name,
        "features_name": prepared.features_name,
        "params": prepared.params,
    }
    entry = model.metadata_props.add()
    entry.key, entry.value = ONNX_METADATA_KEY, json.dumps(facts)
    with atomic_path(Path(path)) as tmp:
        Path(tmp).write_bytes(model.SerializeToString())


def load_deployed(path: Path | str, device: torch.device | str = "cpu") -> DeployedModel:
    """The deployed model of any family stored at `path`, in eval mode."""
    path = Path(path)
    if path.suffix == ".onnx":
        return _load_onnx(path)
    meta = read_safetensors_header(path).metadata
    if meta.get("format") == FORMAT_NAME:
        return from_loaded(load_model(path, device=device))
    if meta.get("format") != DEPLOYED_FORMAT or meta.get("format_version") != DEPLOYED_VERSION:
        raise RepairInputError(f"{path.name}: not a deployed model this build reads")
    deployed = registry_model(
        meta["family"],
        meta["architecture"],
        InputSpec.from_dict(json.loads(meta["input_spec"])),
        json.loads(meta["class_names"]),
        read_state_dict(path, "safetensors"),
        source=path.name,
    )
    deployed.model.to(device)
    return deployed


def _load_onnx(path: Path) -> DeployedModel:
    import onnx

    data = path.read_bytes()
    props = {p.key: p.value for p in onnx.load_model_from_string(data).metadata_props}
    if ONNX_METADATA_KEY not in props:
        raise RepairInputError(f"{path.name}: an ONNX file this project did not prepare")
    facts = json.loads(props[ONNX_METADATA_KEY])
    spec = InputSpec.from_dict(facts["input_spec"])
    prepared = PreparedOnnx(
        data, facts["input_name"], facts["logits_name"], facts["features_name"], facts["params"]
    )
    names = tuple(facts["class_names"])
    return DeployedModel(OnnxNet(prepared, spec).eval(), "onnx", "", spec, len(names), names)
