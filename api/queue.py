"""The job queue as the API sees it: "look at job X". Postgres holds the state.

The default sends the Celery task `repair.run_job` by name, so the API never imports
the worker (or torch). A message that never arrives is recovered by the worker's
sweeper (`worker/sweeper.py`), which re-enqueues old `queued` rows; a duplicate is a no-op there.
"""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING, Any, Protocol

from api.settings import BrokerSettings

if TYPE_CHECKING:
    from celery import Celery

RUN_JOB_TASK = "repair.run_job"
# Publishing gives up quickly: the row is committed already, the sweeper catches up.
PUBLISH_RETRY_POLICY = {
    "max_retries": 2,
    "interval_start": 0,
    "interval_step": 0.2,
    "interval_max": 0.5,
}


class JobQueue(Protocol):
    def enqueue(self, job_id: uuid.UUID) -> None: ...

    def ping(self) -> None:
        """Raise if the broker cannot be reached."""
        ...


def celery_broker_options(broker: BrokerSettings) -> dict[str, Any]:
    """Celery settings of the broker connection shared by the API client and the worker."""
    options: dict[str, Any] = {
        "broker_url": broker.url,
        "task_serializer": "json",
        "result_serializer": "json",
        "accept_content": ["json"],
        "task_default_queue": broker.queue,
        "broker_connection_retry_on_startup": True,
        "broker_connection_timeout": 5,
    }
    if broker.url.startswith("filesystem://"):
        folder = str(broker.folder)
        options["broker_transport_options"] = {
            "data_folder_in": folder,
            "data_folder_out": folder,
            "processed_folder": str(broker.folder / "processed"),
            # Without it kombu writes its exchange table to ./control in the cwd.
            "control_folder": str(broker.folder / "control"),
        }
    return options


def make_celery_client(broker: BrokerSettings) -> Celery:
    from celery import Celery

    if broker.url.startswith("filesystem://"):
        (broker.folder / "processed").mkdir(parents=True, exist_ok=True)
    app = Celery("repair-api", set_as_current=False)
    app.conf.update(celery_broker_options(broker))
    return app


class CeleryJobQueue:
    """Sends `repair.run_job(job_id)` to the repair queue; the Celery app is built lazily."""

    def __init__(self, broker: BrokerSettings) -> None:
        self._broker = broker
        self._app: Celery | None = None

    @property
    def app(self) -> Celery:
        if self._app is None:
            self._app = make_celery_client(self._broker)
        return self._app

    def enqueue(self, job_id: uuid.UUID) -> None:
        self.app.send_task(
            RUN_JOB_TASK,
            args=[str(job_id)],
            queue=self._broker.queue,
            retry=True,
            retry_policy=PUBLISH_RETRY_POLICY,
        )

    def ping(self) -> None:
        with self.app.connection_for_write() as conn:
            conn.ensure_connection(max_retries=1, timeout=3)

    def close(self) -> None:
        if self._app is not None:
            self._app.close()
            self._app = None
