"""Per-run work directories: a run that lost its lease cannot touch its successor's files.

A job's work lives under `<owner>/jobs/<job>/work/`, one directory per run (claim):
`run-1/`, `run-2/`, ... A new run *promotes* the newest earlier directory:

1. it renames that directory aside and puts a small file (a tombstone) under its name,
   so every path the old run still holds now resolves through a file: its writes fail
   with `NotADirectoryError`/`FileExistsError` instead of landing anywhere;
2. it hard-links every file of the renamed directory into its own `run-<n>/` (no bytes
   copied: the pipeline writes only by temp file + rename, so a file is never changed in
   place and a shared inode stays the version it was when linked);
3. it removes the renamed directory.

No check runs before each write, so there is no window between a check and a write for
a paused worker to wake in: the old run's paths are dead from step 1 on. The database
fences the rows the same way (the lease token); this fences the files.
"""

from __future__ import annotations

import os
import re
import secrets
import shutil
from pathlib import Path

_RUN = re.compile(r"run-(\d+)")
TOMBSTONE = b"superseded by a later run of this job; its files moved on\n"


def run_dir_name(run: int) -> str:
    return f"run-{run}"


def promote(work_root: Path, run: int) -> Path:
    """The work directory of `run`, holding the newest earlier run's files; that run's
    directory is retired first, so a stale worker cannot write into either."""
    work_root.mkdir(parents=True, exist_ok=True)
    target = work_root / run_dir_name(run)
    if target.exists():  # a crash mid-promotion of this very run (claims never repeat)
        _remove(target)
    previous = newest_run_dir(work_root, before=run)
    retired = _retire(previous) if previous is not None else None
    target.mkdir()
    if retired is not None:
        _link_tree(retired, target)
        shutil.rmtree(retired, ignore_errors=True)
    return target


def newest_run_dir(work_root: Path, *, before: int | None = None) -> Path | None:
    """The live run directory (numbered below `before`); retired runs are files."""
    runs = []
    try:
        entries = list(work_root.iterdir())
    except OSError:
        return None
    for entry in entries:
        match = _RUN.fullmatch(entry.name)
        if match is None or (before is not None and int(match[1]) >= before):
            continue
        if entry.is_dir() and not entry.is_symlink():
            runs.append((int(match[1]), entry))
    return max(runs)[1] if runs else None


def _retire(directory: Path) -> Path:
    """Move `directory` aside and leave a tombstone file in its place; returns where it
    went. A stale run may recreate the directory between the two renames (its writes
    make their parent folders): then that one is moved aside as well and tried again."""
    aside = directory.with_name(f".retired-{directory.name}-{secrets.token_hex(4)}")
    os.rename(directory, aside)
    tomb = directory.with_name(f".{directory.name}.{secrets.token_hex(4)}.tomb")
    tomb.write_bytes(TOMBSTONE)
    while True:
        try:
            os.rename(tomb, directory)  # a file cannot replace a directory: fails if recreated
            return aside
        except IsADirectoryError:
            stray = directory.with_name(f".retired-{directory.name}-{secrets.token_hex(4)}")
            os.rename(directory, stray)
            shutil.rmtree(stray, ignore_errors=True)


def _link_tree(source: Path, target: Path) -> None:
    for folder, dirs, files in os.walk(source):
        relative = Path(folder).relative_to(source)
        for name in dirs:
            (target / relative / name).mkdir(exist_ok=True)
        for name in files:
            if name.startswith(".") and name.endswith(".tmp"):
                continue  # an unfinished write of the old run
            src, dst = Path(folder) / name, target / relative / name
            try:
                os.link(src, dst)
            except OSError:  # a file system without hard links: copy instead
                shutil.copy2(src, dst)


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    else:
        path.unlink()
