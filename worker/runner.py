"""Running one repair job: claim it, run the pipeline beside a keeper thread, record how
it ended. Everything the Celery task does, without Celery (tests call it directly).

Outcomes, and what they write (always fenced by the lease):
- succeeded: result files, genotype and metric rows, status `succeeded`;
- awaiting labels: selection picked unlabeled failures; the picks archive is published
  and the job moves to `awaiting_labels` with no lease (no worker waits for the owner;
  the labels upload queues it again, docs/label-on-demand.md);
- cancelled: the user asked (`cancelling`), the pipeline stopped at a step boundary;
- failed: bad input (`RepairInputError`), out of memory, a bug, the soft time limit:
  error class and a readable message, no retry (retrying a deterministic error only
  burns GPU hours);
- transient database/broker errors: the job goes back to `queued` and the error
  propagates, so the task retries it with backoff;
- lost: the lease went to another worker (or ran out): nothing is written;
- skipped: another delivery of a job that is running, finished or out of attempts.
The work directory survives every outcome that may run again, so the next attempt
resumes from it; once the job has finished it is reduced to what the results need
(`api.services.upkeep.reduce_job`: resume state deleted, bytes counted on the row).
"""

from __future__ import annotations

import enum
import json
import logging
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from celery.exceptions import SoftTimeLimitExceeded

from api.db.jobs import transition
from api.db.models import JOB_KIND_TRANSFER, JobStatus, RepairJob
from api.services.upkeep import reduce_job
from api.storage import ArtifactStore, job_folder_key
from repair_core.errors import RepairInputError
from repair_core.pipeline import LabelsNeeded, Picks, RepairResult, repair
from repair_core.pipeline.picks_archive import picks_listing, write_picks_archive
from repair_core.progress import RepairCancelled
from worker.context import WorkerContext
from worker.figures import draw_figures
from worker.inputs import input_files, load_inputs
from worker.journal import JOURNAL_NAME, Journal
from worker.keeper import JobKeeper
from worker.lease import Lease, claim, finish, release, update_fenced, utcnow, why_not_claimed
from worker.results import store_results
from worker.transfer import run_transfer, transfer_files
from worker.transient import TRANSIENT_ERRORS, retry_transient

log = logging.getLogger(__name__)

MAX_ERROR_CHARS = 4000


class Outcome(enum.StrEnum):
    succeeded = "succeeded"
    awaiting_labels = "awaiting_labels"
    failed = "failed"
    cancelled = "cancelled"
    requeued = "requeued"
    lost = "lost"
    skipped = "skipped"


@dataclass(frozen=True)
class AskedForLabels:
    """The pipeline stopped for labels; its picks are published at `picks_key`."""

    picks: Picks
    listing: list[dict[str, Any]]
    picks_key: str


@dataclass(frozen=True)
class JobPaths:
    work_key: str  # artifact-store key of the pipeline's work directory
    work_dir: Path
    journal: Path

    @classmethod
    def of(cls, store: ArtifactStore, owner_id: uuid.UUID, job_id: uuid.UUID) -> JobPaths:
        key = f"{job_folder_key(owner_id, job_id)}/work"
        work_dir = store.path(key)
        return cls(key, work_dir, work_dir.parent / JOURNAL_NAME)


def run_job(ctx: WorkerContext, job_id: uuid.UUID, *, worker: str) -> Outcome:
    """Run `job_id` if it can be claimed; returns how it ended. Raises only transient
    errors (to be retried) and process-ending ones (SystemExit, KeyboardInterrupt)."""
    with ctx.sessions() as session:
        lease = claim(
            session, job_id, owner=worker, lease_seconds=ctx.settings.worker.lease_seconds
        )
        if lease is None:
            log.info("job %s skipped: %s", job_id, why_not_claimed(session, job_id))
            return Outcome.skipped
        owner_id = session.get_one(RepairJob, job_id).owner_id
    log.info("job %s claimed by %s (attempt %d)", job_id, worker, lease.attempt)
    paths = JobPaths.of(ctx.store, owner_id, job_id)
    journal = Journal(paths.journal, lease.attempt)
    journal.write(
        "claimed", worker=worker, at=utcnow(), lease_expires_at=lease.expires_at,
        resumed_stages=_finished_stages(paths.work_dir),
    )  # fmt: skip
    keeper = JobKeeper(ctx.sessions, lease, ctx.settings.worker, journal)
    keeper.start()
    try:
        try:
            result = _execute(ctx, keeper, paths)
        finally:
            keeper.stop()
    except RepairCancelled:
        outcome = _stopped(ctx, keeper)
    except TRANSIENT_ERRORS:
        log.warning("job %s: transient error; handing it back", job_id, exc_info=True)
        _give_back(ctx, keeper)
        journal.write("finished", outcome=Outcome.requeued.value)
        raise
    except Exception as exc:
        outcome = _failed(ctx, keeper, exc)
    except BaseException:
        journal.write("finished", outcome="interrupted")
        raise
    else:
        if isinstance(result, AskedForLabels):
            outcome = _awaiting_labels(ctx, keeper, result)
        else:
            outcome = _succeeded(ctx, keeper, owner_id, result)
    finally:
        _free_device_memory()
    journal.write("finished", outcome=outcome.value)
    log.info("job %s: %s", job_id, outcome.value)
    if outcome in _FINISHED:
        _reduce(ctx, job_id)
    return outcome


