"""Label on demand (paper §3.3): only the failures K-center picks need a label.

Failures may come unlabeled (`UNLABELED`): they are taken on trust as failures, selection
runs on the deployed model's features alone, and then the unlabeled picks are asked of
the owner. `resolve_picks` raises `LabelsNeeded` with those picks and the model's guess
for each; the caller (the worker) stops, and calls the repair again with the owner's
answers in `OwnerLabels`. The whole exchange is replayed from the answers, so nothing of
it but the answers has to be kept:

- round k asks for the picks with no label that were not asked before;
- after round k is answered, a pick still without a label was skipped by the owner, and
  a pick whose label is the model's own prediction is no failure at all: both are given
  up; with `unlabeled_picks="replace"` the next K-center picks take their places (and
  those without a label are asked in round k + 1), with "drop" C just gets smaller.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import cast

import torch

from repair_core.datasets.types import UNLABELED, ImageDataset
from repair_core.errors import RepairInputError
from repair_core.evaluation.accuracy import predict_with_confidence
from repair_core.progress import CancelToken
from repair_core.selection import Selection, extract_features, split_halves
from repair_core.selection.extend import next_k_center_picks
from repair_core.selection.features import FeatureModel


@dataclass(frozen=True)
class OwnerLabels:
    """The owner's answers so far: uploaded failure row -> class index, and how many
    rounds of questions were answered."""

    labels: Mapping[int, int] = field(default_factory=dict)
    rounds: int = 0


@dataclass(frozen=True)
class Picks:
    round: int  # 1 for the first question
    rows: torch.Tensor  # int64: rows of the uploaded failures to label, in pick order
    predicted: torch.Tensor  # int64: the deployed model's class for each
    confidence: torch.Tensor  # float32: its softmax probability
    failures_confirmed: int  # labelled failures the model misclassifies
    failures_on_trust: int  # unlabeled failures, taken on trust


class LabelsNeeded(Exception):
    def __init__(self, picks: Picks) -> None:
        super().__init__(f"round {picks.round}: {len(picks.rows)} picked failures need a label")
        self.picks = picks


@dataclass(frozen=True)
class LabelledSelection:
    selection: Selection  # C with every label known
    given_up: torch.Tensor  # int64: confirmed-failure rows given up (never held out either)
    rounds: int  # questions asked and answered
    owner_labelled: int  # picks in C the owner labelled


def resolve_picks(
    model: torch.nn.Module,  # the deployed model: logits and `features`
    confirmed: ImageDataset,
    confirmed_rows: torch.Tensor,
    train: ImageDataset,
    selection: Selection,
    answers: OwnerLabels,
    *,
    policy: str,
    seed: int,
    device: torch.device,
    batch_size: int,
    cancel: CancelToken | None,
) -> LabelledSelection:
    """C with the owner's labels applied, given-up picks dropped or replaced; raises
    `LabelsNeeded` while a pick still has to be asked. `confirmed_rows[i]` is the uploaded
    row of `confirmed[i]` (the owner's labels are keyed by uploaded row)."""
    uploaded = confirmed_rows.tolist()
    batch = confirmed.labels.clone()
    known = batch.clone()
    for i, row in enumerate(uploaded):
        if batch[i] == UNLABELED and row in answers.labels:
            known[i] = int(answers.labels[row])
    predicted, confidence = predict_with_confidence(
        model, confirmed.images, batch_size=batch_size, device=device, cancel=cancel
    )
    predicted, confidence = predicted.cpu(), confidence.cpu()
    features: tuple[torch.Tensor, torch.Tensor] | None = None
    picks = selection.selected.tolist()
    asked: set[int] = set()
    given_up: list[int] = []
    rounds = 0
    while True:
        to_ask = [i for i in picks if batch[i] == UNLABELED and i not in asked]
        if to_ask:
            if rounds == answers.rounds:
                index = torch.tensor(to_ask, dtype=torch.int64)
                raise LabelsNeeded(
                    Picks(
                        rounds + 1, confirmed_rows[index], predicted[index], confidence[index],
                        failures_confirmed=int(confirmed.labelled.sum()),
                        failures_on_trust=int((~confirmed.labelled).sum()),
                    )
                )  # fmt: skip
            rounds += 1
            asked.update(to_ask)
        gone = [i for i in picks if known[i] == UNLABELED or known[i] == predicted[i]]
        if not gone:
            break
        given_up += gone
        picks = [i for i in picks if i not in gone]
        if policy != "replace":
            break
        if features is None:

            def extract(images: torch.Tensor) -> torch.Tensor:
                return extract_features(
                    cast(FeatureModel, model), images, batch_size=batch_size, device=device,
                    cancel=cancel,
                )  # fmt: skip

            features = (extract(confirmed.images), extract(train.images))
        more = next_k_center_picks(
            features[0], features[1], torch.tensor(picks, dtype=torch.int64),
            torch.tensor(given_up, dtype=torch.int64), len(gone),
        )  # fmt: skip
        if len(more) == 0:
            break
        picks += more.tolist()
    if not picks:
        raise RepairInputError(
            f"no picked failure is left after {rounds} round(s) of labels: every pick was left "
            "unlabeled or labelled as the deployed model's own prediction"
        )
    selected = torch.tensor(picks, dtype=torch.int64)
    core = ImageDataset(confirmed.images[selected], known[selected], confirmed.class_names)
    halves = split_halves(torch.arange(len(core)), core.labels, seed=seed)
    unchanged = picks == selection.selected.tolist()
    return LabelledSelection(
        Selection(
            core, halves.train, halves.val, selected,
            selection.radii if unchanged else torch.empty(0), selection.budget_clipped,
        ),
        torch.tensor(given_up, dtype=torch.int64),
        rounds,
        owner_labelled=int((batch[selected] == UNLABELED).sum()),
    )  # fmt: skip
