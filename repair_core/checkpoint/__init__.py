"""Model checkpoints: the self-describing `.safetensors` format (`format`), the safe header
reader it validates with (`header`), and the pickle scan that words a refused `.pt` upload
(`pickle_scan`)."""

from repair_core.checkpoint.format import (
    CheckpointInfo,
    LoadedModel,
    inspect_checkpoint,
    load_model,
    load_state_dict_checkpoint,
    load_weights,
    read_state_dict,
    save_model,
)

__all__ = [
    "CheckpointInfo",
    "LoadedModel",
    "inspect_checkpoint",
    "load_model",
    "load_state_dict_checkpoint",
    "load_weights",
    "read_state_dict",
    "save_model",
]