# Outcomes after which the job never runs again: its resume state is scratch.
_FINISHED = frozenset({Outcome.succeeded, Outcome.failed, Outcome.cancelled})


def _reduce(ctx: WorkerContext, job_id: uuid.UUID) -> None:
    try:
        freed = reduce_job(ctx.sessions, ctx.store, job_id)
    except Exception:
        log.warning("job %s: work directory not reduced; upkeep will", job_id, exc_info=True)
        return
    if freed is not None:
        log.info("job %s: work directory reduced, %d bytes freed", job_id, freed)


def _execute(
    ctx: WorkerContext, keeper: JobKeeper, paths: JobPaths
) -> RepairResult | AskedForLabels:
    lease = keeper.lease
    with ctx.sessions() as session:
        job = session.get_one(RepairJob, lease.job_id)
        is_transfer = job.kind == JOB_KIND_TRANSFER
        files = None if is_transfer else input_files(session, job, ctx.store)
        moved = transfer_files(session, job, ctx.store) if is_transfer else None
        update_fenced(session, lease, {"work_dir": paths.work_key})
        session.commit()
    if moved is not None:
        keeper.cancel_token.check()
        result = run_transfer(
            moved, work_dir=paths.work_dir, device=ctx.settings.device,
            on_progress=keeper.report, cancel=keeper.cancel_token,
        )  # fmt: skip
        if ctx.settings.worker.report_figures:
            draw_figures(result)
        return result
    assert files is not None
    inputs = load_inputs(files)
    keeper.cancel_token.check()
    try:
        result = repair(
            inputs.deployed, inputs.data, inputs.failures, inputs.config,
            work_dir=paths.work_dir, device=ctx.settings.device,
            on_progress=keeper.report, cancel=keeper.cancel_token, labels=inputs.labels,
        )  # fmt: skip
    except LabelsNeeded as stop:
        picks = stop.picks
        listing = picks_listing(picks, inputs.data.class_names)
        key = f"{paths.work_key.rsplit('/', 1)[0]}/picks-round{picks.round}.zip"
        write_picks_archive(ctx.store.path(key), inputs.failures, listing, round_=picks.round)
        return AskedForLabels(picks, listing, key)
    info = result.report.info.get("variants", {}).get(result.primary, {})
    counts = {
        "failures_confirmed": info.get("failures_misclassified", info.get("failures_confirmed")),
        "failures_on_trust": info.get("failures_on_trust", 0),
    }
    with ctx.sessions() as session:
        update_fenced(session, lease, counts)
        session.commit()
    if ctx.settings.worker.report_figures:
        # Here, while the keeper still renews the lease: drawing takes seconds of CPU.
        draw_figures(result)
    return result


def _succeeded(
    ctx: WorkerContext, keeper: JobKeeper, owner_id: uuid.UUID, result: RepairResult
) -> Outcome:
    if keeper.lost:
        return Outcome.lost
    stored = store_results(ctx.sessions, ctx.store, keeper.lease, owner_id, result)
    return Outcome.succeeded if stored else Outcome.lost


