"""The `.npy` members of an untrusted `.npz`, read without trusting their headers.

Every `.npy` header (shape, dtype) is parsed and checked before its array is allocated:
the declared byte count must equal the bytes the member really holds and stay under
`max_npy_bytes`, object dtypes are refused (they would need pickle), and only the dtypes
each key needs are accepted (`x*` uint8 images, `y*` integer labels, unicode names).
"""

from __future__ import annotations

import math
import zipfile
import zlib
from pathlib import Path

import numpy as np

from repair_core.datasets.ingest.archive import detect_kind
from repair_core.datasets.ingest.capped import ByteBudget
from repair_core.datasets.ingest.limits import IngestLimits
from repair_core.datasets.ingest.zipsafe import ZipMember, check_zip, open_member
from repair_core.errors import LimitExceededError, RepairInputError

_HEADER_ROOM = 64 * 1024  # .npy header bytes allowed on top of the array data
_MAX_NAMES_BYTES = 16 * 1024 * 1024  # class_names / layout entries are small


def read_npz_arrays(
    path: Path, limits: IngestLimits, keys: tuple[str, ...]
) -> dict[str, np.ndarray]:
    """The arrays of `keys` that the npz at `path` holds (absent keys are left out)."""
    if detect_kind(path) != "npz":
        raise RepairInputError(f"{path.name}: not an npz file (a zip of .npy arrays)")
    try:
        with zipfile.ZipFile(path) as zf:
            members = check_zip(
                zf, archive=path.name, limits=limits,
                cap=limits.max_npy_bytes + _HEADER_ROOM, cap_name="max_npy_bytes",
            )  # fmt: skip
            by_key = {m.name[: -len(".npy")]: m for m in members if not m.is_dir}
            budget = ByteBudget(limits, archive=path.name)
            return {
                key: _read_npy(zf, by_key[key], key, limits, budget)
                for key in keys
                if key in by_key
            }
    except RepairInputError:
        raise
    # numpy reports a garbled .npy header as ValueError; zipfile a bad CRC as BadZipFile.
    except (zipfile.BadZipFile, EOFError, ValueError, zlib.error) as e:
        raise RepairInputError(f"{path.name}: npz is truncated or corrupt ({e})") from e


def _read_npy(
    zf: zipfile.ZipFile, member: ZipMember, key: str, limits: IngestLimits, budget: ByteBudget
) -> np.ndarray:
    where = f"{member.name}"
    stream, reader = open_member(
        zf, member, limits=limits, cap=limits.max_npy_bytes + _HEADER_ROOM,
        cap_name="max_npy_bytes", budget=budget,
    )  # fmt: skip
    with stream:
        version = np.lib.format.read_magic(reader)
        if version == (1, 0):
            header = np.lib.format.read_array_header_1_0(reader, max_header_size=_HEADER_ROOM)
        elif version == (2, 0):
            header = np.lib.format.read_array_header_2_0(reader, max_header_size=_HEADER_ROOM)
        else:
            raise RepairInputError(f"{where}: .npy format version {version} is not accepted")
        shape, fortran_order, dtype = header
        _check_dtype(dtype, key, where)
        nbytes = math.prod(shape) * dtype.itemsize
        cap = _MAX_NAMES_BYTES if key in ("class_names", "layout") else limits.max_npy_bytes
        if nbytes > cap:
            raise LimitExceededError(
                f"{where}: header declares shape {shape} {dtype} = {nbytes} bytes, more than "
                f"max_npy_bytes={cap}",
                limit="max_npy_bytes",
                value=cap,
            )
        held = member.info.file_size - reader.count
        if nbytes != held:
            raise RepairInputError(
                f"{where}: header declares shape {shape} {dtype} = {nbytes} bytes, "
                f"but the member holds {held}"
            )
        array = np.empty(shape[::-1] if fortran_order else shape, dtype=dtype)
        # A flat byte view of the array: the member's bytes land in place, no copy.
        got = reader.readinto(memoryview(array.reshape(-1).view(np.uint8).data)) if nbytes else 0
        if got != nbytes or reader.read(1):
            raise RepairInputError(f"{where}: array data is truncated or longer than declared")
    return array.T if fortran_order else array


def _check_dtype(dtype: np.dtype, key: str, where: str) -> None:
    if dtype.hasobject:
        raise RepairInputError(
            f"{where}: object arrays are not accepted (they cannot be read without pickle)"
        )
    if dtype.fields is not None or dtype.subdtype is not None:
        raise RepairInputError(f"{where}: structured dtype {dtype} is not accepted")
    if key.startswith("x") and dtype != np.uint8:
        raise RepairInputError(f"{where}: images must be uint8, got {dtype}")
    if key.startswith("y") and dtype.kind not in "iu":
        raise RepairInputError(f"{where}: labels must be integers, got {dtype}")
    if key in ("class_names", "layout") and dtype.kind != "U":
        raise RepairInputError(f"{where}: must be a unicode string array, got {dtype}")
