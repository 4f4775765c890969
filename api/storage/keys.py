"""Artifact keys: `<owner>/<uuid><suffix>` for uploads and results, `<owner>/jobs/<job>/...`
for a job's folder. One validation for both backends, so a key that could leave the local
root is refused before it reaches either."""

from __future__ import annotations

import re
import uuid

from repair_core.choices import MODEL_FORMAT_SUFFIXES

_SEGMENT_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")


def check_key(key: str) -> list[str]:
    """The key's segments; ValueError for anything that could leave the store."""
    parts = key.split("/")
    if not parts or not all(_SEGMENT_RE.match(p) and ".." not in p for p in parts):
        raise ValueError(f"invalid storage key {key!r}")
    return parts


def new_key(owner_id: uuid.UUID, suffix: str = "") -> str:
    return f"{owner_id}/{uuid.uuid4().hex}{suffix}"


def job_folder_key(owner_id: uuid.UUID, job_id: uuid.UUID) -> str:
    """The key of a job's folder: its work directory (`work/`) and journal."""
    return f"{owner_id}/jobs/{job_id}"


def figure_key(owner_id: uuid.UUID, job_id: uuid.UUID, file_name: str) -> str:
    """Where a job's report figure lives: beside its work directory, so it goes with
    the job's folder and the orphan sweep (which skips job folders) leaves it alone."""
    return f"{owner_id}/jobs/{job_id}/figures/{file_name}"


def variant_model_key(
    owner_id: uuid.UUID, job_id: uuid.UUID, variant: str, model_format: str = "safetensors"
) -> str:
    """Where a compared variant's model lives in `model_format` (not the primary's: that
    is the job's `result_model_key` and export columns): in the job's folder like its
    figures, so deletes, the quota and the orphan sweep see it without a column of its
    own."""
    suffix = MODEL_FORMAT_SUFFIXES[model_format]
    return f"{owner_id}/jobs/{job_id}/variants/{variant}{suffix}"


def is_published_key(key: str) -> bool:
    """A file `new_key` names (`<owner>/<name>`), not one inside a job's folder."""
    return key.count("/") == 1 and not key.startswith(".")


def job_folder_of(key: str) -> str | None:
    """The job folder (`<owner>/jobs/<job>`) a key lies in, or None."""
    parts = key.split("/")
    if len(parts) >= 4 and parts[1] == "jobs" and not parts[0].startswith("."):
        return "/".join(parts[:3])
    return None
