"""`/v1/repairs`: create (idempotent), list, get, cancel, delete, label, and download the
results (model, report as JSON, markdown and PNG, the report figures)."""

from __future__ import annotations

import base64
import json
import uuid
from collections.abc import AsyncIterator
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header, Query, Request, Response, status
from fastapi.responses import FileResponse, JSONResponse, PlainTextResponse
from fastapi.sse import EventSourceResponse, ServerSentEvent
from sqlalchemy.orm import Session

from api.db.models import JobStatus
from api.deps import (
    GateDep,
    OwnerDep,
    QueueDep,
    SessionDep,
    SettingsDep,
    StoreDep,
    limit_job_creation,
)
from api.downloads import stored_response
from api.events import JobStreamDep
from api.schemas.common import problem_responses
from api.schemas.repairs import (
    ModelFormatName,
    ModelSizes,
    PickPublic,
    PicksPublic,
    RepairCreate,
    RepairPublic,
    RepairsPublic,
    TransferCreate,
)
from api.services import deletion, labels, repairs, transfers
from api.services.repairs import RepairView
from repair_core import choices
from repair_core.choices import FIGURE_FORMATS
from repair_core.evaluation.report import EvaluationReport

router = APIRouter(prefix="/repairs", tags=["repairs"])


def _public(view: RepairView) -> RepairPublic:
    job = view.job
    return RepairPublic(
        id=job.id,
        kind=job.kind,
        source_job_id=job.source_job_id,
        dataset_id=job.dataset_id,
        model_id=job.model_id,
        failure_batch_ids=[uuid.UUID(b) for b in job.failure_batch_ids],
        config=job.config,
        status=job.status,
        stage=job.stage,
        progress=job.progress,
        step=job.step,
        total=job.total,
        eta_seconds=job.eta_seconds,
        attempts=job.attempts,
        max_attempts=job.max_attempts,
        handoffs=job.handoffs,
        oom_retries=job.oom_retries,
        live_metrics=job.metrics,
        metrics=view.metrics,
        genotype=view.genotype,
        error=job.error,
        error_type=job.error_type,
        timings=job.timings,
        result_sha256=job.result_model_sha256,
        model_formats=repairs.model_formats(job),
        model_size=None if view.model_size is None else ModelSizes.model_validate(view.model_size),
        export_max_abs_diff=view.export_max_abs_diff,
        clean_accuracy_dropped=view.clean_accuracy_dropped,
        picks_to_label=len(job.picks),
        label_rounds=job.label_rounds,
        labels_requested_at=job.labels_requested_at,
        failures_confirmed=job.failures_confirmed,
        failures_on_trust=job.failures_on_trust,
        figures=list(job.figures or []),
        variants=list(job.variants or []),
        variant_downloads=repairs.variant_downloads(job),
        created_at=job.created_at,
        started_at=job.started_at,
        finished_at=job.finished_at,
        updated_at=job.updated_at,
    )


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    response_model=RepairPublic,
    # Before the session: a refused creation costs no database work.
    dependencies=[Depends(limit_job_creation)],
    responses={
        200: {"model": RepairPublic, "description": "Replay of an Idempotency-Key: same job"},
        **problem_responses(400, 401, 404, 409, 413, 415, 422, 429, 503),
    },
)
def create_repair(
    body: RepairCreate,
    response: Response,
    owner: OwnerDep,
    session: SessionDep,
    queue: QueueDep,
    settings: SettingsDep,
    idempotency_key: Annotated[
        str | None,
        Header(
            max_length=255,
            description="same key + same body -> the same job; same key + other body -> 409",
        ),
    ] = None,
) -> RepairPublic:
    """Queue a repair of a model with its failure batches (default: all of them)."""
    view, created = repairs.create_repair(
        session,
        owner_id=owner.id,
        request=body,
        idempotency_key=idempotency_key,
        queue=queue,
        max_attempts=settings.worker.max_attempts,
        max_active_jobs=settings.quotas.active_jobs,
        retry_after_seconds=settings.quotas.retry_after_seconds,
    )
    response.status_code = status.HTTP_201_CREATED if created else status.HTTP_200_OK
    response.headers["Location"] = f"/v1/repairs/{view.job.id}"
    return _public(view)


