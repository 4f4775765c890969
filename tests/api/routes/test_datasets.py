"""`/v1/datasets`: upload (validated in the sandbox), dedup, list, get, and every kind of
bad archive answering 4xx with a useful message and leaving nothing behind."""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Callable

import pytest

from tests.api import payloads
from tests.api.conftest import TEST_LIMITS, LiveServer
from tests.api.helpers import assert_nothing_left, problem

pytestmark = pytest.mark.integration

NewOwner = Callable[[], tuple[uuid.UUID, str]]


@pytest.fixture
def owner(new_owner: NewOwner) -> tuple[uuid.UUID, str]:
    return new_owner()


@pytest.mark.parametrize(
    ("filename", "build"),
    [
        ("cifar.tar", lambda: payloads.tar_bytes(payloads.imagefolder_files())),
        ("cifar.tar.gz", lambda: payloads.tar_bytes(payloads.imagefolder_files(), gz=True)),
        ("cifar.zip", lambda: payloads.zip_bytes(payloads.imagefolder_files())),
    ],
)
def test_an_imagefolder_archive_becomes_a_dataset_with_classes_counts_shape_and_digest(
    live_server: LiveServer,
    owner: tuple[uuid.UUID, str],
    filename: str,
    build: Callable[[], bytes],
) -> None:
    owner_id, key = owner
    data = build()
    with live_server.client(key) as client:
        response = client.post(
            "/v1/datasets", files={"file": (filename, data)}, data={"name": "tiny"}
        )
        assert response.status_code == 201, response.text
        dataset = response.json()
        shown = client.get(f"/v1/datasets/{dataset['id']}").json()
        listed = client.get("/v1/datasets").json()
    assert dataset["class_names"] == list(payloads.CLASSES) and dataset["num_classes"] == 3
    assert dataset["split_counts"] == {"train": 9, "test": 6}
    assert dataset["image_shape"] == [3, 8, 8]
    assert dataset["sha256"] == hashlib.sha256(data).hexdigest()
    assert dataset["size_bytes"] == len(data) and dataset["name"] == "tiny"
    assert shown == dataset and [d["id"] for d in listed["data"]] == [dataset["id"]]
    assert_nothing_left(live_server, owner_id, rows={"datasets": 1})


def test_an_npz_becomes_a_dataset(live_server: LiveServer, owner: tuple[uuid.UUID, str]) -> None:
    _owner_id, key = owner
    with live_server.client(key) as client:
        response = client.post("/v1/datasets", files={"file": ("d.npz", payloads.npz_dataset())})
    assert response.status_code == 201, response.text
    assert response.json()["split_counts"] == {"train": 9, "test": 3}
    assert response.json()["image_shape"] == [3, 8, 8]


def test_an_identical_reupload_returns_the_same_dataset(
    live_server: LiveServer, owner: tuple[uuid.UUID, str]
) -> None:
    owner_id, key = owner
    data = payloads.zip_bytes(payloads.imagefolder_files())
    digest = hashlib.sha256(data).hexdigest()
    with live_server.client(key) as client:
        first = client.post("/v1/datasets", files={"file": ("a.zip", data)})
        second = client.post(
            "/v1/datasets", files={"file": ("b.zip", data)}, data={"sha256": digest}
        )
    assert first.status_code == 201 and second.status_code == 200
    assert first.json()["id"] == second.json()["id"]
    assert_nothing_left(live_server, owner_id, rows={"datasets": 1})


@pytest.mark.parametrize(
    ("filename", "build", "code", "words"),
    [
        (
            "cut.tar.gz",
            lambda: payloads.tar_bytes(payloads.imagefolder_files(), gz=True)[:-200],
            None,
            "truncated",
        ),
        ("dotdot.tar", lambda: payloads.hostile_tar("dotdot"), "archive_unsafe", ".."),
        ("abs.tar", lambda: payloads.hostile_tar("absolute"), "archive_unsafe", "absolute"),
        ("link.tar", lambda: payloads.hostile_tar("symlink"), "archive_unsafe", "link"),
        (
            "bomb.zip",
            lambda: payloads.zip_bomb(TEST_LIMITS.unpacked_bytes + 1),
            "limit_exceeded",
            "",
        ),
        (
            "text.zip",
            lambda: payloads.zip_bytes(
                {**payloads.imagefolder_files(), "train/cat/notes.png": b"not an image at all"}
            ),
            None,
            "notes.png",
        ),
        (
            "pngbomb.zip",
            lambda: payloads.zip_bytes(
                {**payloads.imagefolder_files(), "train/cat/big.png": payloads.png_bomb(200)}
            ),
            None,
            "big.png",
        ),
    ],
    ids=["truncated", "dotdot", "absolute", "symlink", "zip-bomb", "non-image", "png-bomb"],
)
def test_a_bad_archive_answers_422_naming_the_problem_and_leaves_nothing(
    live_server: LiveServer,
    owner: tuple[uuid.UUID, str],
    filename: str,
    build: Callable[[], bytes],
    code: str | None,
    words: str,
) -> None:
    owner_id, key = owner
    with live_server.client(key) as client:
        response = client.post("/v1/datasets", files={"file": (filename, build())})
    assert response.status_code == 422, response.text
    body = problem(response)
    if code is not None:
        assert body["code"] == code
    assert words.lower() in str(body["detail"]).lower()
    assert_nothing_left(live_server, owner_id)


def test_npz_labels_out_of_range_answer_422(
    live_server: LiveServer, owner: tuple[uuid.UUID, str]
) -> None:
    import io

    import numpy as np

    owner_id, key = owner
    buf = io.BytesIO()
    np.savez(
        buf,
        x_train=np.zeros((2, 3, 8, 8), np.uint8),
        y_train=np.array([0, 7], np.int64),
        x_test=np.zeros((1, 3, 8, 8), np.uint8),
        y_test=np.array([-1], np.int64),
    )
    with live_server.client(key) as client:
        response = client.post("/v1/datasets", files={"file": ("d.npz", buf.getvalue())})
    assert response.status_code == 422
    assert "label" in str(problem(response)["detail"]).lower()
    assert_nothing_left(live_server, owner_id)
