"""Running one repair job: claim it, run the pipeline beside a keeper thread, record how
it ended. Everything the Celery task does, without Celery (tests call it directly).

Outcomes, and what they write (always fenced by the lease):
- succeeded: result files, genotype and metric rows, status `succeeded`;
- awaiting labels: selection picked unlabeled failures; the picks archive is published
  and the job moves to `awaiting_labels` with no lease (no worker waits for the owner;
  the labels upload queues it again, docs/label-on-demand.md);
- cancelled: the user asked (`cancelling`), the pipeline stopped at a step boundary;
- failed: bad input (`RepairInputError`), a full disk, a bug, out of memory (after one
  retry with half the batch sizes): error class and a readable message, no retry
  (retrying a deterministic error only burns GPU hours);
- handed off: infrastructure ended the run (a deploy, the soft time limit, the database
  unreachable past the lease, a transient database/broker error): the job goes back to
  `queued` at once without spending an attempt (`handoffs + 1`, capped), and its message
  is sent again (a transient error propagates instead, so the task retries with backoff);
- lost: the lease went to another worker: nothing is written;
- skipped: another delivery of a job that is running, finished or out of attempts.
Each run works in its own directory promoted from the last one (`worker.rundir`), so
the next run resumes from it and a stale run cannot write into it; once the job has
finished it is reduced to what the results need (`api.services.upkeep.reduce_job`:
resume state deleted, bytes counted on the row).
"""

from __future__ import annotations

import dataclasses
import enum
import gc
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
from repair_core.profiles import halved_batch_sizes
from repair_core.progress import RepairCancelled
from worker.context import WorkerContext
from worker.failures import (
    MAX_ERROR_CHARS,
    describe_error,
    is_disk_full,
    is_out_of_memory,
    time_limit_message,
)
from worker.figures import draw_figures
from worker.inputs import input_files, load_inputs
from worker.journal import JOURNAL_NAME, Journal
from worker.keeper import JobKeeper
from worker.lease import (
    Handoff,
    Lease,
    claim,
    finish,
    hand_off,
    update_fenced,
    utcnow,
    why_not_claimed,
)
from worker.results import store_results
from worker.rundir import newest_run_dir, promote, run_dir_name
from worker.timing import time_limits
from worker.transfer import run_transfer, transfer_files
from worker.transient import TRANSIENT_ERRORS, retry_transient
from worker.writethrough import WriteThrough, restore

log = logging.getLogger(__name__)

# The out-of-memory retry's work directory, inside the run's: the main one is bound to the
# original batch sizes (`WorkDir.bind`), and later runs resume this one.
HALF_BATCH_DIR = "half-batch"


class Outcome(enum.StrEnum):
    succeeded = "succeeded"
    awaiting_labels = "awaiting_labels"
    failed = "failed"
    cancelled = "cancelled"
    handed_off = "handed_off"
    requeued = "requeued"  # handed off for a transient error; the task retries it
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
    work_key: str  # artifact-store key of the folder that holds the job's run directories
    work_root: Path
    journal: Path
    journal_key: str

    @classmethod
    def of(cls, store: ArtifactStore, owner_id: uuid.UUID, job_id: uuid.UUID) -> JobPaths:
        key = f"{job_folder_key(owner_id, job_id)}/work"
        work_root = store.path(key)
        journal_key = f"{job_folder_key(owner_id, job_id)}/{JOURNAL_NAME}"
        return cls(key, work_root, work_root.parent / JOURNAL_NAME, journal_key)

    def run_key(self, run: int) -> str:
        return f"{self.work_key}/{run_dir_name(run)}"

    def run_dir(self, run: int) -> Path:
        return self.work_root / run_dir_name(run)


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
    log.info("job %s claimed by %s (attempt %d, run %d)", job_id, worker, lease.attempt, lease.run)
    paths = JobPaths.of(ctx.store, owner_id, job_id)
    journal = Journal(paths.journal, lease.run)
    keeper = JobKeeper(ctx.sessions, lease, ctx.settings.worker, journal)
    try:
        # From an S3 store: the earlier runs' directories and journal, maybe another
        # machine's. Before anything is journalled here: a pulled journal replaces ours.
        restore(ctx.store, job_folder_key(owner_id, job_id))
    except TRANSIENT_ERRORS:
        log.warning("job %s: its folder could not be restored", job_id, exc_info=True)
        _handoff(ctx, keeper, "the artifact store was unreachable", send=False)
        raise  # the task retries it with backoff
    journal.write(
        "claimed", worker=worker, at=utcnow(), lease_expires_at=lease.expires_at,
        job_attempt=lease.attempt, resumed_stages=_finished_stages(paths),
    )  # fmt: skip
    through = WriteThrough(
        ctx.store, run_key=paths.run_key(lease.run), journal_key=paths.journal_key,
        every_seconds=ctx.settings.worker.writethrough_seconds,
    )  # fmt: skip
    keeper.start()
    through.start()
    try:
        try:
            result = _execute_with_oom_retry(ctx, keeper, paths, journal)
        finally:
            keeper.stop()
            through.stop()
    except RepairCancelled:
        outcome = _stopped(ctx, keeper)
    except SoftTimeLimitExceeded:
        # Not a failure: the job checkpoints every epoch, so the next run resumes it.
        soft, hard = time_limits(ctx.settings.worker)[:2]
        outcome = _handoff(
            ctx, keeper, f"the run reached its soft time limit ({soft} s; {hard} s per run)",
            exhausted=("TimeLimitExceeded", time_limit_message(hard)),
        )  # fmt: skip
    except TRANSIENT_ERRORS as exc:
        log.warning("job %s: transient error; handing it back", job_id, exc_info=True)
        outcome = _handoff(ctx, keeper, f"a transient error: {type(exc).__name__}", send=False)
        journal.write("finished", outcome=outcome.value)
        through.push()
        if outcome is Outcome.requeued:
            raise  # the task retries it with backoff: that is its new message
        return outcome
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
        _free_memory()
    journal.write("finished", outcome=outcome.value)
    through.push()
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