@router.post(
    "/{job_id}/transfers",
    status_code=status.HTTP_201_CREATED,
    response_model=RepairPublic,
    dependencies=[Depends(limit_job_creation)],
    responses=problem_responses(400, 401, 404, 409, 413, 415, 422, 429, 503),
)
def create_transfer(
    job_id: uuid.UUID,
    body: TransferCreate,
    response: Response,
    owner: OwnerDep,
    session: SessionDep,
    queue: QueueDep,
    settings: SettingsDep,
) -> RepairPublic:
    """Queue a transfer: the succeeded job's genotype and the deployed architecture
    retrained on another dataset and scored on its test split (a job of kind `transfer`)."""
    view = transfers.create_transfer(
        session,
        owner_id=owner.id,
        source_job_id=job_id,
        request=body,
        queue=queue,
        max_attempts=settings.worker.max_attempts,
        max_active_jobs=settings.quotas.active_jobs,
        retry_after_seconds=settings.quotas.retry_after_seconds,
    )
    response.headers["Location"] = f"/v1/repairs/{view.job.id}"
    return _public(view)


@router.get("", response_model=RepairsPublic, responses=problem_responses(401, 422, 503))
def list_repairs(
    owner: OwnerDep,
    session: SessionDep,
    status_: Annotated[JobStatus | None, Query(alias="status")] = None,
    model_id: uuid.UUID | None = None,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
    offset: Annotated[int, Query(ge=0, le=1_000_000_000)] = 0,
) -> RepairsPublic:
    """The owner's repair jobs, newest first, optionally filtered by status and model."""
    views, total = repairs.list_repairs(
        session, owner_id=owner.id, status=status_, model_id=model_id, limit=limit, offset=offset
    )
    return RepairsPublic(data=[_public(v) for v in views], count=total, limit=limit, offset=offset)


def job_etag(version: int) -> str:
    return f'"v{version}"'


@router.get(
    "/{job_id}",
    response_model=RepairPublic,
    responses={
        304: {"description": "Not modified: If-None-Match matched the job's ETag"},
        **problem_responses(401, 404, 503),
    },
)
async def get_repair(
    job_id: uuid.UUID, request: Request, owner: OwnerDep, gate: GateDep
) -> Response:
    """Status, stage, progress percent, ETA, attempts, genotype, metrics and error.

    The `ETag` changes with every write to the job; send it back as `If-None-Match`
    and an unchanged job answers `304` with no body, at the cost of one primary-key read."""
    tags = _if_none_match(request)

    def read(session: Session) -> tuple[int, RepairPublic | None]:
        # One read of the row decides 304 and serves 200 alike (a changed job would
        # otherwise cost a version read and then the row); the ETag comes from the row
        # that was served.
        job = repairs.get_job(session, owner_id=owner.id, job_id=job_id)
        if "*" in tags or job_etag(job.version) in tags:
            return job.version, None
        return job.version, _public(repairs.view_of(session, job))

    version, public = await gate.run(read, read_only=True)
    headers = {"ETag": job_etag(version), "Cache-Control": "private, no-cache"}
    if public is None:
        return Response(status_code=status.HTTP_304_NOT_MODIFIED, headers=headers)
    return JSONResponse(public.model_dump(mode="json"), headers=headers)


@router.get(
    "/{job_id}/events",
    response_class=EventSourceResponse,
    responses=problem_responses(401, 404, 429, 503),
)
async def job_events(stream: JobStreamDep) -> AsyncIterator[ServerSentEvent]:
    """Server-Sent Events of the job: `stage` and `progress` (id: the job's version; the
    data has status, stage, progress, ETA and the latest metrics), then `end` with the
    full job once it has finished. Reconnect with `Last-Event-ID` to resume."""

    def final(session: Session) -> dict[str, Any]:
        view = repairs.get_repair(session, owner_id=stream.owner_id, job_id=stream.job_id)
        return _public(view).model_dump(mode="json")

    async for event in stream.events(final):
        yield event


@router.post(
    "/{job_id}/cancel",
    response_model=RepairPublic,
    responses=problem_responses(401, 404, 409, 503),
)
def cancel_repair(job_id: uuid.UUID, owner: OwnerDep, session: SessionDep) -> RepairPublic:
    """Queued jobs are cancelled at once; running ones become `cancelling` and stop at
    the next step boundary. Repeating is harmless; a finished job answers 409."""
    return _public(repairs.cancel_repair(session, owner_id=owner.id, job_id=job_id))


