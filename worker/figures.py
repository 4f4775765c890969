"""A finished repair's report figures: drawn into its work directory while the job still
holds its lease (`draw_figures`, seconds of CPU), then published beside the job with the
other results (`publish_figures`, file copies).

Figures are a view of results already stored, so a figure that cannot be drawn is logged
and left out (the job still succeeds; its list of figures says what exists).
"""

from __future__ import annotations

import logging
import uuid
from pathlib import Path

from api.storage import ArtifactStore
from repair_core.choices import figure_files
from repair_core.evaluation.figures import FigureInputs, write_figures
from repair_core.pipeline import RepairResult

log = logging.getLogger(__name__)

FIGURES_DIR = "figures"  # inside the work directory


def draw_figures(result: RepairResult) -> list[str]:
    """Draw every figure of `result` into `<work_dir>/figures`; returns the file names."""
    inputs = FigureInputs(result.report, result.deployed_genotype, result.genotype, result.curves)
    try:
        return write_figures(inputs, result.work_dir / FIGURES_DIR)
    except Exception:
        # A drawing bug must not fail a repair whose model and report are fine.
        log.warning("report figures of %s not drawn", result.work_dir, exc_info=True)
        return []


def publish_figures(
    store: ArtifactStore, owner_id: uuid.UUID, job_id: uuid.UUID, work_dir: Path
) -> list[str]:
    """Publish the figures drawn in `work_dir`; returns the file names published."""
    published = []
    for name in figure_files():
        source = work_dir / FIGURES_DIR / name
        if source.is_file():
            tmp = store.temp_path()
            try:
                tmp.write_bytes(source.read_bytes())
                store.publish(tmp, store.figure_key(owner_id, job_id, name))
            finally:
                tmp.unlink(missing_ok=True)
            published.append(name)
    return published
