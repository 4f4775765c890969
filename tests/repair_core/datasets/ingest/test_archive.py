"""Hostile and well-formed archives through detect_kind / iter_archive_files."""

from __future__ import annotations

import hashlib
import io
import tarfile
import time
import warnings
import zipfile
from pathlib import Path

import numpy as np
import pytest

from repair_core.datasets.ingest.archive import detect_kind, iter_archive_files
from repair_core.datasets.ingest.capped import CappedReader
from repair_core.datasets.ingest.limits import IngestLimits
from repair_core.errors import ArchiveUnsafeError, LimitExceededError, RepairInputError
from tests.repair_core.datasets.ingest.builders import (
    TarEntry,
    overlapping_zip,
    patch_zip_names,
    write_tar,
    write_zip,
)

LIMITS = IngestLimits()
FILES = [("a/one.txt", b"1"), ("a/two.txt", b"22"), ("b.txt", b"333")]


def read_all(path: Path, limits: IngestLimits = LIMITS) -> dict[str, bytes]:
    return {f.name: f.data for f in iter_archive_files(path, limits)}


@pytest.mark.parametrize("maker", ["tar", "tar.gz", "zip"])
def test_archives_yield_every_regular_file_under_its_normalised_name(
    tmp_path: Path, maker: str
) -> None:
    entries = [("./a/one.txt", b"1"), ("a/two.txt", b"22"), ("b.txt", b"333")]
    if maker == "zip":
        path = write_zip(tmp_path / "x.bin", entries)
    else:
        path = write_tar(tmp_path / "x.bin", entries, gz=maker == "tar.gz")
    assert detect_kind(path) == maker
    assert read_all(path) == dict(FILES)


def test_a_tar_gz_reads_under_a_member_cap_smaller_than_one_mebibyte(tmp_path: Path) -> None:
    path = write_tar(tmp_path / "x.tar.gz", [("b.txt", b"333")], gz=True)
    small = IngestLimits(max_member_bytes=4096)
    assert read_all(path, small) == {"b.txt": b"333"}


def test_kind_comes_from_magic_bytes_not_the_file_name(tmp_path: Path) -> None:
    zip_named_tar = write_zip(tmp_path / "data.tar", FILES)
    tar_named_zip = write_tar(tmp_path / "data.zip", FILES, gz=True)
    npz = tmp_path / "arrays.tar.gz"
    with open(npz, "wb") as f:
        np.savez(f, x=np.zeros(3))
    assert detect_kind(zip_named_tar) == "zip"
    assert detect_kind(tar_named_zip) == "tar.gz"
    assert detect_kind(npz) == "npz"


