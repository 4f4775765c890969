"""Writing a running job's folder through to a remote artifact store.

With an S3 store the worker runs the job in its scratch folder; a thread pushes the run
directory (checkpoints per stage and per epoch, the ledger) and the attempt journal to
the store every `worker.writethrough_seconds`, and once more when the run ends, so a
worker on another machine that claims the job after this one died pulls them back
(`restore`) and resumes from the last checkpoint that made it. The pipeline writes by
temp file + rename, so a push never sends half a file (dot-named temp files are skipped).
With the local folder the store is the work directory: nothing to do.
"""

from __future__ import annotations

import logging
import threading

from api.storage import ArtifactStore

log = logging.getLogger(__name__)


def restore(store: ArtifactStore, job_folder: str) -> int:
    """Pull the job's folder (earlier runs' directories, the journal) into scratch before a
    run starts; returns how many files came from the store."""
    return store.pull_tree(job_folder) if store.remote else 0


class WriteThrough:
    """Pushes `run_key` (a folder) and `journal_key` (a file) while the run works."""

    def __init__(
        self, store: ArtifactStore, *, run_key: str, journal_key: str, every_seconds: float
    ) -> None:
        self._store = store
        self._run_key = run_key
        self._journal_key = journal_key
        self._every = every_seconds
        self._stop = threading.Event()
        self._lock = threading.Lock()  # one push at a time: the thread's or the final one
        self._thread = threading.Thread(target=self._loop, name="write-through", daemon=True)

    def start(self) -> None:
        if self._store.remote:
            self._thread.start()

    def push(self) -> bool:
        """Push what changed; False (logged) when the store could not be reached."""
        if not self._store.remote:
            return True
        with self._lock:
            try:
                self._store.push_tree(self._run_key)
                if self._store.path(self._journal_key).is_file():
                    self._store.push_file(self._journal_key)
            except Exception:
                log.warning("write-through of %s failed; retrying", self._run_key, exc_info=True)
                return False
        return True

    def stop(self) -> bool:
        """Stop the thread and push a last time; whether that push landed."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join()
        return self.push()

    def _loop(self) -> None:
        while not self._stop.wait(self._every):
            self.push()
