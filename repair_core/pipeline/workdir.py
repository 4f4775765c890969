"""The work directory of one repair: every stage's output, and a ledger of finished stages.

A repair called again on the same directory skips finished stages and lets a stage in
progress resume from its own state file. Every write goes through `repair_core.atomic`
(temp file, fsync, rename, fsync of the folder): a process killed mid-write leaves the
previous version, never half a file, and a stage's outputs are on disk before the ledger
that marks it done.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file

from repair_core.atomic import atomic_path, write_json_atomic
from repair_core.errors import RepairInputError

LEDGER = "ledger.json"


class WorkDir:
    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        ledger = self.root / LEDGER
        self._ledger: dict[str, Any] = (
            json.loads(ledger.read_text()) if ledger.exists() else {"stages": {}}
        )

    def path(self, *parts: str) -> Path:
        target = self.root.joinpath(*parts)
        target.parent.mkdir(parents=True, exist_ok=True)
        return target

    def bind(self, key: str, fingerprint: str) -> None:
        """Tie the directory to one repair: a different `fingerprint` later is refused."""
        known = self._ledger.get("bound", {}).get(key)
        if known is None:
            self._ledger.setdefault("bound", {})[key] = fingerprint
            self._save()
        elif known != fingerprint:
            raise RepairInputError(
                f"work directory {self.root} holds a repair with another {key}; "
                "use a fresh directory for a different repair"
            )

    def done(self, stage: str) -> bool:
        return stage in self._ledger["stages"]

    def result(self, stage: str) -> dict[str, Any]:
        value: dict[str, Any] = self._ledger["stages"][stage]
        return value

    def finish(self, stage: str, result: dict[str, Any]) -> None:
        self._ledger["stages"][stage] = result
        self._save()

    def stages(self) -> dict[str, dict[str, Any]]:
        """Every finished stage's recorded result, by stage key."""
        return {k: dict(v) for k, v in self._ledger["stages"].items()}

    def timings(self) -> dict[str, float]:
        """Seconds each finished stage took (kept across resumes)."""
        return {
            stage: float(result["seconds"])
            for stage, result in self._ledger["stages"].items()
            if "seconds" in result
        }

    def save_tensors(self, name: str, tensors: dict[str, torch.Tensor]) -> None:
        """Write tensors durably: fsynced before `finish` can mark their stage done."""
        with atomic_path(self.path(name)) as tmp:
            save_file({k: v.detach().cpu().contiguous() for k, v in tensors.items()}, tmp)

    def load_tensors(self, name: str) -> dict[str, torch.Tensor]:
        return load_file(str(self.root / name))

    def _save(self) -> None:
        write_json_atomic(self.root / LEDGER, self._ledger)
