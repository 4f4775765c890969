"""`POST /v1/repairs/{id}/transfers` over real HTTP, against Postgres and Redis: who may
transfer what, and what the queued transfer job says."""

from __future__ import annotations

import uuid
from collections.abc import Callable

import pytest
import sqlalchemy as sa

from api.db.models import Genotype, JobStatus, RepairJob
from tests.api.conftest import LiveServer
from tests.api.seed import seed_job, seed_model

pytestmark = pytest.mark.integration

NewOwner = Callable[[], tuple[uuid.UUID, str]]

GENOTYPE = {"normal": [["skip_connect", 0]], "reduce": [["max_pool_3x3", 1]]}


def _source(live_server: LiveServer, owner_id: uuid.UUID, status: JobStatus) -> uuid.UUID:
    """A job in `status` over a seeded model; a succeeded one has two iterations' genotypes."""
    with live_server.session_factory() as session:
        job_id = seed_job(session, owner_id, status=status)
        session.execute(
            sa.update(RepairJob)
            .where(RepairJob.id == job_id)
            .values(config={"profile": "smoke", "seed": 7})
        )
        if status == JobStatus.succeeded:
            for iteration, genotype in enumerate(({"first": 1}, GENOTYPE), start=1):
                session.add(
                    Genotype(
                        owner_id=owner_id, job_id=job_id, iteration=iteration, genotype=genotype
                    )
                )
        session.commit()
    return job_id


def _dataset(live_server: LiveServer, owner_id: uuid.UUID) -> uuid.UUID:
    with live_server.session_factory() as session:
        return seed_model(session, owner_id).dataset_id


def test_a_transfer_of_a_succeeded_job_is_queued_as_a_job_of_kind_transfer(
    live_server: LiveServer, new_owner: NewOwner
) -> None:
    owner_id, key = new_owner()
    source = _source(live_server, owner_id, JobStatus.succeeded)
    dataset = _dataset(live_server, owner_id)
    with live_server.client(key) as client:
        response = client.post(f"/v1/repairs/{source}/transfers", json={"dataset_id": str(dataset)})
        assert response.status_code == 201, response.text
        job = response.json()
        assert response.headers["location"] == f"/v1/repairs/{job['id']}"
        listed = client.get(f"/v1/repairs/{job['id']}").json()
    assert job["kind"] == "transfer" and job["status"] == "queued"
    assert job["source_job_id"] == str(source) and job["dataset_id"] == str(dataset)
    assert job["failure_batch_ids"] == []
    # The last iteration's genotype is copied, with the source's profile and seed.
    assert job["config"] == {"profile": "smoke", "overrides": {}, "seed": 7, "genotype": GENOTYPE}
    assert listed["kind"] == "transfer" and listed["source_job_id"] == str(source)


def test_a_transfer_may_choose_its_profile_and_overrides(
    live_server: LiveServer, new_owner: NewOwner
) -> None:
    owner_id, key = new_owner()
    source = _source(live_server, owner_id, JobStatus.succeeded)
    dataset = _dataset(live_server, owner_id)
    body = {"dataset_id": str(dataset), "profile": "fast", "overrides": {"train.epochs": 2}}
    with live_server.client(key) as client:
        job = client.post(f"/v1/repairs/{source}/transfers", json=body).json()
    assert job["config"]["profile"] == "fast" and job["config"]["overrides"] == {"train.epochs": 2}


@pytest.mark.parametrize("status", [JobStatus.queued, JobStatus.running, JobStatus.failed])
def test_a_transfer_of_a_job_that_has_not_succeeded_is_a_409(
    live_server: LiveServer, new_owner: NewOwner, status: JobStatus
) -> None:
    owner_id, key = new_owner()
    source = _source(live_server, owner_id, status)
    dataset = _dataset(live_server, owner_id)
    with live_server.client(key) as client:
        response = client.post(f"/v1/repairs/{source}/transfers", json={"dataset_id": str(dataset)})
    assert response.status_code == 409, response.text
    problem = response.json()
    assert problem["code"] == "source_not_succeeded" and status.value in problem["detail"]


