"""Schema-driven fuzzing of every operation in the live app's OpenAPI: no 5xx, and every
answer matches the documented status codes, media types and schemas."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import not_a_server_error
from schemathesis.config import SchemathesisConfig
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    ignored_auth,
    response_schema_conformance,
    status_code_conformance,
)

from tests.api.conftest import LiveServer
from tests.api.seed import seed_model

pytestmark = [pytest.mark.integration, pytest.mark.slow]

EXAMPLES_PER_OPERATION = 15  # per operation and pass (random ids, then real ones)
# An event stream (`GET /v1/repairs/{job_id}/events`) sends its job's state at once, then
# an event only when the job changes. The fuzzed job is queued and no worker takes it, so
# its stream sent that one event and then nothing until schemathesis' 10 s request timeout
# cut it: 10 s of silence per example with a real id (150 of the test's 160 s). Reading
# one event validates the same bytes.
CONFIG = SchemathesisConfig.from_dict({"max-stream-events": 1})
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
    ignored_auth,
]


@pytest.fixture
def fuzz_owner(
    live_server: LiveServer, new_owner: Callable[[], tuple[uuid.UUID, str]]
) -> tuple[str, dict[str, str]]:
    """A key, and ids of the owner's real resources (a queued job included)."""
    owner_id, key = new_owner()
    with live_server.session_factory() as session:
        seeded = seed_model(session, owner_id)
    with live_server.client(key) as client:
        job = client.post("/v1/repairs", json={"model_id": str(seeded.model_id)}).json()
    ids = {
        "dataset_id": str(seeded.dataset_id),
        "model_id": str(seeded.model_id),
        "batch_id": str(seeded.batch_ids[0]),
        "job_id": job["id"],
    }
    return key, ids


def _with_real_ids(case: Any, ids: dict[str, str]) -> None:
    """Point the case at existing resources, so that it gets past the 404s."""
    for name in list(case.path_parameters or {}):
        if name in ids:
            case.path_parameters[name] = ids[name]
    if isinstance(case.body, dict):
        for name in ("model_id", "dataset_id"):
            if name in case.body:
                case.body[name] = ids[name]


def test_no_operation_answers_5xx_or_breaks_its_schema(
    live_server: LiveServer, fuzz_owner: tuple[str, dict[str, str]]
) -> None:
    # schemathesis' pytest plugin (`from_fixture`) does not run on pytest 9; driving
    # hypothesis per operation does the same.
    schema = schemathesis.openapi.from_url(f"{live_server.url}/openapi.json", config=CONFIG)
    key, ids = fuzz_owner
    headers = {"Authorization": f"Bearer {key}"}
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 14
    for operation in operations:
        for real_ids in (False, True):
            _fuzzer(operation, headers, ids if real_ids else None)()


def _fuzzer(operation: Any, headers: dict[str, str], ids: dict[str, str] | None) -> Any:
    @given(case=operation.as_strategy())
    @settings(
        max_examples=EXAMPLES_PER_OPERATION,
        deadline=None,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    def fuzz(case: Any) -> None:
        if ids is not None:
            _with_real_ids(case, ids)
        case.call_and_validate(headers=headers, checks=CHECKS)

    return fuzz
