"""The artifact store in an S3-compatible bucket (AWS, MinIO, Ceph: any endpoint URL).

Consistency (docs/storage.md): an object appears under its key only once its upload is
complete (a PUT, or a multipart upload's completion, is atomic), so publishing a temp file
straight to its final key is as atomic as the local folder's `os.replace`; rows are
committed after, as there. Every object carries the SHA-256 of its bytes as metadata
(`sha256`), computed here before upload and checked on every fetch; the server checks
each part with its own SHA-256 checksum on the way in.

`root` is this machine's scratch folder: temp files, fetched copies (`.cache/`), and a
running job's work directory, which the worker writes through with `push_tree`.
"""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
from boto3.s3.transfer import TransferConfig
from botocore.config import Config
from botocore.exceptions import ClientError

from api.settings import S3Settings
from api.storage import keys
from api.storage.errors import STORE_ERRORS
from api.storage.local import ArtifactStore

log = logging.getLogger(__name__)
_CHUNK = 4 * 1024 * 1024
_DELETE_BATCH = 1000  # DeleteObjects' limit
CACHE_DIR = ".cache"


@dataclass(frozen=True)
class StoredObject:
    key: str
    size: int
    mtime: float  # LastModified, seconds since the epoch


class S3ArtifactStore(ArtifactStore):
    remote = True

    def __init__(self, scratch: Path, settings: S3Settings, client: Any = None) -> None:
        super().__init__(scratch)
        self.settings = settings
        self.bucket = settings.bucket
        self.prefix = settings.prefix.strip("/") + "/" if settings.prefix.strip("/") else ""
        self.client = client if client is not None else _client(settings)
        self.transfer = TransferConfig(
            multipart_threshold=settings.multipart_threshold_bytes,
            multipart_chunksize=settings.multipart_chunk_bytes,
        )
        # path -> (size, mtime_ns) as last pushed by this process (`push_tree`).
        self._pushed: dict[Path, tuple[int, int]] = {}
        if settings.create_bucket:
            try:
                self.ensure_bucket()
            except STORE_ERRORS:
                # The process still starts: requests answer 503 until the store is back.
                log.warning("could not create bucket %s", self.bucket, exc_info=True)

    def ensure_bucket(self) -> None:
        try:
            self.client.head_bucket(Bucket=self.bucket)
        except ClientError:
            self.client.create_bucket(Bucket=self.bucket)

    def _object(self, key: str) -> str:
        keys.check_key(key)
        return self.prefix + key

    def publish(self, tmp: Path, key: str) -> None:
        """Upload a finished temp file to `key` (multipart when large); the object exists
        only once the upload completed. The temp file is removed."""
        self.upload_file(tmp, key)
        tmp.unlink(missing_ok=True)

    def upload_file(self, local: Path, key: str) -> str:
        """Upload `local` to `key` with its SHA-256 as metadata; returns the digest."""
        digest = _sha256_file(local)
        self.client.upload_file(
            str(local), self.bucket, self._object(key),
            ExtraArgs={"Metadata": {"sha256": digest}, "ChecksumAlgorithm": "SHA256"},
            Config=self.transfer,
        )  # fmt: skip
        return digest

    def head(self, key: str) -> dict[str, Any]:
        """The object's HEAD answer; FileNotFoundError when there is none."""
        try:
            answer: dict[str, Any] = self.client.head_object(
                Bucket=self.bucket, Key=self._object(key)
            )
        except ClientError as exc:
            if _missing(exc):
                raise FileNotFoundError(key) from exc
            raise
        return answer

    def exists(self, key: str) -> bool:
        try:
            self.head(key)
        except FileNotFoundError:
            return False
        return True

    def size(self, key: str) -> int:
        return int(self.head(key)["ContentLength"])

    def sha256(self, key: str) -> str | None:
        """The digest stored with the object at upload (None for one put by other means)."""
        meta: dict[str, str] = self.head(key).get("Metadata", {})
        return meta.get("sha256")

    def fetch(self, key: str) -> Path:
        """A verified local copy under `.cache/`. Uploads and results (`<owner>/<uuid>`)
        never change once published, so a cached copy of one is reused; files in a job's
        folder (figures, picks) may be republished under their name and are fetched anew."""
        target = self.root / CACHE_DIR / Path(*keys.check_key(key))
        if keys.is_published_key(key) and target.is_file():
            os.utime(target)  # recently used: the temp sweep keeps it
            return target
        target.parent.mkdir(parents=True, exist_ok=True)
        self.download(key, target)
        return target

    def download(self, key: str, target: Path) -> None:
        """Copy `key` to the local file `target` (temp file + rename), checking its bytes
        against the stored SHA-256; ValueError (and no file) on a mismatch."""
        try:
            answer = self.client.get_object(Bucket=self.bucket, Key=self._object(key))
        except ClientError as exc:
            if _missing(exc):
                raise FileNotFoundError(key) from exc
            raise
        expected = answer.get("Metadata", {}).get("sha256")
        digest = hashlib.sha256()
        tmp = target.with_name(f".{target.name}.{os.getpid()}.part")
        try:
            with tmp.open("wb") as out:
                for chunk in answer["Body"].iter_chunks(_CHUNK):
                    digest.update(chunk)
                    out.write(chunk)
            if expected is not None and digest.hexdigest() != expected:
                raise ValueError(
                    f"stored object {key} does not match its SHA-256 "
                    f"(stored {expected}, read {digest.hexdigest()})"
                )
            os.replace(tmp, target)
        finally:
            tmp.unlink(missing_ok=True)

    def iter_range(self, key: str, start: int, end: int) -> Iterator[bytes]:
        """The bytes `start..end` (inclusive) of `key`, streamed."""
        answer = self.client.get_object(
            Bucket=self.bucket, Key=self._object(key), Range=f"bytes={start}-{end}"
        )
        body = answer["Body"]
        try:
            yield from body.iter_chunks(_CHUNK)
        finally:
            body.close()

    def presigned_url(self, key: str, *, file_name: str, expires_seconds: int) -> str | None:
        url: str = self.client.generate_presigned_url(
            "get_object",
            Params={
                "Bucket": self.bucket,
                "Key": self._object(key),
                "ResponseContentDisposition": f'attachment; filename="{file_name}"',
            },
            ExpiresIn=expires_seconds,
        )
        return url

    def delete(self, key: str) -> None:
        self.client.delete_object(Bucket=self.bucket, Key=self._object(key))
        (self.root / CACHE_DIR / Path(*keys.check_key(key))).unlink(missing_ok=True)

    def delete_tree(self, key: str) -> None:
        self._delete_objects([obj.key for obj in self.objects(key + "/")])
        super().delete_tree(key)  # the scratch copy, if this machine has one

    def _delete_objects(self, names: list[str]) -> None:
        for i in range(0, len(names), _DELETE_BATCH):
            batch = [{"Key": self.prefix + name} for name in names[i : i + _DELETE_BATCH]]
            self.client.delete_objects(Bucket=self.bucket, Delete={"Objects": batch})

    def objects(self, prefix: str = "") -> list[StoredObject]:
        """Every object under `prefix` (keys without the store's own prefix)."""
        found = []
        pages = self.client.get_paginator("list_objects_v2").paginate(
            Bucket=self.bucket, Prefix=self.prefix + prefix
        )
        for page in pages:
            for item in page.get("Contents", []):
                name = item["Key"][len(self.prefix) :]
                found.append(
                    StoredObject(name, int(item["Size"]), item["LastModified"].timestamp())
                )
        return found

    def published_files(self) -> list[tuple[str, float]]:
        return [(o.key, o.mtime) for o in self.objects() if keys.is_published_key(o.key)]

    def job_folders(self) -> list[tuple[str, float]]:
        """Job folders as the objects under them: a folder is as recent as its newest."""
        newest: dict[str, float] = {}
        for obj in self.objects():
            folder = keys.job_folder_of(obj.key)
            if folder is not None:
                newest[folder] = max(newest.get(folder, 0.0), obj.mtime)
        return list(newest.items())

    def pull_tree(self, key: str) -> int:
        """Fetch the objects under `key/` that the scratch copy lacks (or has at another
        size) into `path(key)`; returns how many."""
        fetched = 0
        base = self.path(key)
        for obj in self.objects(key + "/"):
            target = base.joinpath(*keys.check_key(obj.key[len(key) + 1 :]))
            try:
                if target.stat().st_size == obj.size:
                    continue
            except FileNotFoundError:
                pass
            target.parent.mkdir(parents=True, exist_ok=True)
            self.download(obj.key, target)
            st = target.stat()
            self._pushed[target] = (st.st_size, st.st_mtime_ns)  # no need to push it back
            fetched += 1
        return fetched

    def push_tree(self, key: str, *, delete_extra: bool = False) -> int:
        base = self.path(key)
        uploaded = 0
        present: set[str] = set()
        for parent, dirs, files in os.walk(base):
            dirs[:] = [d for d in dirs if not d.startswith(".")]
            for name in files:
                if name.startswith("."):
                    continue  # atomic writes' temp files (repair_core.atomic)
                local = Path(parent) / name
                rel = local.relative_to(base).as_posix()
                present.add(f"{key}/{rel}")
                try:
                    st = local.stat()
                except FileNotFoundError:
                    continue
                if self._pushed.get(local) == (st.st_size, st.st_mtime_ns):
                    continue
                try:
                    self.upload_file(local, f"{key}/{rel}")
                except FileNotFoundError:
                    continue  # replaced meanwhile: the next push takes the new one
                self._pushed[local] = (st.st_size, st.st_mtime_ns)
                uploaded += 1
        if delete_extra:
            self._delete_objects([o.key for o in self.objects(key + "/") if o.key not in present])
        return uploaded

    def push_file(self, key: str) -> bool:
        local = self.path(key)
        st = local.stat()
        if self._pushed.get(local) == (st.st_size, st.st_mtime_ns):
            return False
        self.upload_file(local, key)
        self._pushed[local] = (st.st_size, st.st_mtime_ns)
        return True

    def sweep_temp(self, older_than_seconds: float = 3600.0) -> int:
        """Temp files as for the local folder, and fetched copies unused that long."""
        removed = super().sweep_temp(older_than_seconds)
        cache = self.root / CACHE_DIR
        cutoff = time.time() - older_than_seconds
        for parent, _dirs, files in os.walk(cache):
            for name in files:
                path = Path(parent) / name
                try:
                    if path.stat().st_mtime < cutoff:
                        path.unlink()
                        removed += 1
                except FileNotFoundError:
                    continue
        return removed

    def drop_scratch(self, key: str) -> None:
        """Remove this machine's scratch copy of the folder `key` (the stored one stays)."""
        path = self.path(key)
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path, ignore_errors=True)


def _client(settings: S3Settings) -> Any:
    return boto3.client(
        "s3",
        endpoint_url=settings.endpoint_url or None,
        region_name=settings.region,
        aws_access_key_id=settings.access_key_id or None,
        aws_secret_access_key=settings.secret_access_key or None,
        config=Config(
            signature_version="s3v4",
            # Path-style: MinIO and Ceph behind one host name need no wildcard DNS.
            s3={"addressing_style": "path"},
            retries={"max_attempts": settings.max_attempts, "mode": "standard"},
            connect_timeout=5,
            read_timeout=60,
        ),
    )


def _missing(exc: ClientError) -> bool:
    code = str(exc.response.get("Error", {}).get("Code", ""))
    return code in {"404", "NoSuchKey", "NotFound"}


def _sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()
