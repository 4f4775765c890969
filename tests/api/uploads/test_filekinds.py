"""The front-door kind check: extension says the kind, magic bytes must agree."""

from __future__ import annotations

import io
import struct
import tarfile
import zipfile

import pytest

from api.errors import UnsupportedMediaTypeError
from api.uploads.filekinds import CHECKPOINT_KINDS, DATASET_KINDS, check_magic, declared_kind


def _tar() -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        info = tarfile.TarInfo("train/a/x.png")
        info.size = 1
        tar.addfile(info, io.BytesIO(b"x"))
    return buf.getvalue()


def _zip() -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("x", b"x")
    return buf.getvalue()


SAFETENSORS = struct.pack("<Q", 2) + b"{}"
PICKLE = b"\x80\x04\x95"
ONNX = b"\x08\x08\x12\x07pytorch"  # ir_version 8, then producer_name, as serializers write
GZIP = b"\x1f\x8b\x08\x00"


@pytest.mark.parametrize(
    ("name", "kind"),
    [
        ("d.tar.gz", "tar.gz"),
        ("D.TGZ", "tar.gz"),
        ("d.tar", "tar"),
        ("d.zip", "zip"),
        ("d.npz", "npz"),
    ],
)
def test_dataset_extensions_name_their_kind(name: str, kind: str) -> None:
    assert declared_kind(name, DATASET_KINDS, "dataset") == kind


def test_unknown_extension_answers_415_listing_the_accepted_ones() -> None:
    with pytest.raises(UnsupportedMediaTypeError, match=r"\.npz.*\.zip"):
        declared_kind("data.rar", DATASET_KINDS, "dataset archive")


@pytest.mark.parametrize(
    ("kind", "head"),
    [
        ("tar", _tar()),
        ("zip", _zip()),
        ("npz", _zip()),
        ("tar.gz", GZIP),
        ("safetensors", SAFETENSORS),
        ("pt", _zip()),
        ("pt", PICKLE),
        ("onnx", ONNX),
    ],
)
def test_matching_magic_bytes_pass(kind: str, head: bytes) -> None:
    check_magic(kind, head[:512], "f")


@pytest.mark.parametrize(
    ("kind", "head"),
    [
        ("pt", b"<html><body>hi</body></html>"),
        ("tar", _zip()),
        ("zip", _tar()),
        ("safetensors", PICKLE),
        ("tar.gz", _tar()),
        ("npz", b""),
        ("onnx", b"<html><body>hi</body></html>"),
        ("onnx", PICKLE),
    ],
)
def test_contradicting_magic_bytes_answer_415(kind: str, head: bytes) -> None:
    with pytest.raises(UnsupportedMediaTypeError, match=f"named as {kind}"):
        check_magic(kind, head[:512], "f")


def test_checkpoint_extensions() -> None:
    assert declared_kind("m.safetensors", CHECKPOINT_KINDS, "checkpoint") == "safetensors"
    assert declared_kind("m.pth", CHECKPOINT_KINDS, "checkpoint") == "pt"
    assert declared_kind("Model.ONNX", CHECKPOINT_KINDS, "checkpoint") == "onnx"
