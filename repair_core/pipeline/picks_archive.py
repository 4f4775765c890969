"""The picks an owner is asked to label, as files: a zip of PNG images with stable names
and a listing with the deployed model's guess for each (pipeline/labelling.py).

A pick's id is its row in the job's failures (the failure batches in order), so an id
names the same image in every round and every download; its file is `<id>.png`.
"""

from __future__ import annotations

import io
import json
import zipfile
from pathlib import Path
from typing import Any

from PIL import Image

from repair_core.atomic import atomic_path
from repair_core.datasets.types import ImageDataset
from repair_core.pipeline.labelling import Picks

LISTING_NAME = "picks.json"


def pick_file(pick_id: int) -> str:
    return f"{pick_id:06d}.png"


def picks_listing(picks: Picks, class_names: tuple[str, ...]) -> list[dict[str, Any]]:
    """One JSON-native entry per pick: id, file, predicted class (index and name) and the
    model's confidence in it."""
    return [
        {
            "id": int(row),
            "file": pick_file(int(row)),
            "predicted": int(predicted),
            "predicted_name": class_names[int(predicted)],
            "confidence": round(float(confidence), 6),
        }
        for row, predicted, confidence in zip(
            picks.rows.tolist(), picks.predicted.tolist(), picks.confidence.tolist(), strict=True
        )
    ]


def write_picks_archive(
    path: Path, failures: ImageDataset, listing: list[dict[str, Any]], *, round_: int
) -> None:
    """`<id>.png` for every pick and `picks.json`, written atomically to `path`."""
    with (
        atomic_path(path) as tmp,
        zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as archive,
    ):
        for entry in listing:
            image = failures.images[int(entry["id"])].numpy()
            pixels = image[0] if image.shape[0] == 1 else image.transpose(1, 2, 0)
            png = io.BytesIO()
            Image.fromarray(pixels).save(png, format="PNG")
            archive.writestr(entry["file"], png.getvalue())
        archive.writestr(LISTING_NAME, json.dumps({"round": round_, "picks": listing}, indent=1))
