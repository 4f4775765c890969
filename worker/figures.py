"""Drawing a finished repair's report figures and publishing them beside the job.

Figures are a view of results already stored, so a figure that cannot be drawn is
logged and left out (the job still succeeds, its list of figures says what exists).
"""

from __future__ import annotations

import logging
import tempfile
import uuid
from pathlib import Path

from api.storage import ArtifactStore
from repair_core.evaluation.figures import FigureInputs, write_figures
from repair_core.pipeline import RepairResult

log = logging.getLogger(__name__)


def publish_figures(
    store: ArtifactStore, owner_id: uuid.UUID, job_id: uuid.UUID, result: RepairResult
) -> list[str]:
    """Draw every figure of `result` and publish it; returns the file names published."""
    deployed = result.deployed_genotype or result.genotype
    inputs = FigureInputs(result.report, deployed, result.genotype, result.curves)
    try:
        with tempfile.TemporaryDirectory(dir=store.temp_path().parent) as tmp:
            names = write_figures(inputs, Path(tmp))
            for name in names:
                published = store.temp_path()
                (Path(tmp) / name).rename(published)
                store.publish(published, store.figure_key(owner_id, job_id, name))
    except Exception:
        # A drawing bug must not fail a repair whose model and report are fine.
        log.warning("job %s: report figures not drawn", job_id, exc_info=True)
        return []
    return names
