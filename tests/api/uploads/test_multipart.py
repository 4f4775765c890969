"""Upload transport, for every upload route: caps, media types, malformed and hostile
multipart bodies, disconnects. Each failure answers 4xx with a useful message and
leaves no temp file, no row and no stored file behind."""

from __future__ import annotations

import time
import uuid
import zipfile
from collections.abc import Callable, Iterator
from io import BytesIO

import pytest

from tests.api import rawhttp
from tests.api.conftest import TEST_LIMITS, LiveServer
from tests.api.helpers import assert_nothing_left, problem, temp_files
from tests.api.seed import seed_model

pytestmark = pytest.mark.integration

NewOwner = Callable[[], tuple[uuid.UUID, str]]


@pytest.fixture
def owner(live_server: LiveServer, new_owner: NewOwner) -> tuple[uuid.UUID, str]:
    return new_owner()


def _zip_bytes() -> bytes:
    buf = BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("train/a/x.png", b"x")
    return buf.getvalue()


def test_content_length_over_the_cap_answers_413_before_the_body_is_read(
    live_server: LiveServer, owner: tuple[uuid.UUID, str]
) -> None:
    owner_id, key = owner
    response = rawhttp.send(
        live_server.url,
        "POST",
        "/v1/datasets",
        rawhttp.upload_headers(key, 50 * 1024**3),
        # The server must answer without these bytes: none is sent once it has.
        (b"\0" * 65536 for _ in range(16)),
    )
    assert response.status == 413
    assert b"upload_too_large" in response.body and b"Content-Length" in response.body
    assert_nothing_left(live_server, owner_id)


def test_a_chunked_body_answers_413_as_soon_as_it_passes_the_cap(
    live_server: LiveServer, owner: tuple[uuid.UUID, str]
) -> None:
    owner_id, key = owner
    CHUNKS = 400  # 25 MiB, 50x the cap

    def body() -> Iterator[bytes]:
        yield rawhttp.multipart_head("big.zip")
        for _ in range(CHUNKS):
            yield b"\0" * 65536

    response = rawhttp.send(
        live_server.url,
        "POST",
        "/v1/datasets",
        rawhttp.upload_headers(key),
        body(),
        chunked=True,
    )
    assert response.status == 413
    assert str(TEST_LIMITS.dataset_bytes).encode() in response.body
    # The answer came long before the whole body (socket buffers hold a few MiB).
    assert response.bytes_sent < CHUNKS * 65536 / 2
    assert_nothing_left(live_server, owner_id)


@pytest.mark.parametrize(
    ("path", "cap"),
    [("/v1/datasets", TEST_LIMITS.dataset_bytes), ("/v1/models", TEST_LIMITS.checkpoint_bytes)],
)
def test_every_upload_route_enforces_its_own_cap(
    live_server: LiveServer, owner: tuple[uuid.UUID, str], path: str, cap: int
) -> None:
    owner_id, key = owner
    with live_server.client(key) as client:
        response = client.post(path, files={"file": ("f.zip", b"\0" * (cap + 1))})
    assert response.status_code == 413
    assert str(cap) in problem(response)["detail"]  # type: ignore[operator]
    assert_nothing_left(live_server, owner_id)


def test_failure_batch_upload_enforces_its_cap(
    live_server: LiveServer, owner: tuple[uuid.UUID, str]
) -> None:
    owner_id, key = owner
    with live_server.session_factory() as session:
        seeded = seed_model(session, owner_id, batches=0)
    cap = TEST_LIMITS.failure_batch_bytes
    with live_server.client(key) as client:
        response = client.post(
            f"/v1/models/{seeded.model_id}/failure-batches",
            files={"file": ("f.zip", b"\0" * (cap + 1))},
        )
    assert response.status_code == 413
    assert str(cap) in problem(response)["detail"]  # type: ignore[operator]
    assert_nothing_left(live_server, owner_id, rows={"datasets": 1, "models": 1}, files=0)


def test_wrong_content_type_answers_415(
    live_server: LiveServer, owner: tuple[uuid.UUID, str]
) -> None:
    owner_id, key = owner
    with live_server.client(key) as client:
        as_json = client.post("/v1/datasets", json={"file": "abc"})
        as_raw = client.post(
            "/v1/datasets", content=b"PK\x03\x04", headers={"Content-Type": "application/zip"}
        )
    for response in (as_json, as_raw):
        assert response.status_code == 415
        assert "multipart/form-data" in problem(response)["detail"]  # type: ignore[operator]
    assert_nothing_left(live_server, owner_id)


@pytest.mark.parametrize(
    ("filename", "content", "code"),
    [
        ("data.rar", b"Rar!\x1a\x07", "unsupported_file_type"),
        ("data.tar", _zip_bytes(), "content_mismatch"),  # a zip renamed .tar
        ("data.tar.gz", b"plain text", "content_mismatch"),
    ],
)
def test_a_file_whose_name_or_bytes_are_not_an_accepted_kind_answers_415(
    live_server: LiveServer, owner: tuple[uuid.UUID, str], filename: str, content: bytes, code: str
) -> None:
    owner_id, key = owner
    with live_server.client(key) as client:
        response = client.post("/v1/datasets", files={"file": (filename, content)})
    assert response.status_code == 415
    assert problem(response)["code"] == code
    assert_nothing_left(live_server, owner_id)