def _execute_with_oom_retry(
    ctx: WorkerContext, keeper: JobKeeper, paths: JobPaths, journal: Journal
) -> RepairResult | AskedForLabels:
    try:
        return _execute(ctx, keeper, paths)
    except Exception as exc:
        if not is_out_of_memory(exc) or not _mark_oom_retry(ctx, keeper.lease):
            raise
        log.warning("job %s ran out of memory; retrying with half the batch sizes", exc_info=exc)
        journal.write("out_of_memory", error=f"{type(exc).__name__}: {str(exc)[:500]}")
    # Out of the except block: the error, whose frames hold the tensors that did not fit,
    # is gone, so their memory can be freed before the retry.
    _free_memory()
    return _execute(ctx, keeper, paths)


def _mark_oom_retry(ctx: WorkerContext, lease: Lease) -> bool:
    """Record the one out-of-memory retry; False when it was used already (or the lease
    is gone)."""
    with ctx.sessions() as session:
        moved = update_fenced(session, lease, {"oom_retries": 1}, where=RepairJob.oom_retries == 0)
        session.commit()
        return moved


def _execute(
    ctx: WorkerContext, keeper: JobKeeper, paths: JobPaths
) -> RepairResult | AskedForLabels:
    lease = keeper.lease
    with ctx.sessions() as session:
        job = session.get_one(RepairJob, lease.job_id)
        is_transfer = job.kind == JOB_KIND_TRANSFER
        files = None if is_transfer else input_files(session, job, ctx.store)
        moved = transfer_files(session, job, ctx.store) if is_transfer else None
        oom_retries = job.oom_retries
    work_dir = paths.run_dir(lease.run)
    if not work_dir.is_dir():  # the first try of this run: take over the last run's files
        promote(paths.work_root, lease.run)
        with ctx.sessions() as session:
            update_fenced(session, lease, {"work_dir": paths.run_key(lease.run)})
            session.commit()
    if moved is not None:
        keeper.cancel_token.check()
        result = run_transfer(
            moved, work_dir=work_dir, device=ctx.settings.device,
            on_progress=keeper.report, cancel=keeper.cancel_token,
        )  # fmt: skip
        if ctx.settings.worker.report_figures:
            draw_figures(result)
        return result
    assert files is not None
    inputs = load_inputs(files)
    config = inputs.config
    if oom_retries:
        halved = halved_batch_sizes(
            config.profile, config.overrides, search=config.search, seed=config.seed
        )
        config = dataclasses.replace(config, overrides={**config.overrides, **halved})
        work_dir = work_dir / HALF_BATCH_DIR
    keeper.cancel_token.check()
    try:
        result = repair(
            inputs.deployed, inputs.data, inputs.failures, config,
            work_dir=work_dir, device=ctx.settings.device,
            on_progress=keeper.report, cancel=keeper.cancel_token, labels=inputs.labels,
            also=inputs.also,
        )  # fmt: skip
    except LabelsNeeded as stop:
        picks = stop.picks
        listing = picks_listing(picks, inputs.data.class_names)
        key = f"{paths.work_key.rsplit('/', 1)[0]}/picks-round{picks.round}.zip"
        tmp = ctx.store.temp_path(".zip")
        try:
            write_picks_archive(tmp, inputs.failures, listing, round_=picks.round)
            ctx.store.publish(tmp, key)
        finally:
            tmp.unlink(missing_ok=True)
        return AskedForLabels(picks, listing, key)
    if oom_retries:
        result.report.info["out_of_memory_retry"] = {
            "batch_sizes": {k: config.overrides[k] for k in halved},
            "reason": "the first try ran out of memory; retried once with half the batch sizes",
        }
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
    try:
        stored = store_results(
            ctx.sessions, ctx.store, keeper.lease, owner_id, result,
            fault_point=ctx.settings.fault_point,
        )  # fmt: skip
    except OSError as exc:  # a full disk while publishing: the published files are removed
        return _failed(ctx, keeper, exc)
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
    if keeper.cancel_requested and not keeper.lost:
        return _finish(ctx, keeper.lease, JobStatus.cancelled, {}, Outcome.cancelled)
    reason = keeper.handoff_reason
    if reason is not None:
        return _handoff(ctx, keeper, reason)
    if keeper.lost:
        return Outcome.lost
    return _finish(ctx, keeper.lease, JobStatus.cancelled, {}, Outcome.cancelled)


