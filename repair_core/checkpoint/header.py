"""Read and check a `.safetensors` header before any tensor data is touched.

The format: 8 bytes little-endian header length N, N bytes of JSON
(`{name: {dtype, shape, data_offsets}, "__metadata__": {str: str}}`), then the data.
Hostile files (header longer than the file, huge header, duplicate keys, overlapping or
out-of-range offsets, sizes that disagree with shapes) fail here with a clear message.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from repair_core.errors import RepairInputError

MAX_HEADER_BYTES = 100 * 1024 * 1024  # the safetensors library's own limit
MAX_TENSORS = 100_000
DTYPE_BYTES = {
    "BOOL": 1, "U8": 1, "I8": 1, "F8_E5M2": 1, "F8_E4M3": 1,
    "I16": 2, "U16": 2, "F16": 2, "BF16": 2,
    "I32": 4, "U32": 4, "F32": 4,
    "I64": 8, "U64": 8, "F64": 8,
}  # fmt: skip


@dataclass(frozen=True)
class TensorEntry:
    dtype: str
    shape: tuple[int, ...]
    begin: int  # byte offsets into the data section
    end: int

    @property
    def numel(self) -> int:
        return math.prod(self.shape)


@dataclass(frozen=True)
class SafetensorsHeader:
    metadata: dict[str, str]
    tensors: dict[str, TensorEntry]
    data_bytes: int


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    keys = [k for k, _ in pairs]
    if len(keys) != len(set(keys)):
        dupes = sorted({k for k in keys if keys.count(k) > 1})
        raise RepairInputError(f"safetensors header repeats keys {dupes[:5]}")
    return dict(pairs)


def _entry(name: str, raw: Any, data_bytes: int) -> TensorEntry:
    if not isinstance(raw, dict) or set(raw) != {"dtype", "shape", "data_offsets"}:
        raise RepairInputError(f"safetensors entry {name!r} must have dtype, shape, data_offsets")
    dtype, shape, offsets = raw["dtype"], raw["shape"], raw["data_offsets"]
    if dtype not in DTYPE_BYTES:
        raise RepairInputError(f"safetensors entry {name!r}: unknown dtype {dtype!r}")
    ints = (list, tuple)
    if not isinstance(shape, ints) or not all(
        isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in shape
    ):
        raise RepairInputError(f"safetensors entry {name!r}: bad shape {shape!r}")
    if (
        not isinstance(offsets, ints)
        or len(offsets) != 2
        or not all(isinstance(o, int) and not isinstance(o, bool) for o in offsets)
        or not 0 <= offsets[0] <= offsets[1] <= data_bytes
    ):
        raise RepairInputError(
            f"safetensors entry {name!r}: offsets {offsets!r} outside the {data_bytes}-byte data"
        )
    entry = TensorEntry(dtype, tuple(shape), offsets[0], offsets[1])
    if entry.numel * DTYPE_BYTES[dtype] != entry.end - entry.begin:
        raise RepairInputError(
            f"safetensors entry {name!r}: shape {entry.shape} of {dtype} needs "
            f"{entry.numel * DTYPE_BYTES[dtype]} bytes, offsets give {entry.end - entry.begin}"
        )
    return entry


def read_safetensors_header(path: Path) -> SafetensorsHeader:
    try:
        size = path.stat().st_size
        with path.open("rb") as f:
            prefix = f.read(8)
            if size < 8 or len(prefix) < 8:
                raise RepairInputError(f"{path.name}: {size} bytes is too short for safetensors")
            n = int.from_bytes(prefix, "little")
            if n == 0 or n > MAX_HEADER_BYTES or n > size - 8:
                raise RepairInputError(
                    f"{path.name}: header length {n} is impossible for a {size}-byte file "
                    f"(limit {MAX_HEADER_BYTES})"
                )
            raw_header = f.read(n)
    except OSError as exc:
        raise RepairInputError(f"{path}: cannot read checkpoint: {exc}") from None
    try:
        header = json.loads(raw_header.decode("utf-8"), object_pairs_hook=_no_duplicates)
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        if isinstance(exc, RepairInputError):
            raise
        raise RepairInputError(f"{path.name}: safetensors header is not JSON: {exc}") from None
    if not isinstance(header, dict):
        raise RepairInputError(f"{path.name}: safetensors header must be a JSON object")
    metadata = header.pop("__metadata__", {})
    if not isinstance(metadata, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in metadata.items()
    ):
        raise RepairInputError(f"{path.name}: __metadata__ must map strings to strings")
    if len(header) > MAX_TENSORS:
        raise RepairInputError(f"{path.name}: {len(header)} tensors; at most {MAX_TENSORS}")
    data_bytes = size - 8 - n
    tensors = {name: _entry(name, raw, data_bytes) for name, raw in header.items()}
    # The data section must be covered exactly once, in order: no gaps, no overlaps.
    position = 0
    for name, entry in sorted(tensors.items(), key=lambda kv: (kv[1].begin, kv[1].end)):
        if entry.begin != position:
            raise RepairInputError(
                f"{path.name}: tensor {name!r} starts at byte {entry.begin}, expected {position} "
                "(overlapping or gapped data)"
            )
        position = entry.end
    if position != data_bytes:
        raise RepairInputError(
            f"{path.name}: tensors cover {position} of {data_bytes} data bytes "
            "(truncated or padded)"
        )
    return SafetensorsHeader(metadata, tensors, data_bytes)
