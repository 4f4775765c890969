"""A job process told to stop by its worker: a deploy, or a lost broker connection.

A deploy's SIGTERM is Celery's cold shutdown (remapped to SIGQUIT,
`repairctl.service.worker_env`): the worker waits `soft_shutdown_seconds`, then kills
what still runs. `RepairWorker` first asks every job process to hand its job on, so the
wait is spent checkpointing instead of computing what the SIGKILL would throw away. A
lost broker connection (`worker_cancel_long_running_tasks_on_connection_loss`) signals
the job process the same way. Either way the job did nothing wrong: the job process
notes the request, the pipeline stops at its next step boundary (the keeper's cancel
token), and the runner hands the job on without spending an attempt
(docs/job-lifecycle.md, "Handoffs").

The handlers are installed in the job process while it runs a job; the worker's main
process keeps Celery's own.
"""

from __future__ import annotations

import contextlib
import os
import signal
import threading
from collections.abc import Iterator
from types import FrameType

from celery.apps.worker import Worker
from celery.worker import state

_REQUESTED = threading.Event()


@contextlib.contextmanager
def handoff_on_signals() -> Iterator[None]:
    """While a job runs in this process, SIGTERM and Celery's terminate signal (SIGQUIT
    when remapped) request a handoff instead of ending the process; billiard's handlers
    come back afterwards. Entered in the task body: billiard installs its own handlers
    after `worker_process_init`, so they cannot be set earlier."""
    from billiard.common import TERM_SIGNAL

    _REQUESTED.clear()
    previous = {sig: signal.signal(sig, _on_signal) for sig in {signal.SIGTERM, TERM_SIGNAL}}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def requested() -> bool:
    return _REQUESTED.is_set()


def _on_signal(signum: int, _frame: FrameType | None) -> None:
    if not _REQUESTED.is_set():
        # Only sets a flag: a signal handler must not take locks (logging would).
        _REQUESTED.set()


class RepairWorker(Worker):  # type: ignore[misc]
    """The worker of `celery worker`: its cold shutdown asks the job processes to hand
    their jobs on before it waits for them."""

    def wait_for_soft_shutdown(self) -> None:
        ask_job_processes_to_hand_off()
        super().wait_for_soft_shutdown()


def ask_job_processes_to_hand_off() -> None:
    for request in tuple(state.active_requests):
        if request.worker_pid:
            with contextlib.suppress(ProcessLookupError):  # it ended meanwhile
                os.kill(request.worker_pid, signal.SIGTERM)