@router.delete(
    "/{job_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    responses=problem_responses(401, 404, 409, 503),
)
def delete_repair(
    job_id: uuid.UUID, owner: OwnerDep, session: SessionDep, store: StoreDep
) -> Response:
    """Delete a finished job with its results and work directory, and free their
    storage; a queued or running job answers 409 (cancel it first)."""
    deletion.delete_repair(session, store, owner_id=owner.id, job_id=job_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


def _result_responses(
    media_type: str, description: str, extra: dict[int | str, dict[str, Any]] | None = None
) -> dict[int | str, dict[str, Any]]:
    """OpenAPI responses of a route that serves a result of a job once it has succeeded."""
    return {
        200: {"content": {media_type: {}}, "description": description},
        **(extra or {}),
        **problem_responses(401, 404, 409, 503),
    }


def _etag(sha256: str) -> str:
    return f'"{sha256}"'


@router.get(
    "/{job_id}/model",
    response_class=FileResponse,
    responses=_result_responses(
        "application/octet-stream",
        "The repaired model: the .safetensors checkpoint, or its ONNX or TorchScript export "
        "(Range supported)",
        {304: {"description": "Not modified (If-None-Match matched the ETag)"}},
    ),
)
def download_model(
    job_id: uuid.UUID,
    request: Request,
    owner: OwnerDep,
    session: SessionDep,
    store: StoreDep,
    settings: SettingsDep,
    format: Annotated[
        ModelFormatName,
        Query(
            description="safetensors (load with this project), onnx (onnxruntime; input "
            "`pixels`, float32 NCHW in [0, 1], dynamic batch) or torchscript (torch.jit.load)"
        ),
    ] = choices.DEFAULT_MODEL_FORMAT,
    variant: Annotated[
        str | None,
        Query(
            max_length=64,
            description="a compared variant (the job's `variant_downloads`), e.g. CutMix; "
            "default the primary",
        ),
    ] = None,
) -> Response:
    """The repaired model, streamed; ETag and Repr-Digest carry its SHA-256. A format the
    job has no file for answers 404 (its export failed its check), 409 before success;
    `variant` picks another compared variant's model, in any format it was exported to."""
    key, sha, _job = repairs.model_file(
        session, owner_id=owner.id, job_id=job_id, model_format=format, store=store,
        variant=variant,
    )  # fmt: skip
    headers = {"Cache-Control": "private, no-cache"}
    if sha:
        headers["ETag"] = _etag(sha)
        headers["Repr-Digest"] = f"sha-256=:{base64.b64encode(bytes.fromhex(sha)).decode()}:"
        headers["X-Checksum-SHA256"] = sha
        if _etag(sha) in _if_none_match(request):
            return Response(status_code=status.HTTP_304_NOT_MODIFIED, headers=headers)
    return stored_response(
        request, store, key, media_type="application/octet-stream", s3=settings.artifacts.s3,
        file_name=f"{variant or 'repaired'}-{job_id}{choices.MODEL_FORMAT_SUFFIXES[format]}",
        headers=headers,
    )  # fmt: skip


def _if_none_match(request: Request) -> set[str]:
    raw = request.headers.get("if-none-match", "")
    return {tag.strip().removeprefix("W/") for tag in raw.split(",") if tag.strip()}


@router.get(
    "/{job_id}/report",
    responses=_result_responses("application/json", "The repair report"),
)
def get_report(
    job_id: uuid.UUID, owner: OwnerDep, session: SessionDep, store: StoreDep
) -> JSONResponse:
    """What got better and what did not get worse: original vs repaired metrics."""
    key, _job = repairs.result_key(
        session, owner_id=owner.id, job_id=job_id, kind="report", store=store
    )
    report: Any = json.loads(store.fetch(key).read_text())
    return JSONResponse(report)


@router.get(
    "/{job_id}/report.png",
    response_class=FileResponse,
    responses=_result_responses("image/png", "The report as a figure"),
)
def get_report_png(
    job_id: uuid.UUID,
    request: Request,
    owner: OwnerDep,
    session: SessionDep,
    store: StoreDep,
    settings: SettingsDep,
) -> Response:
    key, _job = repairs.result_key(
        session, owner_id=owner.id, job_id=job_id, kind="report_png", store=store
    )
    return stored_response(
        request, store, key, media_type="image/png", s3=settings.artifacts.s3,
        file_name=f"report-{job_id}.png",
    )  # fmt: skip


@router.get(
    "/{job_id}/picks",
    response_model=PicksPublic,
    responses=problem_responses(401, 404, 409, 503),
)
def get_picks(job_id: uuid.UUID, owner: OwnerDep, session: SessionDep) -> PicksPublic:
    """The failures picked for labelling (while `awaiting_labels`): their ids, archive file
    names, and the deployed model's class and confidence for each as a hint."""
    job, picks = labels.picks_of(session, owner_id=owner.id, job_id=job_id)
    return PicksPublic(
        job_id=job.id, round=job.label_rounds + 1, picks=[PickPublic(**p) for p in picks]
    )


@router.get(
    "/{job_id}/picks.csv",
    # No text response class: FastAPI would document the problem documents as text/plain.
    responses={
        200: {"content": {"text/csv": {}}, "description": "A labels template"},
        **problem_responses(401, 404, 409, 503),
    },
)
def get_picks_template(job_id: uuid.UUID, owner: OwnerDep, session: SessionDep) -> Response:
    """A CSV template: one row per pick with an empty `label` column to fill in."""
    _job, picks = labels.picks_of(session, owner_id=owner.id, job_id=job_id)
    return Response(
        labels.template_csv(picks),
        media_type="text/csv",
        headers={"Content-Disposition": f'attachment; filename="labels-{job_id}.csv"'},
    )


@router.get(
    "/{job_id}/picks.zip",
    response_class=FileResponse,
    responses={
        200: {"content": {"application/zip": {}}, "description": "<id>.png + picks.json"},
        **problem_responses(401, 404, 409, 503),
    },
)
def download_picks(
    job_id: uuid.UUID,
    request: Request,
    owner: OwnerDep,
    session: SessionDep,
    store: StoreDep,
    settings: SettingsDep,
) -> Response:
    """The picked images (`<id>.png`, stable names) and `picks.json` with the hints."""
    key = labels.picks_archive(session, owner_id=owner.id, job_id=job_id, store=store)
    return stored_response(
        request, store, key, media_type="application/zip", s3=settings.artifacts.s3,
        file_name=f"picks-{job_id}.zip",
    )  # fmt: skip


@router.post(
    "/{job_id}/labels",
    response_model=RepairPublic,
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {
                "text/csv": {"schema": {"type": "string"}},
                "application/json": {"schema": {}},
            },
        }
    },
    responses=problem_responses(401, 404, 409, 413, 415, 503),
)
async def submit_labels(
    job_id: uuid.UUID,
    request: Request,
    owner: OwnerDep,
    gate: GateDep,
    queue: QueueDep,
    settings: SettingsDep,
) -> JSONResponse:
    """Labels for this round's picks, as CSV (`id,label`) or JSON (`[{"id", "label"}]` or
    `{id: label}`); a label is a class index or name. Picks left out are given up
    (replaced by the next K-center picks, or dropped: `config.unlabeled_picks`). Any bad
    row is a 422 naming it, and nothing changes; good labels queue the job again."""
    media_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    data = await request.body()

    def submit(session: Session) -> RepairPublic:
        job = labels.submit_labels(
            session, owner_id=owner.id, job_id=job_id, data=data, media_type=media_type,
            queue=queue, max_attempts=settings.worker.max_attempts,
        )  # fmt: skip
        return _public(repairs.view_of(session, job))

    public = await gate.run(submit)
    return JSONResponse(public.model_dump(mode="json"))