@pytest.mark.parametrize(
    "content",
    [b"<html>not an archive</html>", b"", b"\x1f\x8b" + b"\x00" * 30, b"BZh91AY&SY" + b"0" * 600],
)
def test_unknown_or_corrupt_formats_are_refused(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "upload.tar"
    path.write_bytes(content)
    with pytest.raises(RepairInputError):
        detect_kind(path)


def test_gzip_that_is_not_a_tar_is_refused(tmp_path: Path) -> None:
    import gzip

    path = tmp_path / "x.tar.gz"
    path.write_bytes(gzip.compress(b"just text " * 100))
    with pytest.raises(RepairInputError, match="does not hold a tar"):
        detect_kind(path)


@pytest.mark.parametrize(
    ("entry", "match"),
    [
        (TarEntry("../x", b"evil"), r"'\.\.'"),
        (TarEntry("ok/../../x", b"evil"), r"'\.\.'"),
        (TarEntry("/abs/x", b"evil"), "absolute"),
        (TarEntry("link", type=tarfile.SYMTYPE, linkname="/etc"), "symbolic link"),
        (TarEntry("hard", type=tarfile.LNKTYPE, linkname="../../outside"), "hard link"),
        (TarEntry("fifo", type=tarfile.FIFOTYPE), "FIFO"),
        (TarEntry("dev", type=tarfile.CHRTYPE), "device"),
        (TarEntry("blk", type=tarfile.BLKTYPE), "device"),
        (TarEntry("sparse", type=tarfile.GNUTYPE_SPARSE), "unsupported"),
        (TarEntry("c:\\windows\\x", b"evil"), "backslash"),
        (TarEntry("C:evil", b"evil"), "drive"),
        (TarEntry("bad\x01name", b"evil"), "control"),
    ],
)
def test_tar_with_an_unsafe_member_is_refused_whole(
    tmp_path: Path, entry: TarEntry, match: str
) -> None:
    path = write_tar(tmp_path / "evil.tar", [("fine.txt", b"ok"), entry, ("after.txt", b"ok")])
    with pytest.raises(ArchiveUnsafeError, match=match):
        read_all(path)


def test_symlink_then_write_through_it_is_refused_at_the_link(tmp_path: Path) -> None:
    path = write_tar(
        tmp_path / "two_step.tar",
        [TarEntry("escape", type=tarfile.SYMTYPE, linkname=str(tmp_path)), ("escape/pwn", b"x")],
    )
    with pytest.raises(ArchiveUnsafeError, match="symbolic link"):
        read_all(path)


@pytest.mark.parametrize(
    "names",
    [
        ["a.png", "a.png"],
        ["Dir/A.png", "dir/a.PNG"],
        ["caf\u00e9.png", "cafe\u0301.png"],  # NFC and NFD spellings of the same name
        ["x", "x/y.png"],  # a file used as a folder
    ],
)
def test_duplicate_or_aliasing_names_are_refused(tmp_path: Path, names: list[str]) -> None:
    tar = write_tar(tmp_path / "dup.tar", [(n, b"1") for n in names])
    with pytest.raises(ArchiveUnsafeError, match=r"duplicate|also a file"):
        read_all(tar)
    zf = tmp_path / "dup.zip"
    with zipfile.ZipFile(zf, "w") as out, warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # zipfile warns on exact duplicates
        for n in names:
            out.writestr(n, b"1")
    with pytest.raises(ArchiveUnsafeError, match=r"duplicate|also a file"):
        read_all(zf)


def test_sentinel_files_outside_scratch_are_unchanged(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    sentinel = outside / "sentinel.txt"
    sentinel.write_bytes(b"precious")
    before = hashlib.sha256(sentinel.read_bytes()).hexdigest()
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    hostile: list[list[TarEntry | tuple[str, bytes]]] = [
        [("../outside/sentinel.txt", b"pwned")],
        [(str(sentinel), b"pwned")],
        [TarEntry("l", type=tarfile.SYMTYPE, linkname=str(sentinel)), ("l", b"pwned")],
        [TarEntry("h", type=tarfile.LNKTYPE, linkname=str(sentinel))],
    ]
    for i, entries in enumerate(hostile):
        path = write_tar(scratch / f"evil{i}.tar", entries)
        with pytest.raises(ArchiveUnsafeError):
            read_all(path)
    assert hashlib.sha256(sentinel.read_bytes()).hexdigest() == before
    assert sorted(p.name for p in scratch.iterdir()) == [f"evil{i}.tar" for i in range(4)]


@pytest.mark.parametrize(
    ("raw", "match"),
    [
        (b"..\\evil.txt", "backslash"),
        (b"C:\\evil.txt", "backslash"),
        (b"\\\\srv\\s\\e.txt", "backslash"),
        (b"/etc/evil.txt", "absolute"),
        (b"ok/../../e.txt", r"'\.\.'"),
        (b"a.png\x00../x.txt", "NUL"),
    ],
)
def test_zip_with_hostile_names_is_refused(tmp_path: Path, raw: bytes, match: str) -> None:
    placeholder = b"p" * len(raw)
    path = write_zip(tmp_path / "evil.zip", [("fine.txt", b"ok"), (placeholder.decode(), b"x")])
    patch_zip_names(path, placeholder, raw)
    with pytest.raises(ArchiveUnsafeError, match=match):
        read_all(path)


@pytest.mark.parametrize(
    ("mode", "match"),
    [(0o120777, "symbolic link"), (0o020644, "device"), (0o010644, "FIFO")],
)
def test_zip_entries_whose_unix_mode_is_not_a_file_are_refused(
    tmp_path: Path, mode: int, match: str
) -> None:
    path = write_zip(tmp_path / "evil.zip", [("link", b"/etc/passwd")], unix_mode=mode)
    with pytest.raises(ArchiveUnsafeError, match=match):
        read_all(path)


def test_zip_with_overlapping_entries_is_refused(tmp_path: Path) -> None:
    path = overlapping_zip(tmp_path / "overlap.zip")
    with pytest.raises(ArchiveUnsafeError, match="overlap"):
        read_all(path)


def test_high_ratio_zip_member_is_refused_in_bounded_time(tmp_path: Path) -> None:
    path = write_zip(tmp_path / "bomb.zip", [("zeros.bin", bytes(32 * 1024 * 1024))])
    assert path.stat().st_size < 100_000
    start = time.perf_counter()
    with pytest.raises(LimitExceededError, match="max_ratio=100") as caught:
        read_all(path)
    assert caught.value.limit == "max_ratio"
    assert time.perf_counter() - start < 2.0


def test_nested_zip_is_never_expanded(tmp_path: Path) -> None:
    inner = io.BytesIO()
    with zipfile.ZipFile(inner, "w", zipfile.ZIP_DEFLATED) as zf:
        for i in range(4):
            zf.writestr(f"layer{i}.bin", bytes(16 * 1024 * 1024))
    path = write_zip(tmp_path / "42.zip", [(f"{i}.zip", inner.getvalue()) for i in range(8)])
    start = time.perf_counter()
    files = read_all(path)
    assert len(files) == 8
    assert all(data == inner.getvalue() for data in files.values())
    assert time.perf_counter() - start < 2.0


def test_zip_member_that_inflates_past_its_declared_size_is_caught(tmp_path: Path) -> None:
    # Central directory and local header claim 10 bytes; the deflate stream holds 1 MiB.
    path = write_zip(tmp_path / "liar.zip", [("big.bin", b"\x01" * (1 << 20))])
    raw = bytearray(path.read_bytes())
    size = (1 << 20).to_bytes(4, "little")
    for at in [i for i in range(len(raw) - 3) if raw[i : i + 4] == size]:
        raw[at : at + 4] = (10).to_bytes(4, "little")
    path.write_bytes(bytes(raw))
    with pytest.raises(RepairInputError):
        read_all(path)


def test_capped_reader_counts_bytes_actually_produced_not_declared() -> None:
    reader = CappedReader(
        io.BytesIO(b"x" * 5000), name="m", cap=4096, cap_name="max_member_bytes", limits=LIMITS
    )
    with pytest.raises(LimitExceededError, match="max_member_bytes=4096"):
        reader.read_all()


@pytest.mark.parametrize("kind", ["tar", "zip"])
@pytest.mark.parametrize(
    ("limits", "limit"),
    [
        (IngestLimits(max_members=2), "max_members"),
        (IngestLimits(max_member_bytes=2), "max_member_bytes"),
        (IngestLimits(max_total_bytes=5), "max_total_bytes"),
    ],
)
def test_caps_name_the_limit_they_trip(
    tmp_path: Path, kind: str, limits: IngestLimits, limit: str
) -> None:
    if kind == "zip":
        path = write_zip(tmp_path / "x.zip", FILES)
    else:
        path = write_tar(tmp_path / "x.tar", FILES)
    with pytest.raises(LimitExceededError, match=limit) as caught:
        read_all(path, limits)
    assert caught.value.limit == limit
    assert f"{limit}=" in str(caught.value)


def test_pax_header_larger_than_the_member_cap_is_refused_before_reading_it(
    tmp_path: Path,
) -> None:
    path = write_tar(tmp_path / "pax.tar", [("d/" + "n" * 200 + "/x.txt", b"1")])
    with pytest.raises(LimitExceededError, match="tar header"):
        read_all(path, IngestLimits(max_member_bytes=64))


def test_long_path_components_are_refused(tmp_path: Path) -> None:
    path = write_tar(tmp_path / "long.tar", [("a/" + "n" * 300, b"1")])
    with pytest.raises(LimitExceededError, match="max_component_bytes"):
        read_all(path)


def _truncated(path: Path, keep: int) -> Path:
    out = path.with_name("cut-" + path.name)
    out.write_bytes(path.read_bytes()[:keep])
    return out


@pytest.mark.parametrize("kind", ["tar", "tar.gz", "zip"])
@pytest.mark.parametrize("fraction", [0.3, 0.6, 0.85])  # tar: 0.85 is inside the last member
def test_truncated_archives_are_refused(tmp_path: Path, kind: str, fraction: float) -> None:
    entries = [(f"f{i}.bin", bytes([i]) * 3000) for i in range(5)]
    if kind == "zip":
        path = write_zip(tmp_path / "x.zip", entries)
    else:
        path = write_tar(tmp_path / "x.tar", entries, gz=kind == "tar.gz")
    cut = _truncated(path, int(path.stat().st_size * fraction))
    with pytest.raises(RepairInputError):
        read_all(cut)


def test_tar_cut_exactly_at_a_member_boundary_is_refused(tmp_path: Path) -> None:
    path = write_tar(tmp_path / "x.tar", [("a.bin", b"a" * 512), ("b.bin", b"b" * 512)])
    cut = _truncated(path, 1024)  # first header + first data block, nothing after
    with pytest.raises(RepairInputError, match="end-of-archive"):
        read_all(cut)


def test_empty_tar_yields_nothing(tmp_path: Path) -> None:
    path = write_tar(tmp_path / "empty.tar", [])
    assert read_all(path) == {}


def test_capped_reader_refuses_a_ratio_over_the_cap_once_past_the_grace() -> None:
    limits = IngestLimits(max_ratio=10, ratio_grace_bytes=1000)
    reader = CappedReader(
        io.BytesIO(bytes(5000)),
        name="m",
        cap=1 << 20,
        cap_name="max_member_bytes",
        limits=limits,
        compressed_size=100,
    )
    assert len(reader.read(1000)) == 1000  # ratio 10 and within the grace: fine
    with pytest.raises(LimitExceededError, match="max_ratio=10"):
        reader.read_all()
