"""The Celery app of the repair workers: `create_celery_app(settings)` builds one.

Importing this module builds nothing; `worker.main` is the entry point that does
(`celery -A worker.main:app worker`). Each worker consumes only the repair queue
(`settings.broker.queue`), one job at a time: prefetch 1, acknowledged late, and given
back to the broker when its process dies. Postgres holds the job state; the broker only
says "look at job X", so a duplicate or late delivery is a no-op (see
`worker.lease.claim`). The time limits and their invariant are in `worker.timing`.
"""

from __future__ import annotations

from functools import cached_property
from typing import Any

from celery import Celery
from celery.signals import worker_process_init

from api.queue import RUN_JOB_TASK, celery_broker_options
from api.settings import BrokerSettings, Settings, get_settings
from worker.shutdown import RepairWorker
from worker.sweeper import SweeperStep
from worker.tasks import register_tasks
from worker.timing import time_limits
from worker.upkeep import UpkeepStep


def celery_config(settings: Settings) -> dict[str, Any]:
    """Every Celery setting of a repair worker."""
    soft, hard, visibility = time_limits(settings.worker)
    broker = celery_broker_options(settings.broker)
    queue = settings.broker.queue
    transport = {
        **broker.pop("broker_transport_options", {}),
        "visibility_timeout": visibility,
        # Redis: how often a worker looks for unacknowledged messages past the visibility
        # timeout (those of a worker that died). Kombu's default scans every 10th tick of
        # 10 s; a tenth of the timeout (1 s to 60 s) keeps a short one meaningful.
        "unacked_restore_interval": restore_interval_seconds(visibility),
        "unacked_restore_throttle": 1,
    }
    return {
        **broker,
        "broker_transport_options": transport,
        "result_backend_transport_options": {"visibility_timeout": visibility},
        "visibility_timeout": visibility,
        # Only the repair queue: GPU machines run only these workers.
        "task_queues": {queue: {"exchange": queue, "routing_key": queue}},
        "task_default_queue": queue,
        "task_routes": {RUN_JOB_TASK: {"queue": queue}},
        "task_create_missing_queues": False,
        # A long job: taken one at a time and acknowledged when it ends, so a worker that
        # dies mid-job hands the message back (the PG attempt cap bounds the loop).
        "task_acks_late": True,
        "task_reject_on_worker_lost": True,
        "task_acks_on_failure_or_timeout": True,
        "worker_prefetch_multiplier": 1,
        "worker_concurrency": 1,
        # A job process imports torch and the pipeline before it says it is up
        # (`preload_pipeline`); Celery's default 4 s kills it in a loop on a loaded machine.
        "worker_proc_alive_timeout": 60.0,
        "worker_max_tasks_per_child": settings.worker.max_tasks_per_child or None,
        "task_soft_time_limit": soft,
        "task_time_limit": hard,
        "worker_soft_shutdown_timeout": settings.worker.soft_shutdown_seconds,
        "worker_cancel_long_running_tasks_on_connection_loss": True,
        # Postgres holds state and results; nothing goes to a result backend.
        "task_track_started": True,
        "task_ignore_result": True,
        "result_backend": None,
    }


def restore_interval_seconds(visibility: int) -> int:
    """Seconds between a worker's scans for messages whose visibility timeout passed."""
    return max(1, min(60, visibility // 10))


def ensure_broker_folder(broker: BrokerSettings) -> None:
    """The serverless broker's message folders must exist before anyone polls them."""
    if broker.url.startswith("filesystem://"):
        (broker.folder / "processed").mkdir(parents=True, exist_ok=True)


class RepairCelery(Celery):  # type: ignore[misc]
    """A Celery app that knows the service settings it was built from."""

    def __init__(self, settings: Settings | None) -> None:
        super().__init__("repair-worker", set_as_current=False)
        self._repair_settings = settings

    @cached_property
    def Worker(self) -> Any:
        return self.subclass_with_self(RepairWorker)

    @property
    def repair_settings(self) -> Settings:
        return self._repair_settings if self._repair_settings is not None else get_settings()


def create_celery_app(settings: Settings | None = None) -> RepairCelery:
    """The worker app. Without `settings` they are read (from the environment) only when
    the configuration is first needed, so building the app does no work."""
    app = RepairCelery(settings)

    def configure() -> dict[str, Any]:
        current = app.repair_settings
        ensure_broker_folder(current.broker)
        return celery_config(current)

    app.add_defaults(configure)
    register_tasks(app)
    app.steps["worker"].add(SweeperStep)
    app.steps["worker"].add(UpkeepStep)
    worker_process_init.connect(preload_pipeline, weak=False, dispatch_uid="repair-preload")
    return app


def preload_pipeline(**_: Any) -> None:
    """Import torch and the pipeline as soon as a job process starts, while it waits for
    a job, rather than when the job arrives (the parent process never imports them)."""
    import worker.runner  # noqa: F401
