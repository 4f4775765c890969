"""Atomic writes: old or new file, never half; fsynced before the rename; no temp left."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from repair_core.atomic import (
    atomic_open,
    copy_file_atomic,
    write_atomic,
    write_bytes_atomic,
    write_json_atomic,
    write_text_atomic,
)


def test_each_writer_replaces_the_target_and_leaves_no_temp_file(tmp_path: Path) -> None:
    target = tmp_path / "nested" / "out.bin"
    write_bytes_atomic(target, b"one")
    assert target.read_bytes() == b"one"
    write_text_atomic(target, "twö")
    assert target.read_text(encoding="utf-8") == "twö"
    write_json_atomic(target, {"b": 1, "a": [1, 2]})
    assert json.loads(target.read_text()) == {"a": [1, 2], "b": 1}
    assert target.read_text().startswith('{\n  "a"')  # indented, keys sorted
    write_atomic(target, lambda tmp: tmp.write_bytes(b"callback"))
    assert target.read_bytes() == b"callback"
    copy = copy_file_atomic(target, tmp_path / "copy.bin")
    assert copy.read_bytes() == b"callback"
    assert sorted(p.name for p in target.parent.iterdir()) == ["out.bin"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["copy.bin", "nested"]


def test_a_failed_write_keeps_the_old_file_and_removes_the_temp(tmp_path: Path) -> None:
    target = tmp_path / "state.pt"
    target.write_bytes(b"previous epoch")
    with pytest.raises(RuntimeError, match="killed"), atomic_open(target) as handle:
        handle.write(b"half of the next ep")
        raise RuntimeError("killed mid-write")
    assert target.read_bytes() == b"previous epoch"
    assert [p.name for p in tmp_path.iterdir()] == ["state.pt"]


def test_the_file_is_fsynced_before_the_rename_and_then_its_folder(
    tmp_path: Path, fsynced: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    target = tmp_path / "ledger.json"
    renamed_after: list[int] = []
    real_replace = os.replace

    def recording_replace(src: str | Path, dst: str | Path) -> None:
        renamed_after.append(len(fsynced))
        real_replace(src, dst)

    monkeypatch.setattr(os, "replace", recording_replace)
    write_json_atomic(target, {"stages": {}})
    temp, folder = fsynced
    assert Path(temp).parent == tmp_path and Path(temp).name.startswith(".ledger.json.")
    assert Path(temp).name.endswith(".tmp")
    assert renamed_after == [1]  # the data was durable before the file got its name
    assert folder == str(tmp_path)


def test_temp_files_get_the_usual_permissions_not_private_ones(tmp_path: Path) -> None:
    umask = os.umask(0o022)
    try:
        path = write_bytes_atomic(tmp_path / "model.safetensors", b"x")
    finally:
        os.umask(umask)
    assert path.stat().st_mode & 0o777 == 0o644
