"""`/metrics`: metric names and labels, route templates (never raw paths), upload
refusals by reason, jobs and stages and heartbeats from the database, and several API
processes summed through prometheus-client's multiprocess files."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa
from prometheus_client.parser import text_string_to_metric_families

from api.app import create_app
from api.db.models import JobStatus, RepairJob
from api.metrics.database import stage_of
from api.queue import CeleryJobQueue
from api.settings import MetricsSettings, Settings
from tests.api import payloads
from tests.api.conftest import LiveServer, serve
from tests.api.seed import seed_job
from tests.fresh_python import python_output
from worker.heartbeat import record_heartbeat

pytestmark = pytest.mark.integration

NewOwner = Callable[[], tuple[uuid.UUID, str]]
DATASET = frozenset({"kind": "dataset"}.items())
Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]

METRIC_NAMES = {
    "repair_http_request_duration_seconds": ("histogram", {"method", "route", "status"}),
    "repair_upload_bytes": ("counter", {"kind"}),
    "repair_upload_refusals": ("counter", {"kind", "reason"}),
    "repair_jobs": ("gauge", {"status"}),
    "repair_queue_depth": ("gauge", set()),
    "repair_stage_duration_seconds": ("histogram", {"stage"}),
    "repair_worker_heartbeat_timestamp_seconds": ("gauge", {"worker"}),
    "repair_worker_start_timestamp_seconds": ("gauge", {"worker"}),
    "repair_workers_alive": ("gauge", set()),
}


def _scrape(live_server: LiveServer) -> tuple[dict[str, tuple[str, set[str]]], Samples]:
    with live_server.client() as client:
        response = client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    families: dict[str, tuple[str, set[str]]] = {}
    samples: Samples = {}
    for family in text_string_to_metric_families(response.text):
        labels: set[str] = set()
        for sample in family.samples:
            labels |= set(sample.labels) - {"le"}
            samples[(sample.name, frozenset(sample.labels.items()))] = sample.value
        families[family.name] = (family.type, labels)
    return families, samples


def test_metric_names_types_and_labels(live_server: LiveServer, new_owner: NewOwner) -> None:
    owner_id, key = new_owner()
    with live_server.session_factory() as session:
        seed_job(session, owner_id, status=JobStatus.succeeded)
        record_heartbeat(live_server.session_factory, "names@test", started_at=datetime.now(UTC))
    with live_server.client(key) as client:
        client.get("/v1/repairs")
        client.post("/v1/datasets", content=b"x", headers={"Content-Type": "text/plain"})
    families, _ = _scrape(live_server)
    for name, (kind, labels) in METRIC_NAMES.items():
        assert name in families, name
        assert families[name][0] == kind, name
        assert families[name][1] == labels or not families[name][1], (name, families[name])


def test_latency_is_labelled_by_route_template_and_status(
    live_server: LiveServer, new_owner: NewOwner
) -> None:
    _, key = new_owner()
    job_id = uuid.uuid4()
    with live_server.client(key) as client:
        assert client.get(f"/v1/repairs/{job_id}").status_code == 404
        assert client.get(f"/no/such/{job_id}").status_code == 404
    _, samples = _scrape(live_server)
    routes = {
        dict(labels)["route"]
        for name, labels in samples
        if name == "repair_http_request_duration_seconds_count"
    }
    assert "/v1/repairs/{job_id}" in routes and "unmatched" in routes
    assert not any(str(job_id) in route for route in routes)
    count = samples[
        (
            "repair_http_request_duration_seconds_count",
            frozenset({"method": "GET", "route": "/v1/repairs/{job_id}", "status": "404"}.items()),
        )
    ]
    assert count >= 1


def test_refused_uploads_are_counted_by_reason_with_the_bytes_received(
    live_server: LiveServer, new_owner: NewOwner
) -> None:
    _, key = new_owner()
    data = payloads.npz_dataset()
    name, size = "repair_upload_refusals_total", ("repair_upload_bytes_total", DATASET)
    with live_server.client(key) as client:
        before = _scrape(live_server)[1]
        # Refused on its headers: not a byte of the body is read.
        unread = client.post(
            "/v1/datasets", content=b"not a form" * 10, headers={"Content-Type": "text/plain"}
        )
        middle = _scrape(live_server)[1]
        # Refused once the whole body is in: its digest is not the one declared.
        mismatch = client.post(
            "/v1/datasets", files={"file": ("d.npz", data)}, data={"sha256": "0" * 64}
        )
        after = _scrape(live_server)[1]
    assert unread.status_code == 415 and mismatch.status_code == 422
    for response, (old, new) in ((unread, (before, middle)), (mismatch, (middle, after))):
        labels = (name, frozenset({"kind": "dataset", "reason": response.json()["code"]}.items()))
        assert new[labels] - old.get(labels, 0.0) == 1.0
    assert middle.get(size, 0.0) - before.get(size, 0.0) == 0.0
    assert after[size] - middle.get(size, 0.0) >= len(data)


def test_jobs_stages_and_heartbeats_come_from_the_database(
    live_server: LiveServer, new_owner: NewOwner
) -> None:
    owner_id, _ = new_owner()
    before = _scrape(live_server)[1]
    with live_server.session_factory() as session:
        job_id = seed_job(session, owner_id, status=JobStatus.succeeded)
        seed_job(session, owner_id, status=JobStatus.queued)
        session.execute(
            sa.update(RepairJob)
            .where(RepairJob.id == job_id)
            .values(timings={"searching@1": 42.0, "Control:retraining@1": 9.0})
        )
        session.commit()
    now = datetime.now(UTC)
    record_heartbeat(live_server.session_factory, "gpu0@host", started_at=now - timedelta(hours=1))
    record_heartbeat(
        live_server.session_factory, "gone@host", started_at=now, now=now - timedelta(hours=2)
    )
    after = _scrape(live_server)[1]

    def delta(name: str, **labels: str) -> float:
        key = (name, frozenset(labels.items()))
        return after[key] - before.get(key, 0.0)

    assert delta("repair_jobs", status="succeeded") == 1.0
    assert delta("repair_jobs", status="queued") == 1.0
    assert delta("repair_queue_depth") == 1.0
    assert delta("repair_stage_duration_seconds_count", stage="searching") == 1.0
    assert delta("repair_stage_duration_seconds_sum", stage="searching") == 42.0
    assert delta("repair_stage_duration_seconds_bucket", stage="searching", le="60.0") == 1.0
    assert delta("repair_stage_duration_seconds_bucket", stage="searching", le="15.0") == 0.0
    beat = after[
        ("repair_worker_heartbeat_timestamp_seconds", frozenset({"worker": "gpu0@host"}.items()))
    ]
    assert beat == pytest.approx(now.timestamp(), abs=1.0)
    assert delta("repair_workers_alive") >= 1.0
    assert after[("repair_workers_alive", frozenset())] < len(
        [k for k in after if k[0] == "repair_worker_heartbeat_timestamp_seconds"]
    )  # the worker silent for two hours is not alive


def test_stage_keys_of_the_control_row_are_not_the_repairs() -> None:
    assert stage_of("searching@2") == "searching"
    assert stage_of("evaluating") == "evaluating"
    assert stage_of("Control:retraining@1") is None


def test_counters_of_several_processes_are_summed(tmp_path: Path) -> None:
    def child(amount: int) -> str:
        return (
            "from pathlib import Path\n"
            "from api.metrics.process import ProcessMetrics\n"
            f"m = ProcessMetrics(Path({str(tmp_path)!r}))\n"
            f"m.upload_bytes.labels('model').inc({amount})\n"
            "m.requests.labels('GET', '/healthz', '200').observe(0.01)\n"
            "print('ok')\n"
        )

    assert python_output(child(5)) == "ok"
    assert python_output(child(7)) == "ok"
    merged = python_output(
        "from pathlib import Path\n"
        "from api.metrics.process import ProcessMetrics\n"
        f"print(ProcessMetrics(Path({str(tmp_path)!r})).exposition().decode())\n"
    )
    families = {f.name: f for f in text_string_to_metric_families(merged)}
    (total,) = [s for s in families["repair_upload_bytes"].samples if s.name.endswith("_total")]
    assert total.value == 12.0
    counts = [
        s.value
        for s in families["repair_http_request_duration_seconds"].samples
        if s.name.endswith("_count")
    ]
    assert counts == [2.0]


def test_with_a_token_metrics_ask_for_it(api_settings: Settings) -> None:
    settings = api_settings.model_copy(update={"metrics": MetricsSettings(token="s3cret")})
    with serve(create_app(settings, CeleryJobQueue(settings.broker))) as url:
        missing = httpx.get(f"{url}/metrics")
        wrong = httpx.get(f"{url}/metrics", headers={"Authorization": "Bearer nope"})
        right = httpx.get(f"{url}/metrics", headers={"Authorization": "Bearer s3cret"})
    assert missing.status_code == 401 and wrong.status_code == 401
    assert right.status_code == 200 and "repair_jobs" in right.text
