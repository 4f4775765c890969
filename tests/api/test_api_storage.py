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
    target = store.publish(tmp, "owner/file.bin")
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