@router.get(
    "/{job_id}/report.md",
    response_class=Response,
    responses=_result_responses("text/markdown", "The report's tables as markdown"),
)
def get_report_markdown(
    job_id: uuid.UUID, owner: OwnerDep, session: SessionDep, store: StoreDep
) -> PlainTextResponse:
    """The accuracy table (paper Table 2 layout, at the highest severity), the verdicts
    and the search health, as markdown."""
    key, _job = repairs.result_key(
        session, owner_id=owner.id, job_id=job_id, kind="report", store=store
    )
    report = EvaluationReport.from_json(store.fetch(key).read_bytes())
    markdown = report.to_markdown(severity=max(report.severities) if report.severities else None)
    return PlainTextResponse(markdown, media_type="text/markdown; charset=utf-8")


@router.get(
    "/{job_id}/figures/{name}",
    response_class=FileResponse,
    responses={
        200: {
            "content": {media: {} for media in FIGURE_FORMATS.values()},
            "description": "A report figure (PNG or SVG)",
        },
        **problem_responses(401, 404, 409, 503),
    },
)
def get_figure(
    job_id: uuid.UUID,
    name: str,
    request: Request,
    owner: OwnerDep,
    session: SessionDep,
    store: StoreDep,
    settings: SettingsDep,
) -> Response:
    """A report figure by name: `<figure>.<png|svg>`, figures from
    `cell-deployed-normal`, `cell-repaired-reduce`, `robustness-heatmap`, `search-curves`,
    `search-alphas-normal`, `retrain-curves`, ... (the job's `figures` lists its own);
    an unknown name answers 404 listing the valid ones."""
    key = repairs.figure_key(session, owner_id=owner.id, job_id=job_id, name=name, store=store)
    media = FIGURE_FORMATS[name.rsplit(".", 1)[1]]
    return stored_response(
        request, store, key, media_type=media, s3=settings.artifacts.s3,
        headers={"Cache-Control": "private, max-age=60"},
    )  # fmt: skip