def test_a_transfer_of_another_owners_job_or_to_another_owners_dataset_is_a_404(
    live_server: LiveServer, new_owner: NewOwner
) -> None:
    owner_id, key = new_owner()
    other_id, _ = new_owner()
    mine = _source(live_server, owner_id, JobStatus.succeeded)
    theirs = _source(live_server, other_id, JobStatus.succeeded)
    my_dataset = _dataset(live_server, owner_id)
    their_dataset = _dataset(live_server, other_id)
    with live_server.client(key) as client:
        cases = {
            "their job": client.post(
                f"/v1/repairs/{theirs}/transfers", json={"dataset_id": str(my_dataset)}
            ),
            "their dataset": client.post(
                f"/v1/repairs/{mine}/transfers", json={"dataset_id": str(their_dataset)}
            ),
            "no such job": client.post(
                f"/v1/repairs/{uuid.uuid4()}/transfers", json={"dataset_id": str(my_dataset)}
            ),
        }
    for case, response in cases.items():
        assert response.status_code == 404, (case, response.text)
    assert "repair job" in cases["their job"].json()["detail"]
    assert "dataset" in cases["their dataset"].json()["detail"]
    with live_server.session_factory() as session:
        kinds = session.scalars(
            sa.select(RepairJob.kind).where(RepairJob.owner_id.in_([owner_id, other_id]))
        ).all()
    assert "transfer" not in kinds  # nothing was queued


def test_a_transfer_request_with_unknown_fields_is_a_422_naming_them(
    live_server: LiveServer, new_owner: NewOwner
) -> None:
    owner_id, key = new_owner()
    source = _source(live_server, owner_id, JobStatus.succeeded)
    with live_server.client(key) as client:
        response = client.post(
            f"/v1/repairs/{source}/transfers",
            json={"dataset_id": str(uuid.uuid4()), "budget": 5},
        )
    assert response.status_code == 422
    assert "budget" in response.text


@pytest.mark.parametrize(
    ("body", "named"),
    [
        ({"overrides": {"train.epoch": 2}}, "override 'train.epoch' is not a setting; train has"),
        # No profile named: checked against the source job's (smoke).
        ({"overrides": {"net.layers": "deep"}}, "override 'net.layers'='deep' does not fit"),
        ({"profile": "fast", "overrides": {"evaluation.severities": "6"}}, "[6] not in 1, 2"),
    ],
)
def test_transfer_overrides_that_do_not_fit_the_profile_are_a_422_and_queue_nothing(
    live_server: LiveServer, new_owner: NewOwner, body: dict[str, object], named: str
) -> None:
    owner_id, key = new_owner()
    source = _source(live_server, owner_id, JobStatus.succeeded)
    dataset = _dataset(live_server, owner_id)
    with live_server.client(key) as client:
        response = client.post(
            f"/v1/repairs/{source}/transfers", json={"dataset_id": str(dataset), **body}
        )
    assert response.status_code == 422, response.text
    problem = response.json()
    assert problem["code"] == "invalid_input" and named in problem["detail"], problem
    with live_server.session_factory() as session:
        kinds = session.scalars(sa.select(RepairJob.kind).where(RepairJob.owner_id == owner_id))
        assert "transfer" not in list(kinds)


def test_a_dataset_a_queued_transfer_trains_on_cannot_be_deleted(
    live_server: LiveServer, new_owner: NewOwner
) -> None:
    owner_id, key = new_owner()
    source = _source(live_server, owner_id, JobStatus.succeeded)
    dataset = _dataset(live_server, owner_id)
    with live_server.client(key) as client:
        job = client.post(f"/v1/repairs/{source}/transfers", json={"dataset_id": str(dataset)})
        response = client.delete(f"/v1/datasets/{dataset}")
    assert response.status_code == 409, response.text
    assert response.json()["code"] == "in_use" and job.json()["id"] in response.text


def test_deleting_the_source_keeps_the_transfer_and_deleting_its_dataset_removes_it(
    live_server: LiveServer, new_owner: NewOwner
) -> None:
    owner_id, key = new_owner()
    source = _source(live_server, owner_id, JobStatus.succeeded)
    dataset = _dataset(live_server, owner_id)
    with live_server.client(key) as client:
        job = client.post(f"/v1/repairs/{source}/transfers", json={"dataset_id": str(dataset)})
        job_id = job.json()["id"]
        with live_server.session_factory() as session:
            session.execute(
                sa.update(RepairJob)
                .where(RepairJob.id == uuid.UUID(job_id))
                .values(status=JobStatus.failed)
            )
            session.commit()
        assert client.delete(f"/v1/repairs/{source}").status_code == 204
        kept = client.get(f"/v1/repairs/{job_id}").json()
        assert kept["kind"] == "transfer" and kept["source_job_id"] is None
        assert kept["config"]["genotype"] == GENOTYPE  # what it needs was copied
        assert client.delete(f"/v1/datasets/{dataset}").status_code == 204
        assert client.get(f"/v1/repairs/{job_id}").status_code == 404
