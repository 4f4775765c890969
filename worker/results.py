"""Storing a finished repair: files first, then one fenced transaction for the rows.

The repaired checkpoint, its ONNX and TorchScript exports, report.json, report.png, the
report figures and the other compared variants' checkpoints and exports (in the job's
folder) are published to the artifact store (temp file, fsync, atomic rename).
Only then does one transaction insert the genotype and metric rows and move the job to
`succeeded` with the result keys, fenced by the lease. A crash in between leaves files
without a row (garbage the upkeep sweep removes; the job's next attempt publishes its
own), never a row that points at a half-written file; a worker that lost its lease
deletes what it published.
"""

from __future__ import annotations

import hashlib
import logging
import math
import uuid
from typing import Any

from sqlalchemy.orm import Session, sessionmaker

from api.db.models import (
    CLEAN_DROP_METRIC,
    MODEL_FILE_COLUMNS,
    Genotype,
    JobStatus,
    Metric,
    RepairJob,
    export_diff_metric,
    size_metric,
)
from api.faults import reach
from api.storage import ArtifactStore
from repair_core.choices import MODEL_FORMAT_SUFFIXES
from repair_core.evaluation.report import EvaluationReport
from repair_core.pipeline import RepairResult
from worker.figures import publish_figures
from worker.lease import Lease, finish
from worker.transient import retry_transient

log = logging.getLogger(__name__)

_COPY_CHUNK = 4 * 1024 * 1024


def metric_prefixes(report: EvaluationReport) -> dict[str, str]:
    """Row name -> metric prefix, by role: `original`, `control`, `repaired` (the primary
    variant's last row), `iteration<k>` (its earlier rows); other variants keep their name.
    A report without roles (written before the control existed) is read by position."""
    prefixes = {name: name for name in report.models}
    prefixes["original"] = "original"
    primary_rows = [n for n in report.primary_rows if n != "original"]
    for k, name in enumerate(primary_rows, start=1):
        prefixes[name] = "repaired" if k == len(primary_rows) else f"iteration{k}"
    control = report.control
    if control is not None:
        prefixes[control] = "control"
    return prefixes


def report_metrics(report: EvaluationReport) -> dict[str, float]:
    """The report's numbers as flat metric rows, prefixed by role (`metric_prefixes`);
    accuracies in percent. `<prefix>.failure_corruption_all` is the whole test split under
    the failures' corruption, when that was scored."""
    prefixes = metric_prefixes(report)
    metrics: dict[str, float] = {}
    for name, scores in report.models.items():
        prefix = prefixes[name]
        metrics[f"{prefix}.clean"] = scores.clean
        if scores.held_out_failures is not None:
            metrics[f"{prefix}.held_out_failures"] = scores.held_out_failures
        mean = report.mean(name)
        if mean is not None:
            metrics[f"{prefix}.corruption_mean"] = mean
        for corruption in report.corruptions:
            metrics[f"{prefix}.{corruption}"] = scores.at(corruption, None)
        if report.has_all_column and report.failure_corruption is not None:
            metrics[f"{prefix}.failure_corruption_all"] = scores.at(report.failure_corruption, None)
    return metrics


def search_metrics(report: EvaluationReport) -> dict[str, float]:
    """The collapse guard of the repaired variant's search as `search.*` metric rows."""
    metrics: dict[str, float] = {}
    for variant in report.info.get("variants", {}).values():
        health = variant.get("search_health")
        if not isinstance(health, dict):
            continue
        for key in ("skip_connections_normal", "parameter_free_normal", "eigenvalue_last",
                    "eigenvalue_max", "early_stopped_epoch", "perturbation_decisions"):  # fmt: skip
            value = health.get(key)
            if isinstance(value, int | float) and math.isfinite(value):
                metrics[f"search.{key}"] = float(value)
        metrics["search.collapse_warning"] = float(bool(health.get("dominated_by_parameter_free")))
    return metrics


def deployment_metrics(report: EvaluationReport) -> dict[str, float]:
    """`<prefix>.params` and `<prefix>.flops` per row (the deployed model is `original`),
    `export.<format>.max_abs_diff` per passed export, and `repaired.clean_accuracy_dropped`
    (1.0 when the report warns that clean accuracy fell more than a point)."""
    prefixes = metric_prefixes(report)
    metrics: dict[str, float] = {}
    for name, stats in report.info.get("model_stats", {}).items():
        if name in prefixes:
            for what in ("params", "flops"):
                metrics[size_metric(prefixes[name], what)] = float(stats[what])
    for fmt, check in report.info.get("exports", {}).items():
        if "max_abs_diff" in check:
            metrics[export_diff_metric(fmt)] = float(check["max_abs_diff"])
    dropped = report.clean_accuracy_dropped
    if dropped is not None:
        metrics[CLEAN_DROP_METRIC] = float(dropped)
    return metrics