def _handoff(
    ctx: WorkerContext,
    keeper: JobKeeper,
    why: str,
    *,
    exhausted: tuple[str, str] | None = None,
    send: bool = True,
) -> Outcome:
    """Hand the job on without spending an attempt, and send its message at once (unless
    the caller's task retry will); past `max_handoffs` it fails."""
    lease, settings = keeper.lease, ctx.settings.worker
    if keeper.lost and not keeper.renewal_failed:
        return Outcome.lost
    limit = settings.max_handoffs
    error = exhausted or (
        "HandoffsExhausted",
        f"the job was handed on {limit} times (worker.max_handoffs) without finishing",
    )

    def write() -> Handoff:
        with ctx.sessions() as session:
            return hand_off(session, lease, why=why, max_handoffs=limit, exhausted_error=error)

    try:
        handed = retry_transient(write, what=f"handing job {lease.job_id} on")
    except TRANSIENT_ERRORS:
        # Still unreachable: the lease runs out and the sweeper re-queues the job.
        log.warning("job %s: could not hand it on", lease.job_id, exc_info=True)
        return Outcome.lost
    log.info("job %s: handoff (%s): %s", lease.job_id, why, handed.value)
    if handed is Handoff.exhausted:
        return Outcome.failed
    if handed is Handoff.lost:
        return Outcome.lost
    if send:
        try:
            ctx.queue.enqueue(lease.job_id)
        except Exception:
            # The row is queued: the sweeper sends its message again later.
            log.warning("job %s: could not send its message", lease.job_id, exc_info=True)
    return Outcome.handed_off if send else Outcome.requeued


def _failed(ctx: WorkerContext, keeper: JobKeeper, exc: Exception) -> Outcome:
    job_id = keeper.lease.job_id
    if keeper.lost:
        log.warning("job %s: failed after losing its lease", job_id, exc_info=exc)
        return Outcome.lost
    error_type, message = describe_error(exc, ctx.settings.worker.phase_hard_seconds)
    if isinstance(exc, RepairInputError) or is_disk_full(exc):
        log.info("job %s: %s: %s", job_id, error_type, message)
    else:
        log.error("job %s failed: %s: %s", job_id, error_type, message, exc_info=exc)
    values = {"error": message[:MAX_ERROR_CHARS], "error_type": error_type}
    return _finish(ctx, keeper.lease, JobStatus.failed, values, Outcome.failed)


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


def _finished_stages(paths: JobPaths) -> list[str]:
    """Stages the newest run directory's ledger marks done (what this run resumes past)."""
    newest = newest_run_dir(paths.work_root)
    if newest is None:
        return []
    try:
        return sorted(json.loads((newest / "ledger.json").read_text()).get("stages", {}))
    except (OSError, ValueError, AttributeError):
        return []


def _free_memory() -> None:
    import torch

    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()  # a no-op unless this process used CUDA
