"""The Celery configuration contract (docs/job-lifecycle.md, fault 20) and the task's
options, and which module builds the app."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from api.queue import RUN_JOB_TASK
from api.settings import BrokerSettings, Settings, WorkerSettings
from tests.fresh_python import python_output
from worker.celery_app import create_celery_app
from worker.timing import TimingError, time_limits
from worker.transient import TRANSIENT_ERRORS


def _conf(settings: Settings) -> dict:
    app = create_celery_app(settings)
    return {key: app.conf[key] for key in app.conf}


@pytest.mark.parametrize("broker", ["redis://127.0.0.1:6379/0", "filesystem://"])
def test_time_limits_keep_a_live_job_from_being_delivered_twice(broker: str) -> None:
    settings = Settings(broker=BrokerSettings(url=broker))
    conf = _conf(settings)
    visibility = conf["broker_transport_options"]["visibility_timeout"]
    # The three visibility timeouts agree and outlast the hard limit.
    assert visibility == conf["result_backend_transport_options"]["visibility_timeout"]
    assert visibility == conf["visibility_timeout"]
    assert visibility > conf["task_time_limit"]
    worker = settings.worker
    assert worker.heartbeat_seconds < worker.lease_seconds < conf["task_soft_time_limit"]
    assert conf["task_soft_time_limit"] < conf["task_time_limit"] < visibility
    # Redis's default visibility timeout (1 h) is far shorter than a repair.
    assert visibility >= 8 * 3600 + 3600


def test_a_worker_takes_one_job_at_a_time_acks_late_and_speaks_only_json() -> None:
    conf = _conf(Settings())
    assert conf["worker_prefetch_multiplier"] == 1
    assert conf["worker_concurrency"] == 1
    assert conf["task_acks_late"] is True
    assert conf["task_reject_on_worker_lost"] is True
    assert conf["task_serializer"] == conf["result_serializer"] == "json"
    assert conf["accept_content"] == ["json"]
    assert conf["task_ignore_result"] is True
    assert conf["worker_max_tasks_per_child"] == 1


def test_a_worker_consumes_only_the_configured_repair_queue() -> None:
    conf = _conf(Settings(broker=BrokerSettings(queue="gpu-repairs")))
    assert list(conf["task_queues"]) == ["gpu-repairs"]
    assert conf["task_default_queue"] == "gpu-repairs"
    assert conf["task_routes"][RUN_JOB_TASK] == {"queue": "gpu-repairs"}


def test_the_task_retries_only_named_transient_errors() -> None:
    task = create_celery_app(Settings()).tasks[RUN_JOB_TASK]
    assert tuple(task.autoretry_for) == TRANSIENT_ERRORS
    assert Exception not in task.autoretry_for and RuntimeError not in task.autoretry_for
    assert task.acks_late is True and task.max_retries >= 1


@pytest.mark.parametrize(
    ("worker", "message"),
    [
        (WorkerSettings(heartbeat_seconds=600, lease_seconds=600), "heartbeat_seconds"),
        (WorkerSettings(lease_seconds=9 * 3600), "lease_seconds"),
        (WorkerSettings(soft_limit_margin_seconds=0), "soft time limit"),
        (WorkerSettings(max_attempts=0), "max_attempts"),
    ],
)
def test_timing_settings_that_break_the_invariant_are_refused(
    worker: WorkerSettings, message: str
) -> None:
    with pytest.raises(TimingError, match=message):
        time_limits(worker)


def test_the_visibility_margin_is_a_setting_and_sets_how_often_lost_messages_are_sought() -> None:
    short = WorkerSettings(
        heartbeat_seconds=0.5, lease_seconds=3, phase_hard_seconds=40, soft_limit_margin_seconds=10,
        visibility_margin_seconds=2,
    )  # fmt: skip
    conf = _conf(Settings(broker=BrokerSettings(url="redis://127.0.0.1:6379/0"), worker=short))
    assert conf["visibility_timeout"] == conf["broker_transport_options"]["visibility_timeout"]
    assert conf["visibility_timeout"] == 42
    assert conf["broker_transport_options"]["unacked_restore_interval"] == 4
    assert conf["broker_transport_options"]["unacked_restore_throttle"] == 1
    default = _conf(Settings(broker=BrokerSettings(url="redis://127.0.0.1:6379/0")))
    assert default["visibility_timeout"] == 8 * 3600 + 3600
    assert default["broker_transport_options"]["unacked_restore_interval"] == 60
    with pytest.raises(ValidationError, match="visibility_margin_seconds"):
        WorkerSettings(visibility_margin_seconds=0)


def test_only_the_entry_point_builds_a_celery_app_when_imported() -> None:
    # Every other module of worker/, including ones added later, is imported first.
    code = (
        "import importlib, pkgutil, sys, celery._state as state, worker;"
        "[importlib.import_module(m.name) for m in"
        " pkgutil.walk_packages(worker.__path__, 'worker.') if m.name != 'worker.main'];"
        "print(len(list(state._get_active_apps())));"
        "import worker.main;"
        "print(type(worker.main.app).__name__, len(list(state._get_active_apps())))"
    )
    assert python_output(code).split("\n") == ["0", "RepairCelery 1"]


def test_checking_the_time_limits_needs_neither_celery_nor_the_database() -> None:
    code = "import sys, worker.timing; print('celery' in sys.modules, 'sqlalchemy' in sys.modules)"
    assert python_output(code) == "False False"
