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
process keeps Celery's own. Celery's soft shutdown sleeps its whole timeout whenever a task
is active; `RepairWorker` instead ends the wait as soon as no job process is busy, so a
deploy does not wait 60 s for a job that ended a second after the signal. It cannot ask
the pool (the wait runs inside a signal handler of the main process, whose event loop,
the only reader of the job processes' results, is stopped meanwhile): each job process
marks itself busy in a table of shared memory the main process made before forking them.
"""

from __future__ import annotations

import contextlib
import logging
import mmap
import os
import signal
import struct
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from types import FrameType

from celery.apps.worker import Worker
from celery.worker import state

log = logging.getLogger(__name__)

_REQUESTED = threading.Event()

# The busy table: one 8-byte slot per job process (by its pool index), holding its pid
# while it runs a job and 0 otherwise. Made by the worker's main process before the pool
# forks, so every job process shares it; None in any other process.
_SLOT = struct.Struct("q")
_SLOTS = 64
_busy: mmap.mmap | None = None
# How often the soft shutdown looks at the table.
_BUSY_POLL_SECONDS = 0.1


@contextlib.contextmanager
def handoff_on_signals() -> Iterator[None]:
    """While a job runs in this process, SIGTERM and Celery's terminate signal (SIGQUIT
    when remapped) request a handoff instead of ending the process; billiard's handlers
    come back afterwards. Entered in the task body: billiard installs its own handlers
    after `worker_process_init`, so they cannot be set earlier."""
    from billiard.common import TERM_SIGNAL

    _REQUESTED.clear()
    previous = {sig: signal.signal(sig, _on_signal) for sig in {signal.SIGTERM, TERM_SIGNAL}}
    _mark_busy(os.getpid())
    try:
        yield
    finally:
        _mark_busy(0)
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def requested() -> bool:
    return _REQUESTED.is_set()


def _on_signal(signum: int, _frame: FrameType | None) -> None:
    if not _REQUESTED.is_set():
        # Only sets a flag: a signal handler must not take locks (logging would).
        _REQUESTED.set()


def _slot_offset() -> int:
    from billiard.process import current_process

    # The pool numbers its processes 0..concurrency-1; a replacement takes its index.
    index = getattr(current_process(), "index", 0) or 0
    return (index % _SLOTS) * _SLOT.size


def _mark_busy(pid: int) -> None:
    if _busy is not None:
        _SLOT.pack_into(_busy, _slot_offset(), pid)


def busy_job_processes() -> list[int]:
    """Pids of the job processes running a job now. A job process killed mid-job never
    clears its slot: it counts only while it lives (a zombie does not)."""
    if _busy is None:
        return []
    pids = (_SLOT.unpack_from(_busy, i * _SLOT.size)[0] for i in range(_SLOTS))
    return [pid for pid in pids if pid and _alive(pid)]


def _alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    except OSError:  # no /proc (not Linux): a signal 0 tells only that the pid exists
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        return True
    # "pid (comm) state ...": comm may hold spaces and parentheses, the state follows the last.
    return stat.rpartition(")")[2].split()[0] not in ("Z", "X")


class RepairWorker(Worker):  # type: ignore[misc]
    """The worker of `celery worker`: its cold shutdown asks the job processes to hand
    their jobs on, then waits at most `worker_soft_shutdown_timeout` and only while one
    of them is still busy."""

    def on_after_init(self, **kwargs: object) -> None:
        global _busy
        super().on_after_init(**kwargs)
        # Before the pool starts: its processes are forked from this one and inherit it.
        _busy = mmap.mmap(-1, _SLOTS * _SLOT.size)

    def wait_for_soft_shutdown(self) -> None:
        ask_job_processes_to_hand_off()
        timeout = float(self.app.conf.worker_soft_shutdown_timeout)
        # Celery's conditions for a soft shutdown at all (idle workers stop at once).
        if timeout <= 0 or not (
            state.active_requests or self.app.conf.worker_enable_soft_shutdown_on_idle
        ):
            return
        log.warning("Initiating Soft Shutdown: waiting up to %s s for the running job", timeout)
        deadline = time.monotonic() + timeout
        # A request whose job process has not started it yet finds no busy slot: the wait
        # ends, and the cold shutdown gives its message back to the broker.
        while busy_job_processes() and time.monotonic() < deadline:
            time.sleep(_BUSY_POLL_SECONDS)


def ask_job_processes_to_hand_off() -> None:
    for request in tuple(state.active_requests):
        if request.worker_pid:
            with contextlib.suppress(ProcessLookupError):  # it ended meanwhile
                os.kill(request.worker_pid, signal.SIGTERM)
