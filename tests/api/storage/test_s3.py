"""The S3 backend of the artifact store against a real S3 API server (moto) on loopback:
publish is all-or-nothing and checksummed, fetch verifies, listings drive the sweeps,
deletes reach the bucket, and a scratch folder round-trips through it."""

from __future__ import annotations

import hashlib
import os
import uuid
from pathlib import Path

import httpx
import pytest

from api.settings import ArtifactSettings
from api.storage import open_store
from api.storage.s3 import S3ArtifactStore
from tests.s3server import s3_settings

pytestmark = pytest.mark.integration

MiB = 1024 * 1024


@pytest.fixture
def store(s3_endpoint: str, tmp_path: Path) -> S3ArtifactStore:
    made = open_store(
        ArtifactSettings(backend="s3", root=tmp_path / "scratch", s3=s3_settings(s3_endpoint))
    )
    assert isinstance(made, S3ArtifactStore)
    return made


def _temp_with(store: S3ArtifactStore, data: bytes) -> Path:
    tmp = store.temp_path()
    tmp.write_bytes(data)
    return tmp


def test_a_published_file_is_in_the_bucket_with_its_sha256_and_the_temp_file_is_gone(
    store: S3ArtifactStore,
) -> None:
    owner = uuid.uuid4()
    key = store.new_key(owner, ".npz")
    data = b"stored bytes" * 100
    tmp = _temp_with(store, data)
    store.publish(tmp, key)
    assert not tmp.exists()
    assert store.exists(key) and store.size(key) == len(data)
    assert store.sha256(key) == hashlib.sha256(data).hexdigest()
    assert store.fetch(key).read_bytes() == data
    # Nothing of it under the scratch root but the fetched copy.
    assert not store.path(key).exists()


def test_a_file_over_the_multipart_threshold_goes_up_in_parts_and_reads_back_whole(
    store: S3ArtifactStore,
) -> None:
    data = os.urandom(11 * MiB)  # three parts of 5 MiB at most
    key = store.new_key(uuid.uuid4(), ".bin")
    store.publish(_temp_with(store, data), key)
    head = store.head(key)
    # A multipart object's ETag names its part count.
    assert str(head["ETag"]).strip('"').endswith("-3")
    assert store.fetch(key).read_bytes() == data


def test_a_fetch_whose_bytes_do_not_match_the_stored_sha256_fails_and_leaves_no_copy(
    store: S3ArtifactStore,
) -> None:
    key = store.new_key(uuid.uuid4(), ".npz")
    store.client.put_object(
        Bucket=store.bucket, Key=key, Body=b"tampered", Metadata={"sha256": "0" * 64}
    )
    with pytest.raises(ValueError, match="does not match its SHA-256"):
        store.fetch(key)
    cache = store.root / ".cache"
    assert not [p for p in cache.rglob("*") if p.is_file()]


def test_fetching_a_missing_key_raises_file_not_found(store: S3ArtifactStore) -> None:
    with pytest.raises(FileNotFoundError):
        store.fetch(store.new_key(uuid.uuid4()))
    assert not store.exists(store.new_key(uuid.uuid4()))


def test_ranges_stream_the_asked_bytes(store: S3ArtifactStore) -> None:
    data = bytes(range(256)) * 4
    key = store.new_key(uuid.uuid4())
    store.write_bytes(key, data)
    assert b"".join(store.iter_range(key, 10, 19)) == data[10:20]
    assert b"".join(store.iter_range(key, 1000, 1023)) == data[1000:]


def test_a_presigned_url_downloads_without_credentials_and_expires(
    store: S3ArtifactStore,
) -> None:
    key = store.new_key(uuid.uuid4(), ".safetensors")
    store.write_bytes(key, b"model bytes")
    url = store.presigned_url(key, file_name="m.safetensors", expires_seconds=60)
    assert url is not None and "X-Amz-Expires=60" in url
    got = httpx.get(url)
    assert got.status_code == 200 and got.content == b"model bytes"
    assert "m.safetensors" in got.headers["content-disposition"]
    # Tampering with the signed key is refused.
    other = url.replace(key.rsplit("/", 1)[1], store.new_key(uuid.uuid4()).rsplit("/", 1)[1])
    assert httpx.get(other).status_code == 403


