"""The work directory: a stage's tensors are durable before the ledger marks it done."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from repair_core.errors import RepairInputError
from repair_core.pipeline.workdir import LEDGER, WorkDir


def test_saved_tensors_are_fsynced_before_the_ledger_marks_the_stage_done(
    tmp_path: Path, fsynced: list[str]
) -> None:
    work = WorkDir(tmp_path / "work")
    work.save_tensors("confirmed.safetensors", {"rows": torch.arange(5)})
    tensor_syncs = len(fsynced)
    work.finish("confirming", {"confirmed": 5})

    tensor_file, tensor_folder = fsynced[:tensor_syncs]
    assert Path(tensor_file).name.startswith(".confirmed.safetensors.")  # the temp, pre-rename
    assert tensor_folder == str(work.root)
    ledger_file = fsynced[tensor_syncs]
    assert Path(ledger_file).name.startswith(f".{LEDGER}.")
    assert torch.equal(work.load_tensors("confirmed.safetensors")["rows"], torch.arange(5))
    assert json.loads((work.root / LEDGER).read_text())["stages"]["confirming"] == {"confirmed": 5}
    assert sorted(p.name for p in work.root.iterdir()) == ["confirmed.safetensors", LEDGER]


def test_a_work_directory_is_bound_to_one_repair(tmp_path: Path) -> None:
    work = WorkDir(tmp_path)
    work.bind("config", "a")
    work.bind("config", "a")
    again = WorkDir(tmp_path)
    assert not again.done("confirming")
    with pytest.raises(RepairInputError, match="another config"):
        again.bind("config", "b")


def test_variants_run_in_turn_share_the_overall_percentage_in_order() -> None:
    from repair_core.pipeline.progress_map import OverallProgress, variant_share
    from repair_core.progress import Progress

    seen: list[float] = []

    def record(progress: Progress) -> None:
        seen.append(progress.metrics["overall_percent"])

    for k in range(3):
        progress = OverallProgress(variant_share(record, k, 3), iterations=1)
        on = progress.enter("retraining")
        on(Progress("retraining", 1, 1))
    OverallProgress(record, 1).enter("evaluating")(Progress("evaluating", 1, 1))
    assert seen == sorted(seen) and seen[-1] == 100.0
    assert max(seen[:-2]) <= 88.0
