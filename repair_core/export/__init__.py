"""The repaired model in formats that run without this project: ONNX and TorchScript.

Pure functions: a module in, a file and an `ExportCheck` (max abs logit difference against
PyTorch on a probe batch) out; a failed check raises `ExportError` and writes nothing.
"""

from repair_core.export.check import (
    INPUT_NAME,
    OUTPUT_NAME,
    TOLERANCE,
    ExportCheck,
    ExportError,
    probe_batch,
)
from repair_core.export.onnx import export_onnx
from repair_core.export.torchscript import export_torchscript

__all__ = [
    "INPUT_NAME",
    "OUTPUT_NAME",
    "TOLERANCE",
    "ExportCheck",
    "ExportError",
    "export_onnx",
    "export_torchscript",
    "probe_batch",
]