def _awaiting_labels(ctx: WorkerContext, keeper: JobKeeper, asked: AskedForLabels) -> Outcome:
    """Hand the job to the owner: `awaiting_labels` with the picks, no lease; a job whose
    cancel was asked meanwhile is cancelled instead (nobody would ask for labels)."""
    if keeper.lost:
        return Outcome.lost
    lease, picks = keeper.lease, asked.picks

    def write() -> Outcome | None:
        now = utcnow()
        with ctx.sessions() as session:
            values = {
                "lease_token": None, "lease_expires_at": None, "eta_seconds": None,
                "updated_at": now, "labels_requested_at": now, "picks": asked.listing,
                "picks_key": asked.picks_key, "failures_confirmed": picks.failures_confirmed,
                "failures_on_trust": picks.failures_on_trust,
            }  # fmt: skip
            if transition(
                session, lease.job_id, to=JobStatus.awaiting_labels,
                from_=frozenset({JobStatus.running}), where=RepairJob.lease_token == lease.token,
                values=values,
            ):  # fmt: skip
                session.commit()
                return Outcome.awaiting_labels
            if finish(session, lease, JobStatus.cancelled):
                session.commit()
                return Outcome.cancelled
            return None

    outcome = retry_transient(write, what=f"asking labels for job {lease.job_id}")
    if outcome is None:
        log.warning("job %s: lease lost before it could ask for labels", lease.job_id)
        return Outcome.lost
    log.info(
        "job %s: %d picks wait for labels (round %d)", lease.job_id, len(picks.rows), picks.round
    )
    return outcome


def _stopped(ctx: WorkerContext, keeper: JobKeeper) -> Outcome:
    if keeper.lost:
        return Outcome.lost
    return _finish(ctx, keeper.lease, JobStatus.cancelled, {}, Outcome.cancelled)


def _failed(ctx: WorkerContext, keeper: JobKeeper, exc: Exception) -> Outcome:
    job_id = keeper.lease.job_id
    if keeper.lost:
        log.warning("job %s: failed after losing its lease", job_id, exc_info=exc)
        return Outcome.lost
    error_type, message = describe_error(exc, ctx.settings.worker.phase_hard_seconds)
    if isinstance(exc, RepairInputError):
        log.info("job %s: bad input: %s", job_id, message)
    else:
        log.error("job %s failed: %s: %s", job_id, error_type, message, exc_info=exc)
    values = {"error": message[:MAX_ERROR_CHARS], "error_type": error_type}
    return _finish(ctx, keeper.lease, JobStatus.failed, values, Outcome.failed)


def describe_error(exc: BaseException, hard_limit_seconds: int) -> tuple[str, str]:
    """(error class, readable message) for the job row."""
    if isinstance(exc, SoftTimeLimitExceeded):
        return "TimeLimitExceeded", (
            f"the repair ran past its time limit (hard limit {hard_limit_seconds} s, "
            "worker.phase_hard_seconds); use a smaller profile or fewer epochs"
        )
    name = type(exc).__name__
    message = str(exc) or repr(exc)
    if name == "OutOfMemoryError" or "out of memory" in message.lower():
        message = (
            f"{message.strip()}\nThe GPU ran out of memory: lower search.batch_size / "
            "train.batch_size (overrides) or use a smaller profile."
        )
    return name, message


def _finish(
    ctx: WorkerContext, lease: Lease, to: JobStatus, values: Mapping[str, object], outcome: Outcome
) -> Outcome:
    def write() -> bool:
        with ctx.sessions() as session:
            moved = finish(session, lease, to, dict(values))
            session.commit()
            return moved

    if retry_transient(write, what=f"marking job {lease.job_id} {to.value}"):
        return outcome
    log.warning("job %s: lease lost before it could be marked %s", lease.job_id, to.value)
    return Outcome.lost


def _give_back(ctx: WorkerContext, keeper: JobKeeper) -> None:
    if keeper.lost:
        return
    try:
        with ctx.sessions() as session:
            release(session, keeper.lease)
    except Exception:
        # The database is down too: the lease runs out and the sweeper re-queues the job.
        log.warning("job %s: could not hand it back", keeper.lease.job_id, exc_info=True)


def _finished_stages(work_dir: Path) -> list[str]:
    ledger = work_dir / "ledger.json"
    try:
        return sorted(json.loads(ledger.read_text()).get("stages", {}))
    except (OSError, ValueError, AttributeError):
        return []


def _free_device_memory() -> None:
    import torch

    if torch.cuda.is_available():
        torch.cuda.empty_cache()  # a no-op unless this process used CUDA
