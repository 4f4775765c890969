"""Checks of a repair's inputs that fail early, with a message naming the problem."""

from __future__ import annotations

from repair_core.datasets.types import DatasetSplits, ImageDataset
from repair_core.errors import RepairInputError
from repair_core.models import DeployedModel


def check_inputs(deployed: DeployedModel, data: DatasetSplits, failures: ImageDataset) -> None:
    expected = deployed.spec.shape
    if deployed.num_classes != len(data.class_names):
        raise RepairInputError(
            f"the model has {deployed.num_classes} classes but the dataset has "
            f"{len(data.class_names)} ({', '.join(data.class_names[:10])})"
        )
    splits = [("train", data.train), ("test", data.test)]
    if data.val is not None:
        splits.append(("val", data.val))
    for name, split in [*splits, ("failures", failures)]:
        if split.image_shape != expected:
            c, h, w = split.image_shape
            raise RepairInputError(
                f"{name} images are {c}x{h}x{w} (channels x height x width) but the model "
                f"expects {expected[0]}x{expected[1]}x{expected[2]}"
            )
        if split.class_names != data.class_names:
            raise RepairInputError(
                f"{name} class names {list(split.class_names)[:10]} differ from the training "
                f"set's {list(data.class_names)[:10]}"
            )
        if len(split) == 0:
            raise RepairInputError(f"the {name} set is empty")
        if name != "failures" and not bool(split.labelled.all()):
            raise RepairInputError(f"the {name} split has unlabeled images; it needs every label")