def test_listings_name_published_files_and_job_folders_apart(store: S3ArtifactStore) -> None:
    owner, job = uuid.uuid4(), uuid.uuid4()
    upload = store.new_key(owner, ".npz")
    store.write_bytes(upload, b"u")
    store.write_bytes(store.figure_key(owner, job, "a.png"), b"f")
    store.write_bytes(f"{owner}/jobs/{job}/work/run-1/ledger.json", b"{}")
    assert [k for k, _ in store.published_files()] == [upload]
    folders = dict(store.job_folders())
    assert list(folders) == [f"{owner}/jobs/{job}"]


def test_the_orphan_sweep_removes_old_unreferenced_objects_and_keeps_referenced_ones(
    store: S3ArtifactStore,
) -> None:
    owner = uuid.uuid4()
    kept, orphan = store.new_key(owner), store.new_key(owner)
    store.write_bytes(kept, b"k")
    store.write_bytes(orphan, b"o")
    # Both are younger than an hour: an upload whose row is not committed yet is safe.
    assert store.sweep_orphans(lambda: {kept}, older_than_seconds=3600) == 0
    # A cutoff in the future makes every object old enough.
    assert store.sweep_orphans(lambda: {kept}, older_than_seconds=-60) == 1
    assert store.exists(kept) and not store.exists(orphan)


def test_delete_tree_removes_every_object_under_the_folder_only(store: S3ArtifactStore) -> None:
    owner, job, other = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    for i in range(3):
        store.write_bytes(f"{owner}/jobs/{job}/work/run-1/f{i}", b"x")
    store.write_bytes(f"{owner}/jobs/{other}/journal", b"y")
    store.delete_tree(f"{owner}/jobs/{job}")
    assert [o.key for o in store.objects(f"{owner}/")] == [f"{owner}/jobs/{other}/journal"]


def test_a_scratch_folder_pushed_from_one_machine_is_pulled_whole_on_another(
    s3_endpoint: str, tmp_path: Path
) -> None:
    settings = s3_settings(s3_endpoint)
    one = S3ArtifactStore(tmp_path / "one", settings)
    two = S3ArtifactStore(tmp_path / "two", settings.model_copy(update={"create_bucket": False}))
    folder = f"{uuid.uuid4()}/jobs/{uuid.uuid4()}/work/run-1"
    run = one.path(folder)
    (run / "search").mkdir(parents=True)
    (run / "search" / "epoch-2.pt").write_bytes(b"checkpoint")
    (run / "ledger.json").write_text('{"stages": {}}')
    (run / ".ledger.json.abc.tmp").write_text("half")  # an atomic write in progress
    assert one.push_tree(folder) == 2
    assert one.push_tree(folder) == 0  # nothing changed since
    assert two.pull_tree(folder) == 2
    got = two.path(folder)
    assert (got / "search" / "epoch-2.pt").read_bytes() == b"checkpoint"
    assert not (got / ".ledger.json.abc.tmp").exists()
    # A pruned file is removed from the bucket with delete_extra.
    (run / "search" / "epoch-2.pt").unlink()
    one.push_tree(folder, delete_extra=True)
    assert [o.key for o in one.objects(folder + "/")] == [f"{folder}/ledger.json"]


def test_the_temp_sweep_removes_fetched_copies_unused_for_the_age(store: S3ArtifactStore) -> None:
    key = store.new_key(uuid.uuid4())
    store.write_bytes(key, b"c")
    copy = store.fetch(key)
    assert store.sweep_temp(3600) == 0 and copy.exists()
    assert store.sweep_temp(-60) == 1 and not copy.exists()
    assert store.exists(key)  # the stored object stays
