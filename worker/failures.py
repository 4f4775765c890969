"""What a failed job tells its owner: the error class and a readable message, and which
failures are resources running out (disk full, out of memory) rather than bugs."""

from __future__ import annotations

import errno
from pathlib import Path

from celery.exceptions import SoftTimeLimitExceeded

MAX_ERROR_CHARS = 4000

# torch's CPU allocator raises a plain RuntimeError with one of these when malloc fails
# (CUDA raises torch.OutOfMemoryError). oneDNN's "could not create a primitive" is left
# out: it has other causes too, and a wrong OOM retry would hide the real error.
_CPU_ALLOCATION_FAILED = ("DefaultCPUAllocator: can't allocate memory", "not enough memory")


def is_out_of_memory(exc: BaseException) -> bool:
    if isinstance(exc, MemoryError) or type(exc).__name__ == "OutOfMemoryError":
        return True
    return isinstance(exc, RuntimeError) and any(m in str(exc) for m in _CPU_ALLOCATION_FAILED)


def disk_full_error(exc: BaseException) -> OSError | None:
    """The ENOSPC/EDQUOT error behind `exc`, if any: writers such as `torch.save` raise
    their own error while handling it, so the chain is searched too."""
    seen: BaseException | None = exc
    for _ in range(10):  # chains are short; a cycle must not hang us
        if seen is None:
            return None
        if isinstance(seen, OSError) and seen.errno in (errno.ENOSPC, errno.EDQUOT):
            return seen
        seen = seen.__cause__ or seen.__context__
    return None


def is_disk_full(exc: BaseException) -> bool:
    return disk_full_error(exc) is not None


def describe_error(exc: BaseException, hard_limit_seconds: int) -> tuple[str, str]:
    """(error class, readable message) for the job row."""
    if isinstance(exc, SoftTimeLimitExceeded):
        return "TimeLimitExceeded", time_limit_message(hard_limit_seconds)
    full = disk_full_error(exc)
    if full is not None:
        where = f" writing {Path(full.filename).name}" if full.filename else ""
        return "DiskFull", (
            f"the worker's disk is full{where} ({full.strerror}). What the job had finished "
            "is kept; free space on the artifact volume and submit the repair again."
        )
    name = type(exc).__name__
    message = str(exc) or repr(exc)
    if is_out_of_memory(exc):
        return "OutOfMemoryError", (
            f"{message.strip()[:1000]}\nThe job ran out of memory, also after a retry with "
            "half its batch sizes: lower search.batch_size / train.batch_size (overrides), "
            "use a smaller profile, or a worker with more memory."
        )
    return name, message


def time_limit_message(hard_limit_seconds: int) -> str:
    return (
        f"the repair ran past its time limit (hard limit {hard_limit_seconds} s per run, "
        "worker.phase_hard_seconds); use a smaller profile or fewer epochs"
    )