def iteration_genotypes(result: RepairResult) -> list[dict[str, Any]]:
    """One genotype per search iteration (the last is the repaired model's)."""
    variants = result.report.info.get("variants", {})
    primary = result.report.info.get("primary")
    ordered = [variants[primary]] if primary in variants else list(variants.values())
    for variant in ordered:
        genotypes = variant.get("genotypes")
        if isinstance(genotypes, list) and genotypes:
            # A baseline of a timm / torchvision model retrains no genotype (None).
            return [dict(g) for g in genotypes if g is not None]
    return [] if result.genotype is None else [result.genotype.to_dict()]


def copy_hashed(store: ArtifactStore, source_path: str, key: str) -> str:
    """Publish a copy of a file under `key`; returns its SHA-256."""
    digest = hashlib.sha256()
    tmp = store.temp_path()
    try:
        with open(source_path, "rb") as src, tmp.open("wb") as dst:
            while chunk := src.read(_COPY_CHUNK):
                digest.update(chunk)
                dst.write(chunk)
        store.publish(tmp, key)
    finally:
        tmp.unlink(missing_ok=True)
    return digest.hexdigest()


def store_results(
    sessions: sessionmaker[Session],
    store: ArtifactStore,
    lease: Lease,
    owner_id: uuid.UUID,
    result: RepairResult,
    *,
    fault_point: str = "",
) -> bool:
    """Publish the files and commit the rows; False (and nothing left) if the lease was
    lost. Transient database errors are retried with backoff. `fault_point` is the
    test-only crash point (`api.faults`): `results_published` dies between the two."""
    model_key = store.new_key(owner_id, ".safetensors")
    report_key = store.new_key(owner_id, ".json")
    png_key = store.new_key(owner_id, ".png")
    published = [model_key]
    sha256 = copy_hashed(store, str(result.checkpoint), model_key)
    store.write_bytes(report_key, result.report.to_json().encode())
    published.append(report_key)
    png = result.work_dir / "report.png"
    if png.is_file():
        copy_hashed(store, str(png), png_key)
        published.append(png_key)
    exported: dict[str, str] = {}
    for fmt, path in result.exports.items():
        key_column, sha_column = MODEL_FILE_COLUMNS[fmt]
        key = store.new_key(owner_id, MODEL_FORMAT_SUFFIXES[fmt])
        exported[sha_column] = copy_hashed(store, str(path), key)
        exported[key_column] = key
        published.append(key)
    # In the job's folder under fixed names, like the figures: never deleted on a lost
    # lease, since the successor publishes to the same keys (and a file there without a
    # row is counted and deleted with the job).
    variant_models: dict[str, str] = {}
    variant_exports: dict[str, dict[str, str]] = {}
    for name, path in result.variant_checkpoints.items():
        if name != result.primary:
            key = store.variant_model_key(owner_id, lease.job_id, name)
            variant_models[name] = copy_hashed(store, str(path), key)
            variant_exports[name] = {
                fmt: copy_hashed(
                    store, str(p), store.variant_model_key(owner_id, lease.job_id, name, fmt)
                )
                for fmt, p in result.variant_exports.get(name, {}).items()
            }
    figures = publish_figures(store, owner_id, lease.job_id, result.work_dir)
    values = {
        **exported,
        "figures": figures,
        "variant_models": variant_models or None,
        "variant_exports": variant_exports or None,
        "result_model_key": model_key,
        "result_model_sha256": sha256,
        "report_key": report_key,
        "report_png_key": png_key if png_key in published else None,
        "timings": {k: round(float(v), 3) for k, v in result.timings.items()},
        "progress": 100.0,
    }
    genotypes = iteration_genotypes(result)
    metrics = {
        **report_metrics(result.report),
        **search_metrics(result.report),
        **deployment_metrics(result.report),
    }

    def commit() -> bool:
        with sessions() as session:
            if not finish(session, lease, JobStatus.succeeded, values):
                session.rollback()
                # A commit whose answer was lost may have gone through: then it is ours.
                job = session.get(RepairJob, lease.job_id)
                return job is not None and job.result_model_key == model_key
            for iteration, genotype in enumerate(genotypes, start=1):
                session.add(
                    Genotype(
                        owner_id=owner_id, job_id=lease.job_id, iteration=iteration,
                        genotype=genotype,
                    )
                )  # fmt: skip
            for name, value in metrics.items():
                session.add(Metric(owner_id=owner_id, job_id=lease.job_id, name=name, value=value))
            session.commit()
            return True

    reach("results_published", fault_point)
    # If the retries run out the files stay: whether the last commit landed is unknown,
    # and a stray file is harmless where a row pointing at nothing is not.
    stored = retry_transient(commit, what=f"storing the results of job {lease.job_id}")
    if not stored:
        log.warning("job %s: lease lost before the results were stored", lease.job_id)
        _delete(store, published)
    return stored


def _delete(store: ArtifactStore, keys: list[str]) -> None:
    for key in keys:
        store.delete(key)
