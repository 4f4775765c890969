"""`/v1/repairs/{id}/report.md` and `/v1/repairs/{id}/figures/{name}` over real HTTP."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import UTC, datetime

import pytest
import sqlalchemy as sa

from api.db.models import JobStatus, RepairJob
from api.storage import ArtifactStore
from repair_core.choices import figure_files
from tests.api.conftest import LiveServer
from tests.api.seed import seed_job
from tests.repair_core.evaluation.samples import sample_report

pytestmark = pytest.mark.integration

NewOwner = Callable[[], tuple[uuid.UUID, str]]


def _succeeded_job(live_server: LiveServer, owner_id: uuid.UUID) -> uuid.UUID:
    """A succeeded job with a report and one figure (a PNG and an SVG) in the store."""
    store = ArtifactStore(live_server.artifacts_root)
    with live_server.session_factory() as session:
        job_id = seed_job(session, owner_id, status=JobStatus.succeeded)
    report_key = store.new_key(owner_id, ".json")
    store.write_bytes(report_key, sample_report().to_json().encode())
    store.write_bytes(store.figure_key(owner_id, job_id, "robustness-heatmap.png"), b"\x89PNG.")
    store.write_bytes(store.figure_key(owner_id, job_id, "robustness-heatmap.svg"), b"<svg/>")
    with live_server.session_factory() as session:
        session.execute(
            sa.update(RepairJob)
            .where(RepairJob.id == job_id)
            .values(
                report_key=report_key,
                finished_at=datetime.now(UTC),
                figures=["robustness-heatmap.png", "robustness-heatmap.svg"],
            )
        )
        session.commit()
    return job_id


def test_report_markdown_is_the_reports_table(live_server: LiveServer, new_owner: NewOwner) -> None:
    owner_id, key = new_owner()
    job_id = _succeeded_job(live_server, owner_id)
    with live_server.client(key) as client:
        response = client.get(f"/v1/repairs/{job_id}/report.md")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/markdown")
    assert response.text == sample_report().to_markdown(severity=5)


def test_figures_are_served_by_name_with_their_media_type(
    live_server: LiveServer, new_owner: NewOwner
) -> None:
    owner_id, key = new_owner()
    job_id = _succeeded_job(live_server, owner_id)
    with live_server.client(key) as client:
        png = client.get(f"/v1/repairs/{job_id}/figures/robustness-heatmap.png")
        svg = client.get(f"/v1/repairs/{job_id}/figures/robustness-heatmap.svg")
        listed = client.get(f"/v1/repairs/{job_id}").json()["figures"]
    assert png.status_code == 200 and png.content == b"\x89PNG."
    assert png.headers["content-type"] == "image/png"
    assert svg.headers["content-type"].startswith("image/svg+xml") and svg.content == b"<svg/>"
    assert listed == ["robustness-heatmap.png", "robustness-heatmap.svg"]


def test_an_unknown_figure_name_answers_404_listing_the_valid_names(
    live_server: LiveServer, new_owner: NewOwner
) -> None:
    owner_id, key = new_owner()
    job_id = _succeeded_job(live_server, owner_id)
    with live_server.client(key) as client:
        unknown = client.get(f"/v1/repairs/{job_id}/figures/report.json")
        traversal = client.get(f"/v1/repairs/{job_id}/figures/..%2F..%2Fetc%2Fpasswd")
        absent = client.get(f"/v1/repairs/{job_id}/figures/search-curves.png")
    assert unknown.status_code == 404
    assert unknown.headers["content-type"] == "application/problem+json"
    for name in figure_files():
        assert name in unknown.json()["detail"]
    assert traversal.status_code == 404 and b"root:" not in traversal.content
    # A valid name the job has no figure for (its search recorded nothing).
    assert absent.status_code == 404 and "robustness-heatmap.png" in absent.json()["detail"]


def test_another_owner_sees_neither_report_nor_figures(
    live_server: LiveServer, new_owner: NewOwner
) -> None:
    owner_id, _ = new_owner()
    job_id = _succeeded_job(live_server, owner_id)
    _, intruder = new_owner()
    with live_server.client(intruder) as client:
        answers = [
            client.get(f"/v1/repairs/{job_id}/report.md"),
            client.get(f"/v1/repairs/{job_id}/figures/robustness-heatmap.png"),
        ]
    assert [a.status_code for a in answers] == [404, 404]
    assert all(b"PNG" not in a.content and b"Gauss" not in a.content for a in answers)


def test_figures_of_an_unfinished_job_are_a_conflict(
    live_server: LiveServer, new_owner: NewOwner
) -> None:
    owner_id, key = new_owner()
    with live_server.session_factory() as session:
        job_id = seed_job(session, owner_id, status=JobStatus.running)
    with live_server.client(key) as client:
        response = client.get(f"/v1/repairs/{job_id}/figures/robustness-heatmap.png")
    assert response.status_code == 409 and response.json()["code"] == "result_not_ready"
