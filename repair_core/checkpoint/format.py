"""The checkpoint format: one self-describing `.safetensors` file per model.

Its metadata carries the format name and version, the genotype, the network config,
the class names and the input normalisation; its tensors are the network's state dict.
Plain PyTorch state dicts (`.pt`) are accepted only through a weights-only load.
Every reader here treats the file as hostile: bad input raises `RepairInputError`
(`UnsafeCheckpointError` for pickles that would run code), never anything else.
"""

from __future__ import annotations

import json
import pickle
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from repair_core.atomic import atomic_path
from repair_core.checkpoint.header import read_safetensors_header
from repair_core.checkpoint.pickle_scan import code_globals, module_globals, referenced_globals
from repair_core.errors import RepairInputError, UnsafeCheckpointError
from repair_core.search.genotype import Genotype
from repair_core.search.network import EvalNetwork, NetworkConfig

FORMAT_NAME = "repair-core-checkpoint"
FORMAT_VERSION = "1"
_RESERVED = (
    "format",
    "format_version",
    "genotype",
    "network_config",
    "class_names",
    "normalization",
)


@dataclass(frozen=True)
class CheckpointInfo:
    """What a checkpoint declares, read from its header alone."""

    format_version: str
    genotype: Genotype
    config: NetworkConfig
    class_names: tuple[str, ...]
    extra_metadata: Mapping[str, str] = field(default_factory=dict)
    tensor_count: int = 0
    parameter_count: int = 0  # elements over all tensors (BN statistics included)


@dataclass(frozen=True)
class LoadedModel:
    model: EvalNetwork  # in eval mode
    genotype: Genotype
    config: NetworkConfig
    class_names: tuple[str, ...]
    extra_metadata: Mapping[str, str] = field(default_factory=dict)


def _check_class_names(names: Sequence[str], num_classes: int) -> tuple[str, ...]:
    if isinstance(names, str) or not all(isinstance(n, str) for n in names):
        raise RepairInputError("class_names must be a list of strings")
    if len(names) != num_classes:
        raise RepairInputError(f"{len(names)} class names for a network with {num_classes} classes")
    return tuple(names)


def save_model(
    path: Path | str,
    model: EvalNetwork,
    *,
    class_names: Sequence[str],
    extra_metadata: Mapping[str, str] | None = None,
) -> None:
    """Write `model` to one `.safetensors` file, atomically (see `repair_core.atomic`)."""
    path = Path(path)
    names = _check_class_names(class_names, model.config.num_classes)
    extra = dict(extra_metadata or {})
    clash = [k for k in extra if k in _RESERVED]
    if clash or not all(isinstance(k, str) and isinstance(v, str) for k, v in extra.items()):
        raise RepairInputError(
            f"extra_metadata must map str to str, without keys {list(_RESERVED)}"
        )
    metadata = {
        **extra,
        "format": FORMAT_NAME,
        "format_version": FORMAT_VERSION,
        "genotype": model.genotype.to_json(),
        "network_config": model.config.to_json(),
        "class_names": json.dumps(list(names)),
        "normalization": json.dumps({"mean": model.config.mean, "std": model.config.std}),
    }
    tensors = {k: v.detach().to("cpu").contiguous() for k, v in model.state_dict().items()}
    with atomic_path(path) as tmp:
        save_file(tensors, tmp, metadata=metadata)


def inspect_checkpoint(path: Path | str) -> CheckpointInfo:
    """Read and validate a checkpoint's header and metadata; loads no tensor data."""
    header = read_safetensors_header(Path(path))
    meta = header.metadata
    if meta.get("format") != FORMAT_NAME:
        raise RepairInputError(
            f"{path}: not a {FORMAT_NAME} file (metadata format is {meta.get('format')!r}); "
            "plain state dicts need a genotype and config, or a timm / torchvision "
            "family and architecture name"
        )
    if meta.get("format_version") != FORMAT_VERSION:
        raise RepairInputError(
            f"{path}: checkpoint version {meta.get('format_version')!r} is not supported "
            f"(this build reads {FORMAT_VERSION})"
        )
    missing = [k for k in _RESERVED if k not in meta]
    if missing:
        raise RepairInputError(f"{path}: checkpoint metadata lacks {missing}")
    genotype = Genotype.from_json(meta["genotype"])
    config = NetworkConfig.from_json(meta["network_config"])
    try:
        names = json.loads(meta["class_names"])
    except ValueError:
        raise RepairInputError(f"{path}: class_names metadata is not JSON") from None
    if not isinstance(names, list):
        raise RepairInputError(f"{path}: class_names metadata must be a JSON list")
    return CheckpointInfo(
        format_version=meta["format_version"],
        genotype=genotype,
        config=config,
        class_names=_check_class_names(names, config.num_classes),
        extra_metadata={k: v for k, v in meta.items() if k not in _RESERVED},
        tensor_count=len(header.tensors),
        parameter_count=sum(t.numel for t in header.tensors.values()),
    )


