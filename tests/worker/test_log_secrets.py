"""Reliability case 32, the logs: no API key, pepper or password in what the API and a
worker write, with everything at DEBUG (SQL echo included), real processes (uvicorn, a
Celery worker), a Postgres URL and a private Redis that both carry a password."""

from __future__ import annotations

import copy
import json
import secrets
import subprocess
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa
from uvicorn.config import LOGGING_CONFIG

from api.db.migrate import upgrade
from api.db.session import make_engine, make_session_factory
from api.services.owners import create_api_key, create_owner
from api.settings import BrokerSettings, DatabaseSettings, Settings
from repair_core.datasets.ingest.npz import write_npz_images, write_npz_splits
from repairctl.client import RepairClient
from repairctl.service import PROJECT_ROOT, api_command, child_env
from tests.api.conftest import scratch_database
from tests.digits_problem import RepairProblem
from tests.servers import free_port, healthz_answers
from tests.worker.jobs import tiny_config, wait_for, worker_settings_for
from tests.worker.processes import PrivateRedis, WorkerProcess

pytestmark = [pytest.mark.e2e, pytest.mark.integration, pytest.mark.slow]


def _debug_logging(path: Path) -> Path:
    """uvicorn's own logging configuration, with every other logger (ours, SQLAlchemy's)
    at DEBUG on the same output."""
    config = copy.deepcopy(LOGGING_CONFIG)
    config["root"] = {"handlers": ["default"], "level": "DEBUG"}
    for logger in config["loggers"].values():
        logger["level"] = "DEBUG"
    path.write_text(json.dumps(config))
    return path


@pytest.fixture
def secret_redis(tmp_path: Path) -> Iterator[PrivateRedis]:
    server = PrivateRedis(tmp_path, password=f"redis-{secrets.token_urlsafe(16)}")
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def secret_postgres_url(postgres_url: str) -> Iterator[tuple[str, str]]:
    """A database of its own, reached by a URL with a password (the test server trusts
    every local connection, so any password works: it only has to be in the URL)."""
    password = f"pg-{secrets.token_urlsafe(16)}"
    with scratch_database(postgres_url, "repair_logs") as url:
        upgrade(url)
        with_password = sa.make_url(url).set(password=password)
        yield with_password.render_as_string(hide_password=False), password


def test_keys_pepper_and_passwords_never_appear_in_api_or_worker_logs_at_debug(
    secret_redis: PrivateRedis,
    secret_postgres_url: tuple[str, str],
    digits_problem: RepairProblem,
    tmp_path: Path,
) -> None:
    database_url, pg_password = secret_postgres_url
    pepper = f"pepper-{secrets.token_urlsafe(24)}"
    broker = BrokerSettings(url=secret_redis.url, queue=f"logs-{uuid.uuid4().hex[:8]}")
    base = worker_settings_for(database_url, tmp_path / "artifacts", broker=broker)
    settings = base.model_copy(
        update={"auth_pepper": pepper, "database": DatabaseSettings(url=database_url, echo=True)}
    )
    Settings.model_validate(settings.model_dump())  # a production-shaped configuration

    engine = make_engine(database_url)
    with make_session_factory(engine)() as session:
        owner = create_owner(session, name=f"logs-{uuid.uuid4().hex[:8]}", pepper=pepper)
    with make_session_factory(engine)() as session:
        expired = create_api_key(session, owner_id=owner.owner_id, pepper=pepper,
                                 expires_at=datetime.now(UTC) - timedelta(minutes=1))  # fmt: skip
        session.commit()
    engine.dispose()
    key_id = owner.api_key.split("_", 2)[1]
    wrong = f"rk_{key_id}_{secrets.token_urlsafe(32)}"  # a real key id, a forged secret

    port = free_port()
    url = f"http://127.0.0.1:{port}"
    api_log_path = tmp_path / "api.log"
    api_log = api_log_path.open("wb")
    command = [*api_command("127.0.0.1", port, log_level="debug"),
               "--log-config", str(_debug_logging(tmp_path / "logging.json"))]  # fmt: skip
    api = subprocess.Popen(command, cwd=PROJECT_ROOT, env=child_env(settings), stdout=api_log,
                           stderr=subprocess.STDOUT, start_new_session=True)  # fmt: skip
    worker = WorkerProcess(settings, "logs", tmp_path, log_level="DEBUG")
    try:
        wait_for(lambda: healthz_answers(url), timeout=90, what="the API")
        worker.wait_ready(timeout=120)
        with httpx.Client(base_url=url, timeout=30) as http:

            def status(key: str) -> int:
                headers = {"Authorization": f"Bearer {key}"}
                return http.get("/v1/datasets", headers=headers).status_code

            assert status(owner.api_key) == 200
            assert status(wrong) == 401
            assert status(expired) == 401
            assert status("not-a-key") == 401
            # A key in the query string: refused, and its request line is logged.
            assert http.get(f"/v1/datasets?api_key={owner.api_key}").status_code == 401

        write_npz_splits(tmp_path / "digits.npz", digits_problem.data)
        failures = digits_problem.failures
        write_npz_images(tmp_path / "noise.npz", failures.images, failures.labels)
        with RepairClient(url, owner.api_key, timeout=120.0) as client:
            dataset = client.upload_dataset(tmp_path / "digits.npz")
            model = client.upload_model(digits_problem.checkpoint, dataset_id=dataset["id"])
            client.upload_failures(model["id"], tmp_path / "noise.npz")
            job = client.create_repair(model["id"], config=tiny_config())

            def finished() -> bool:
                return client.get_repair(job["id"])["status"] in ("succeeded", "failed")

            wait_for(finished, timeout=300, what="the repair", interval=0.5)
            assert client.get_repair(job["id"])["status"] == "succeeded"
    finally:
        api.terminate()
        api.wait(timeout=30)
        api_log.close()
        worker.stop()

    logs = {"api": api_log_path.read_text(errors="replace"), "worker": worker.log()}
    # The capture is real: DEBUG lines of both, SQL, the refused query-string request.
    assert "DEBUG" in logs["worker"] and "SELECT" in logs["api"], logs["api"][-2000:]
    assert "/v1/datasets?api_key=" in logs["api"]
    key_secrets = {
        "the owner's key": owner.api_key,
        "the secret part of the key": owner.api_key.split("_", 2)[2],
        "the expired key": expired,
        "the forged key": wrong,
        "the pepper": pepper,
        "the Postgres password": pg_password,
        "the Redis password": secret_redis.password or "",
    }
    for where, text in logs.items():
        for what, value in key_secrets.items():
            assert value and value not in text, f"{what} appears in the {where} log"
