"""A job process told to stop by its worker: a deploy, or a lost broker connection.

Celery ends a running job by signalling its process: a cold shutdown (a deploy's SIGTERM,
remapped to SIGQUIT, `repairctl.service.worker_env`) after `soft_shutdown_seconds`, and
`worker_cancel_long_running_tasks_on_connection_loss` when the broker went away. Either
way the job did nothing wrong, so instead of dying mid-step the job process notes the
request; the pipeline stops at its next step boundary (the keeper's cancel token), and the
runner hands the job on without spending an attempt (docs/job-lifecycle.md, "Handoffs").

Installed in each job process only (`worker_process_init`), never in the worker's main
process, whose signals are Celery's.
"""

from __future__ import annotations

import signal
import threading
from types import FrameType

_REQUESTED = threading.Event()


def install_handlers() -> None:
    """Turn SIGTERM and Celery's terminate signal (SIGQUIT when remapped) into a request
    to hand the running job on."""
    from billiard.common import TERM_SIGNAL

    for sig in {signal.SIGTERM, TERM_SIGNAL}:
        signal.signal(sig, _on_signal)


def requested() -> bool:
    return _REQUESTED.is_set()


def _on_signal(signum: int, _frame: FrameType | None) -> None:
    if not _REQUESTED.is_set():
        # Only sets a flag: a signal handler must not take locks (logging would).
        _REQUESTED.set()
