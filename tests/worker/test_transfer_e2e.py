"""A transfer end to end over HTTP with real processes (uvicorn, a Celery worker, Postgres,
Redis): a smoke repair of the digits model, then its genotype retrained on a second
uploaded dataset with other classes and another image size."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from repair_core.checkpoint import load_model
from repair_core.datasets.digits import load_digits_splits
from repair_core.datasets.ingest.npz import write_npz_splits
from repair_core.datasets.types import DatasetSplits, ImageDataset
from repair_core.search.genotype import Genotype
from tests.worker.jobs import TINY, tiny_config
from tests.worker.stack import Stack, Uploaded
from tests.worker.test_e2e import _finished, _watch

pytestmark = [pytest.mark.e2e, pytest.mark.integration, pytest.mark.slow]


def _four_digits_at_12px() -> DatasetSplits:
    """Digits 0-3 only, upscaled from 8x8 to 12x12: other classes, another image size."""
    digits = load_digits_splits(seed=1)

    def part(d: ImageDataset, limit: int) -> ImageDataset:
        keep = (d.labels < 4).nonzero().squeeze(1)[:limit]
        big = torch.nn.functional.interpolate(d.images[keep].float(), size=12, mode="nearest")
        return ImageDataset(big.to(torch.uint8), d.labels[keep], ("zero", "one", "two", "three"))

    return DatasetSplits(train=part(digits.train, 160), test=part(digits.test, 60))


def test_a_transfer_job_retrains_the_genotype_on_a_second_dataset_and_its_model_downloads(
    stack: Stack,
    uploaded: Uploaded,
    tmp_path: Path,
) -> None:
    second = _four_digits_at_12px()
    write_npz_splits(tmp_path / "four.npz", second)
    stack.start_worker("a")
    with stack.client(uploaded.key) as client:
        source = client.create_repair(uploaded.model_id, config=tiny_config())
        done = _watch(client, source["id"], until=_finished, timeout=120)[-1]
        assert done["status"] == "succeeded", done
        dataset = client.upload_dataset(tmp_path / "four.npz")
        created = client.create_transfer(
            source["id"], dataset["id"], overrides={**TINY, "train.epochs": 1}
        )
        assert created["kind"] == "transfer" and created["status"] == "queued"
        seen = _watch(client, created["id"], until=_finished, timeout=120)
        final = seen[-1]
        assert final["status"] == "succeeded", final
        percents = [s["progress"] for s in seen]
        assert percents == sorted(percents) and final["progress"] == 100.0
        assert final["source_job_id"] == source["id"] and final["dataset_id"] == dataset["id"]
        assert {"repaired.clean", "control.clean"} <= set(final["metrics"])
        report = client.get_report(created["id"])
        path = tmp_path / "transferred.safetensors"
        digest = client.download_model(created["id"], path)
    assert list(report["models"]) == ["Control", "Transferred"]
    assert report["info"]["classes"] == list(second.class_names)
    # The source's failures were Gaussian noise: the new test split is scored under it too.
    assert report["failure_corruption"] == "gaussian_noise"
    assert "gaussian_noise" in report["models"]["Transferred"]["corruptions"]
    assert digest == final["result_sha256"]
    model = load_model(path)
    assert model.genotype == Genotype.from_dict(done["genotype"])
    assert model.class_names == second.class_names
    assert (model.config.num_classes, model.config.image_size) == (4, 12)
    logits = model.model(second.test.images[:4].float() / 255)
    assert logits.shape == (4, 4)
