"""Label on demand in the pipeline: unlabeled failures stop the repair after selection with
the K-center picks to label; the owner's answers let it go on (replace or drop)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from repair_core.datasets.ops import seeded_subset
from repair_core.datasets.types import UNLABELED, ImageDataset
from repair_core.pipeline import LabelsNeeded, OwnerLabels, RepairConfig, build_plan, repair
from repair_core.pipeline.labelling import resolve_picks
from repair_core.selection import extract_features, select, select_core_set
from tests.digits_problem import RepairProblem

BUDGET = 12
TINY = {
    "evaluation.corruptions": "gaussian_noise",
    "evaluation.severities": "5",
    "evaluation.max_images": 40,
    "train.epochs": 1,
}


def _unlabeled(problem: RepairProblem, keep_labels: int = 0) -> ImageDataset:
    """The digits failures with every label but the first `keep_labels` removed."""
    labels = torch.full_like(problem.failures.labels, UNLABELED)
    labels[:keep_labels] = problem.failures.labels[:keep_labels]
    return ImageDataset(problem.failures.images, labels, problem.failures.class_names)


def _config(**kwargs: object) -> RepairConfig:
    return RepairConfig(profile="smoke", budget=BUDGET, overrides=TINY, **kwargs)  # type: ignore[arg-type]


def test_unlabeled_failures_stop_after_selection_with_exactly_the_k_center_picks(
    digits_problem: RepairProblem, tmp_path: Path
) -> None:
    p, config = digits_problem, _config()
    failures = _unlabeled(p)
    with pytest.raises(LabelsNeeded) as stopped:
        repair(p.deployed(), p.data, failures, config, work_dir=tmp_path, device="cpu")
    picks = stopped.value.picks
    assert picks.round == 1 and len(picks.rows) == BUDGET
    assert picks.failures_on_trust == len(failures) and picks.failures_confirmed == 0
    # The same K-center on the same features, computed here: every failure is on trust, so
    # the confirmed set is all of them.
    plan = build_plan("smoke", TINY, search=config.search, seed=config.seed)
    model = p.deployed().model.eval()
    train = seeded_subset(p.data.train, plan.data.train_max_images, config.seed)
    expected = select_core_set(
        "kcenter", extract_features(model, failures.images), extract_features(model, train.images),
        BUDGET, seed=config.seed,
    ).indices  # fmt: skip
    assert picks.rows.tolist() == expected.tolist()
    with torch.no_grad():
        predicted = model(failures.images[picks.rows].float() / 255).argmax(1)
    assert picks.predicted.tolist() == predicted.tolist()
    assert bool(((picks.confidence > 0) & (picks.confidence <= 1)).all())

    # The owner labels what is asked, truthfully; picks that turn out right (no failure)
    # are replaced by the next K-center picks, asked in the next round.
    answers, asked, result = OwnerLabels(), 0, None
    while result is None:
        labels = {**answers.labels, **{int(r): int(p.failures.labels[r]) for r in picks.rows}}
        asked += len(picks.rows)
        answers = OwnerLabels(labels, rounds=answers.rounds + 1)
        assert answers.rounds <= 10, "the rounds of questions should end"
        try:
            result = repair(
                p.deployed(), p.data, failures, config, work_dir=tmp_path, device="cpu",
                labels=answers,
            )  # fmt: skip
        except LabelsNeeded as again:
            picks = again.picks
            assert picks.round == answers.rounds + 1 and not set(picks.rows.tolist()) & set(labels)
    info = result.report.info["variants"]["CF-DARTS"]
    assert info["failures_on_trust"] == len(failures)
    assert info["label_rounds"] == answers.rounds and info["core_set_size"] == BUDGET
    rows = list(answers.labels)
    with torch.no_grad():
        guesses = model(failures.images[rows].float() / 255).argmax(1)
    model_right = int((p.failures.labels[rows] == guesses).sum())
    assert info["picks_given_up"] == model_right == asked - BUDGET
    # Nothing held out has a label: the failure column is said to be unavailable.
    assert result.report.info["failure_column"] == "not available"
    assert any("failure column is not available" in w for w in result.report.info["warnings"])


def _resolve(problem: RepairProblem, failures: ImageDataset, answers: OwnerLabels, policy: str):  # type: ignore[no-untyped-def]
    model = problem.deployed().model.eval()
    device = torch.device("cpu")
    train = seeded_subset(problem.data.train, 300, 0)
    rows = torch.arange(len(failures))
    chosen = select(
        "kcenter", model, train, failures, BUDGET, seed=0, device=device, batch_size=256
    )
    return resolve_picks(
        model, failures, rows, train, chosen, answers, policy=policy, seed=0, device=device,
        batch_size=256, cancel=None,
    )  # fmt: skip


def _failure_labels(
    problem: RepairProblem, rows: torch.Tensor, predicted: torch.Tensor
) -> dict[int, int]:
    """Labels that make each row a failure of the model (its own label when it is one)."""
    labels = {}
    for row, guess in zip(rows.tolist(), predicted.tolist(), strict=True):
        true = int(problem.failures.labels[row])
        labels[row] = true if true != guess else (guess + 1) % 10
    return labels


def test_picks_left_unlabeled_are_replaced_by_the_next_k_center_picks_and_asked_again(
    digits_problem: RepairProblem,
) -> None:
    p, failures = digits_problem, _unlabeled(digits_problem)
    with pytest.raises(LabelsNeeded) as first:
        _resolve(p, failures, OwnerLabels(), "replace")
    round1 = first.value.picks
    answered = _failure_labels(p, round1.rows[:8], round1.predicted[:8])
    with pytest.raises(LabelsNeeded) as second:
        _resolve(p, failures, OwnerLabels(answered, rounds=1), "replace")
    round2 = second.value.picks
    assert round2.round == 2 and len(round2.rows) == BUDGET - 8
    assert not set(round2.rows.tolist()) & set(round1.rows.tolist())
    more = _failure_labels(p, round2.rows, round2.predicted)
    done = _resolve(p, failures, OwnerLabels({**answered, **more}, rounds=2), "replace")
    assert sorted(done.selection.selected.tolist()) == sorted([*answered, *more])
    assert done.rounds == 2 and len(done.given_up) == 4
    assert done.selection.core.labels.tolist() == [
        {**answered, **more}[r] for r in done.selection.selected.tolist()
    ]


def test_picks_left_unlabeled_are_dropped_when_the_config_says_drop(
    digits_problem: RepairProblem,
) -> None:
    p, failures = digits_problem, _unlabeled(digits_problem)
    with pytest.raises(LabelsNeeded) as first:
        _resolve(p, failures, OwnerLabels(), "drop")
    picks = first.value.picks
    answered = _failure_labels(p, picks.rows[:5], picks.predicted[:5])
    done = _resolve(p, failures, OwnerLabels(answered, rounds=1), "drop")
    assert sorted(done.selection.selected.tolist()) == sorted(answered)
    assert len(done.given_up) == BUDGET - 5


def test_labelled_picks_of_a_partly_labelled_batch_are_not_asked(
    digits_problem: RepairProblem,
) -> None:
    p = digits_problem
    failures = _unlabeled(p, keep_labels=len(p.failures) // 2)
    # Labelled failures the model gets right are no failures: keep the confirmed ones only.
    model = p.deployed().model.eval()
    predicted = model(failures.images.float() / 255).argmax(1)
    keep = (failures.labels == UNLABELED) | (failures.labels != predicted)
    confirmed = failures.subset(keep.nonzero().squeeze(1))
    with pytest.raises(LabelsNeeded) as stopped:
        _resolve(p, confirmed, OwnerLabels(), "replace")
    asked = stopped.value.picks.rows
    assert len(asked) > 0 and bool((confirmed.labels[asked] == UNLABELED).all())
