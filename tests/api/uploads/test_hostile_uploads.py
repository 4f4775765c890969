"""Hostile upload metadata and framing (reliability.md cases 8 and 9): file names that try
to be paths or to grow past their column, error details that would tell a client the
server's paths, and multipart bodies padded after their closing boundary."""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable

import httpx
import pytest
import sqlalchemy as sa

from api.db.models import Dataset
from api.uploads.multipart import MAX_EPILOGUE_BYTES, MAX_FILENAME_CHARS, escape_filename
from tests.api import payloads, rawhttp
from tests.api.conftest import LiveServer
from tests.api.helpers import assert_nothing_left, problem

pytestmark = pytest.mark.integration

NewOwner = Callable[[], tuple[uuid.UUID, str]]
RTL = "\u202e"


@pytest.fixture
def owner(new_owner: NewOwner) -> tuple[uuid.UUID, str]:
    return new_owner()


def _upload_raw(live_server: LiveServer, key: str, filename: str, data: bytes) -> httpx.Response:
    """The name goes on the wire as raw UTF-8 bytes (httpx's form encoder would escape NUL)."""
    body = rawhttp.multipart_head(filename) + data + rawhttp.multipart_tail()
    with live_server.client(key) as client:
        return client.post(
            "/v1/datasets", content=body, headers={"Content-Type": rawhttp.MULTIPART}
        )


@pytest.mark.parametrize(
    ("filename", "num_classes"),
    [
        # Traversal, NUL, an ANSI escape and a right-to-left override at once.
        ("../../etc/cron.d/x\x00\x1b[31m" + RTL + "zpn.npz", 2),
        # Absolute, a reserved Windows device name, and 3.6 KB of multi-byte characters
        # whose escapes (6 characters each) would pass the 512-character column 4 times.
        ("/etc/CON" + RTL * 400 + "日" * 800 + ".npz", 3),
        ("..\\..\\windows\\NUL.npz", 4),
    ],
    ids=["traversal-nul-control-rtl", "absolute-reserved-long-multibyte", "backslash-reserved"],
)
def test_hostile_file_names_are_stored_under_a_server_key_and_kept_only_escaped(
    live_server: LiveServer, owner: tuple[uuid.UUID, str], filename: str, num_classes: int
) -> None:
    owner_id, key = owner
    response = _upload_raw(live_server, key, filename, payloads.npz_dataset(num_classes))
    assert response.status_code == 201, response.text[:500]
    with live_server.session_factory() as session:
        row = session.scalars(sa.select(Dataset).where(Dataset.owner_id == owner_id)).one()
    assert re.fullmatch(rf"{owner_id}/[0-9a-f]{{32}}\.npz", row.storage_key)
    for shown in (row.original_filename, row.name):
        assert len(shown) <= MAX_FILENAME_CHARS
        assert not any(ch in shown for ch in ("\x00", "\x1b", RTL))
    assert row.original_filename.startswith(
        filename[:2].replace("\x00", "\\x00")
    )  # the name is kept, escaped, not replaced
    if RTL in filename:
        assert "\\u202e" in row.original_filename
    assert_nothing_left(live_server, owner_id, rows={"datasets": 1})


# What an error detail must never show: where the server keeps files, or the temp names
# it gives them (uuid hex, the `.upload` / `.sandbox` suffixes).
def _leaks(text: str, live_server: LiveServer) -> list[str]:
    patterns = [
        re.escape(str(live_server.artifacts_root)),
        r"/tmp/",
        r"\.tmp\b",
        r"\.upload\b",
        r"\.sandbox\b",
        r"[0-9a-f]{32}",
        r"/work/",
    ]
    return [p for p in patterns if re.search(p, text)]


@pytest.mark.parametrize(
    ("filename", "data"),
    [
        ("bad.tar", b"\x1f\x8b\x08\x00" + b"\x00" * 64),  # gzip magic, corrupt stream
        ("bad.zip", b"PK\x03\x04" + b"\xff" * 200),  # zip magic, no central directory
        ("bad.npz", payloads.zip_bytes({"x_train.npy": b"\x93NUMPY junk"})),
    ],
    ids=["corrupt-gzip", "corrupt-zip", "npz-missing-arrays"],
)
def test_error_details_name_no_server_path_or_temp_file(
    live_server: LiveServer, owner: tuple[uuid.UUID, str], filename: str, data: bytes
) -> None:
    owner_id, key = owner
    with live_server.client(key) as client:
        response = client.post("/v1/datasets", files={"file": (filename, data)})
    assert 400 <= response.status_code < 500, response.text
    assert _leaks(response.text, live_server) == [], response.text
    assert problem(response)["detail"]
    assert_nothing_left(live_server, owner_id)


def test_a_flood_after_the_closing_boundary_is_refused_before_it_is_read(
    live_server: LiveServer, owner: tuple[uuid.UUID, str]
) -> None:
    owner_id, key = owner
    body = rawhttp.multipart_head("d.npz") + payloads.npz_dataset(2) + rawhttp.multipart_tail()
    flood = (b"x" * 64 * 1024 for _ in range(400))  # 25 MiB; the body cap is ~1.5 MiB
    response = rawhttp.send(
        live_server.url,
        "POST",
        "/v1/datasets",
        rawhttp.upload_headers(key),
        [body, *flood],
        chunked=True,
    )
    assert response.status == 400, response.body[:300]
    # Refused as an epilogue past MAX_EPILOGUE_BYTES, not read up to the body cap (413).
    assert f"more than {MAX_EPILOGUE_BYTES} bytes after the closing boundary".encode() in (
        response.body
    )
    assert_nothing_left(live_server, owner_id)


def test_a_flood_before_the_first_boundary_is_refused_at_once(
    live_server: LiveServer, owner: tuple[uuid.UUID, str]
) -> None:
    owner_id, key = owner
    preamble = (b"y" * 64 * 1024 for _ in range(400))
    response = rawhttp.send(
        live_server.url, "POST", "/v1/datasets", rawhttp.upload_headers(key), preamble,
        chunked=True,
    )  # fmt: skip
    # The parser wants the boundary first: the first byte of padding is an error (400),
    # long before the body cap (413).
    assert response.status == 400, response.body[:300]
    assert b"malformed multipart body" in response.body
    assert_nothing_left(live_server, owner_id)


@pytest.mark.parametrize(
    "raw", [RTL * 300 + ".tar.gz", "\x00" * 1000 + ".npz", "日" * 4000 + ".zip", "a" * 300]
)
def test_a_name_that_escaping_grows_past_the_column_is_cut_keeping_its_extension(
    raw: str,
) -> None:
    shown = escape_filename(raw)
    assert len(shown) <= MAX_FILENAME_CHARS
    extension = raw[raw.index(".") :] if "." in raw else ""
    assert shown.endswith("…" + extension)
    # No escape is split: what is left of each one is whole.
    assert re.fullmatch(r"(\\u202e|\\x00|日|a)*…?(\.[a-z.]+)?", shown), shown