def load_model(path: Path | str, device: torch.device | str = "cpu") -> LoadedModel:
    """Rebuild the network a checkpoint describes, with its weights, in eval mode."""
    info = inspect_checkpoint(path)
    try:
        tensors = load_file(str(path), device="cpu")
    except (SafetensorError, OSError, ValueError, RuntimeError) as exc:
        raise RepairInputError(f"{path}: safetensors data cannot be read: {exc}") from None
    model = EvalNetwork(info.genotype, info.config)
    load_weights(model, tensors, source=str(path))
    model.to(device).eval()
    return LoadedModel(model, info.genotype, info.config, info.class_names, info.extra_metadata)


def load_state_dict_checkpoint(
    path: Path | str,
    genotype: Genotype,
    config: NetworkConfig,
    *,
    class_names: Sequence[str] | None = None,
    device: torch.device | str = "cpu",
) -> LoadedModel:
    """Load a plain PyTorch state dict (`.pt`) for the declared architecture.

    Only `torch.load(weights_only=True)`: a pickle that would run code, or a whole
    pickled model, is refused with `UnsafeCheckpointError` before anything executes.
    """
    path = Path(path)
    names = _check_class_names(
        class_names or [str(i) for i in range(config.num_classes)], config.num_classes
    )
    state = read_state_dict(path, "pt")
    model = EvalNetwork(genotype, config)
    load_weights(model, state, source=str(path))
    model.to(device).eval()
    return LoadedModel(model, genotype, config, names)


def read_state_dict(path: Path | str, kind: str) -> dict[str, torch.Tensor]:
    """The tensors of a plain state dict: `kind` "safetensors" (any metadata), or "pt" read
    only by `torch.load(weights_only=True)`, a pickle that would run code refused first."""
    path = Path(path)
    if kind == "safetensors":
        read_safetensors_header(path)  # refuses hostile headers before the library parses
        try:
            return load_file(str(path), device="cpu")
        except (SafetensorError, OSError, ValueError, RuntimeError) as exc:
            raise RepairInputError(f"{path.name}: safetensors data cannot be read: {exc}") from None
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError:
        raise UnsafeCheckpointError(_refusal(path)) from None
    except FileNotFoundError:
        raise RepairInputError(f"{path}: no such checkpoint file") from None
    except Exception as exc:  # torch raises many kinds for corrupt zips and streams
        raise RepairInputError(f"{path}: not a readable PyTorch checkpoint: {exc}") from None
    return _find_state_dict(obj, path)


def _refusal(path: Path) -> str:
    found = referenced_globals(path)
    code = code_globals(found)
    if code:
        return (
            f"{path.name} was refused: its pickle tries to run code ({', '.join(code[:5])}). "
            "Nothing was executed. Upload a state_dict or safetensors."
        )
    modules = module_globals(found)
    if modules:
        return (
            f"{path.name} is a pickled model object ({', '.join(modules[:3])}), not weights: "
            "upload a state_dict or safetensors"
        )
    return (
        f"{path.name} was refused: it holds objects a weights-only load does not allow. "
        "Upload a state_dict or safetensors."
    )


def _find_state_dict(obj: object, path: Path) -> dict[str, torch.Tensor]:
    # Training scripts often wrap the weights: {"state_dict": ...} or {"model": ...}.
    if isinstance(obj, Mapping):
        for key in ("state_dict", "model_state_dict", "model"):
            inner = obj.get(key)
            if (
                isinstance(inner, Mapping)
                and inner
                and all(isinstance(v, torch.Tensor) for v in inner.values())
            ):
                obj = inner
                break
    if not isinstance(obj, Mapping) or not all(
        isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in obj.items()
    ):
        raise RepairInputError(
            f"{path.name} is not a state dict (a mapping of names to tensors): "
            "upload a state_dict or safetensors"
        )
    state = dict(obj)
    if state and all(k.startswith("module.") for k in state):  # saved from DataParallel
        state = {k.removeprefix("module."): v for k, v in state.items()}
    return state


def load_weights(model: torch.nn.Module, state: Mapping[str, torch.Tensor], *, source: str) -> None:
    """Check names, shapes and values against `model`, then load (strict)."""
    expected = model.state_dict()
    missing = [k for k in expected if k not in state]
    unexpected = sorted(k for k in state if k not in expected)
    wrong = [
        f"{k}: {tuple(state[k].shape)} != {tuple(v.shape)}"
        for k, v in expected.items()
        if k in state and state[k].shape != v.shape
    ]
    if missing or unexpected or wrong:
        parts = [
            f"{label} {len(items)} {items[:5]}{' ...' if len(items) > 5 else ''}"
            for label, items in (("missing", missing), ("unexpected", unexpected), ("shape", wrong))
            if items
        ]
        raise RepairInputError(
            f"{source}: weights do not match the declared architecture: " + "; ".join(parts)
        )
    bad_type = [
        k for k, v in expected.items() if v.is_floating_point() != state[k].is_floating_point()
    ]
    if bad_type:
        raise RepairInputError(f"{source}: tensors with the wrong kind of dtype: {bad_type[:10]}")
    bad = [
        k for k, v in state.items() if v.is_floating_point() and not bool(torch.isfinite(v).all())
    ]
    if bad:
        raise RepairInputError(f"{source}: NaN or Inf in {bad[:10]}")
    model.load_state_dict(state, strict=True)
