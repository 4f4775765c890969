"""What a finished repair's work directory no longer needs, and removing it.

While a repair runs its work directory holds resume state (the search's and each
retraining's per-epoch checkpoints, with optimiser state: the largest files there) and,
after a crash, temp files of interrupted atomic writes. Once the job has finished it will
never resume, so both are scratch; the results stay: models, the report, selections,
the ledger. Standard library only: the worker's main process, which never loads torch,
prunes too.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

# Resume state of the search (`<work>/search_state.pt`) and of each retraining
# (`<work>/iter<k>/train_state.pt`); the pipeline names its state files with these.
SEARCH_STATE = "search_state.pt"
TRAIN_STATE = "train_state.pt"
STATE_FILES = frozenset({SEARCH_STATE, TRAIN_STATE})


@dataclass(frozen=True)
class Pruned:
    freed_bytes: int  # bytes of the files removed
    kept_bytes: int  # bytes of every file left in the folder


def is_scratch(path: Path) -> bool:
    """Resume state, or a temp file of an atomic write (`repair_core.atomic`)."""
    name = path.name
    return name in STATE_FILES or (name.startswith(".") and name.endswith(".tmp"))


def prune_finished(root: Path) -> Pruned:
    """Remove the scratch files under `root` (a finished job's folder); symlinks are
    neither followed nor counted. A missing folder frees and keeps nothing."""
    freed = kept = 0
    for folder, _dirs, files in os.walk(root):
        for name in files:
            path = Path(folder) / name
            try:
                info = path.lstat()
                if path.is_symlink():
                    continue
                if is_scratch(path):
                    path.unlink()
                    freed += info.st_size
                else:
                    kept += info.st_size
            except FileNotFoundError:
                continue  # pruned concurrently (the worker and the upkeep sweep)
    return Pruned(freed, kept)