def test_html_sent_as_a_checkpoint_answers_415(
    live_server: LiveServer, owner: tuple[uuid.UUID, str]
) -> None:
    owner_id, key = owner
    with live_server.session_factory() as session:
        seeded = seed_model(session, owner_id, batches=0)
    with live_server.client(key) as client:
        response = client.post(
            "/v1/models",
            files={"file": ("model.pt", b"<!doctype html><html></html>")},
            data={"dataset_id": str(seeded.dataset_id)},
        )
    assert response.status_code == 415
    assert problem(response)["code"] == "content_mismatch"
    assert_nothing_left(live_server, owner_id, rows={"datasets": 1, "models": 1}, files=0)


def test_a_declared_sha256_that_does_not_match_answers_422(
    live_server: LiveServer, owner: tuple[uuid.UUID, str]
) -> None:
    owner_id, key = owner
    with live_server.client(key) as client:
        response = client.post(
            "/v1/datasets", files={"file": ("d.zip", _zip_bytes())}, data={"sha256": "a" * 64}
        )
    assert response.status_code == 422
    body = problem(response)
    assert body["code"] == "digest_mismatch" and "a" * 64 in body["detail"]  # type: ignore[operator]
    assert_nothing_left(live_server, owner_id)


@pytest.mark.parametrize(
    ("body", "message"),
    [
        # No closing boundary: the body was cut.
        (rawhttp.multipart_head("d.zip") + b"PK\x03\x04", "closing boundary"),
        # Two file parts.
        (
            rawhttp.multipart_head("a.zip")
            + b"x\r\n"
            + rawhttp.multipart_head("b.zip")[len(b"") :].replace(b"--", b"--", 1)
            + b"y"
            + rawhttp.multipart_tail(),
            "exactly one `file` part",
        ),
        # A field nobody asked for.
        (
            rawhttp.multipart_head("d.zip", {"evil": "1"}) + b"x" + rawhttp.multipart_tail(),
            "unknown form field `evil`",
        ),
        # Only fields, no file.
        (
            f'--{rawhttp.BOUNDARY}\r\nContent-Disposition: form-data; name="name"\r\n\r\n'
            f"n\r\n--{rawhttp.BOUNDARY}--\r\n".encode(),
            "missing the `file` part",
        ),
    ],
    ids=["truncated", "two-files", "unknown-field", "no-file"],
)
def test_malformed_multipart_bodies_answer_400(
    live_server: LiveServer, owner: tuple[uuid.UUID, str], body: bytes, message: str
) -> None:
    owner_id, key = owner
    with live_server.client(key) as client:
        response = client.post(
            "/v1/datasets", content=body, headers={"Content-Type": rawhttp.MULTIPART}
        )
    assert response.status_code == 400, response.text
    assert message in problem(response)["detail"]  # type: ignore[operator]
    assert_nothing_left(live_server, owner_id)


def test_hostile_multipart_is_refused_quickly(
    live_server: LiveServer, owner: tuple[uuid.UUID, str]
) -> None:
    _owner_id, key = owner
    many_headers = (
        f"--{rawhttp.BOUNDARY}\r\n".encode()
        + b"".join(f"X-H{i}: v\r\n".encode() for i in range(10_000))
        + b"\r\nx"
    )
    many_fields = b"".join(
        f'--{rawhttp.BOUNDARY}\r\nContent-Disposition: form-data; name="name"\r\n\r\nv\r\n'.encode()
        for _ in range(2000)
    )
    # The CVE-2024-24762 ReDoS shape.
    redos = "multipart/form-data; boundary=x;" + ";" * 5000 + "a" * 5000
    with live_server.client(key) as client:
        started = time.monotonic()
        responses = [
            client.post(
                "/v1/datasets", content=many_headers, headers={"Content-Type": rawhttp.MULTIPART}
            ),
            client.post(
                "/v1/datasets", content=many_fields, headers={"Content-Type": rawhttp.MULTIPART}
            ),
            client.post("/v1/datasets", content=b"x", headers={"Content-Type": redos}),
        ]
        elapsed = time.monotonic() - started
    assert [r.status_code for r in responses] == [400, 400, 400]
    assert elapsed < 3.0
    assert temp_files(live_server) == []


def test_negative_content_length_is_refused(
    live_server: LiveServer, owner: tuple[uuid.UUID, str]
) -> None:
    _owner_id, key = owner
    response = rawhttp.send(
        live_server.url,
        "POST",
        "/v1/datasets",
        rawhttp.upload_headers(key, "-5"),
        [],
    )
    assert response.status == 400


def test_a_client_that_disconnects_mid_upload_leaves_no_temp_file(
    live_server: LiveServer, owner: tuple[uuid.UUID, str]
) -> None:
    owner_id, key = owner
    body = rawhttp.multipart_head("d.zip") + b"PK\x03\x04" + b"\0" * 100_000
    rawhttp.send_partial_and_vanish(
        live_server.url,
        "/v1/datasets",
        rawhttp.upload_headers(key, len(body) + 300_000),
        body,
    )
    # The server notices the disconnect on its own schedule: wait for the cleanup.
    deadline = time.monotonic() + 10
    while temp_files(live_server) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert_nothing_left(live_server, owner_id)


def test_a_stalled_upload_does_not_block_health_checks(
    live_server: LiveServer, owner: tuple[uuid.UUID, str]
) -> None:
    _owner_id, key = owner
    body = rawhttp.multipart_head("d.zip") + b"PK\x03\x04" + b"\0" * 200_000
    sock = rawhttp.open_slow_upload(
        live_server.url,
        "/v1/datasets",
        rawhttp.upload_headers(key, len(body) + 100_000),
        body,
    )
    try:
        with live_server.client() as client:
            client.get("/healthz")  # warm the connection
            started = time.monotonic()
            response = client.get("/healthz")
            elapsed = time.monotonic() - started
        assert response.status_code == 200
        assert elapsed < 0.2
    finally:
        sock.close()
