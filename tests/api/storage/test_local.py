"""The artifact store: safe keys, atomic publishing, capped hashing writer, temp sweep."""

from __future__ import annotations

import hashlib
import os
import time
import uuid
from pathlib import Path

import pytest

from api.errors import PayloadTooLargeError
from api.storage import ArtifactStore, CappedHashingWriter


def test_new_keys_live_under_the_owner_and_resolve_inside_the_root(tmp_path: Path) -> None:
    store = ArtifactStore(tmp_path)
    owner = uuid.uuid4()
    key = store.new_key(owner, ".npz")
    assert key.startswith(f"{owner}/") and key.endswith(".npz")
    assert store.path(key).is_relative_to(tmp_path.resolve())


@pytest.mark.parametrize(
    "key", ["../x", "a/../../etc/passwd", "/abs", "a//b", "", ".hidden", "a/b\x00c", "a\\..\\b"]
)
def test_keys_that_could_leave_the_store_are_rejected(tmp_path: Path, key: str) -> None:
    with pytest.raises(ValueError, match="invalid storage key"):
        ArtifactStore(tmp_path).path(key)


def test_publish_moves_the_temp_file_to_its_key(tmp_path: Path) -> None:
    store = ArtifactStore(tmp_path)
    tmp = store.temp_path()
    tmp.write_bytes(b"weights")
    store.publish(tmp, "owner/file.bin")
    target = store.path("owner/file.bin")
    assert target.read_bytes() == b"weights" and not tmp.exists()
    store.delete("owner/file.bin")
    assert not target.exists()


def test_writer_hashes_and_counts_what_it_writes(tmp_path: Path) -> None:
    writer = CappedHashingWriter(tmp_path / "up", max_bytes=100, what="thing")
    writer.write(b"a" * 60)
    writer.write(b"b" * 40)
    stored = writer.finish()
    data = b"a" * 60 + b"b" * 40
    assert stored.size == 100 and stored.sha256 == hashlib.sha256(data).hexdigest()
    assert stored.head == data and stored.path.read_bytes() == data


def test_writer_stops_at_the_first_chunk_past_the_cap_and_discard_removes_the_file(
    tmp_path: Path,
) -> None:
    writer = CappedHashingWriter(tmp_path / "up", max_bytes=100, what="dataset archive")
    writer.write(b"a" * 100)
    with pytest.raises(PayloadTooLargeError, match=r"dataset archive is larger than .* 100 bytes"):
        writer.write(b"b")
    writer.discard()
    assert not (tmp_path / "up").exists()


def test_sweep_removes_only_old_temp_files(tmp_path: Path) -> None:
    store = ArtifactStore(tmp_path)
    old, new = store.temp_path(), store.temp_path()
    old.write_bytes(b"old")
    new.write_bytes(b"new")
    two_hours_ago = time.time() - 7200
    os.utime(old, (two_hours_ago, two_hours_ago))
    assert store.sweep_temp(older_than_seconds=3600) == 1
    assert not old.exists() and new.exists()


def _aged(path: Path, data: bytes, *, seconds: float) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    then = time.time() - seconds
    os.utime(path, (then, then))
    return path


def test_orphan_sweep_removes_only_old_published_files_that_no_row_names(tmp_path: Path) -> None:
    store = ArtifactStore(tmp_path)
    owner = uuid.uuid4()
    kept, orphan, fresh = (store.new_key(owner, ".npz") for _ in range(3))
    _aged(store.path(kept), b"k", seconds=7200)
    _aged(store.path(orphan), b"o", seconds=7200)
    _aged(store.path(fresh), b"f", seconds=10)
    work = _aged(store.path(f"{owner}/jobs/{uuid.uuid4()}/work/ledger.json"), b"{}", seconds=7200)
    temp = _aged(store.temp_path(), b"t", seconds=7200)
    assert store.sweep_orphans(lambda: {kept}, older_than_seconds=3600) == 1
    assert not store.path(orphan).exists()
    assert store.path(kept).exists() and store.path(fresh).exists()
    # Work directories and temp files are not published artifacts: other sweeps own them.
    assert work.exists() and temp.exists()


def test_orphan_sweep_does_not_read_the_rows_when_no_file_is_old_enough(tmp_path: Path) -> None:
    store = ArtifactStore(tmp_path)
    _aged(store.path(store.new_key(uuid.uuid4())), b"new", seconds=1)

    def rows() -> set[str]:
        raise AssertionError("rows read although nothing could be swept")

    assert store.sweep_orphans(rows, older_than_seconds=3600) == 0
    assert ArtifactStore(tmp_path / "missing").sweep_orphans(rows) == 0
