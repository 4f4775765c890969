"""Per-run work directories: a stale run's writes are refused, its successor's files kept."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
import torch

from repair_core.pipeline.workdir import WorkDir
from worker.rundir import newest_run_dir, promote


def _digests(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def test_a_run_that_wakes_after_its_successor_took_over_cannot_touch_its_files(
    tmp_path: Path,
) -> None:
    work_root = tmp_path / "work"
    first = WorkDir(promote(work_root, 1))
    first.save_tensors("selection.safetensors", {"idx": torch.arange(5)})
    first.finish("selecting", {"seconds": 1.0})
    first.save_tensors("search_state.safetensors", {"alpha": torch.zeros(3)})

    # The first run stalls (a paused VM); its lease runs out and run 3 takes the job over.
    second_dir = promote(work_root, 3)
    second = WorkDir(second_dir)
    assert second.done("selecting")
    assert torch.equal(second.load_tensors("search_state.safetensors")["alpha"], torch.zeros(3))
    second.save_tensors("search_state.safetensors", {"alpha": torch.ones(3)})
    second.finish("searching", {"seconds": 2.0})
    before = _digests(second_dir)

    # The first run wakes up and carries on writing: every write is refused.
    with pytest.raises(OSError):
        first.save_tensors("search_state.safetensors", {"alpha": torch.full((3,), 7.0)})
    with pytest.raises(OSError):
        first.finish("searching", {"seconds": 99.0})
    with pytest.raises(OSError):
        first.path("iter1", "model.safetensors")

    assert _digests(second_dir) == before
    assert WorkDir(second_dir).result("searching") == {"seconds": 2.0}
    assert (work_root / "run-1").is_file()  # the tombstone
    assert newest_run_dir(work_root) == second_dir
    assert not any(p.name.startswith(".retired-") for p in work_root.iterdir())


def test_promotion_links_files_instead_of_copying_them(tmp_path: Path) -> None:
    work_root = tmp_path / "work"
    first = WorkDir(promote(work_root, 1))
    first.save_tensors("big.safetensors", {"w": torch.zeros(1000)})
    inode = (work_root / "run-1" / "big.safetensors").stat().st_ino
    second = promote(work_root, 2)
    assert (second / "big.safetensors").stat().st_ino == inode


def test_the_first_run_starts_with_an_empty_directory(tmp_path: Path) -> None:
    run = promote(tmp_path / "work", 1)
    assert run.is_dir() and list(run.iterdir()) == []
