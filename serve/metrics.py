"""Pure metric functions over logits: accuracies, group accuracies, summaries and backend agreement.

A set without images has no accuracy and no drop: those are None (null in report.json), never NaN, so reports stay
strict JSON and a gate's verdict cannot depend on where an empty set sits among the others.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from common.errors import check_number
from serve.intervals import drop_interval
from serve.report import Agreement, DatasetScores, Gate, Summary

ECE_BINS = 15  # as Guo et al. and most reports of CLIP calibration


def topk_accuracy(logits: np.ndarray, labels: np.ndarray, k: int) -> float | None:
    """Fraction of samples whose label is among the k highest logits (k capped at the number of classes)."""
    if len(labels) == 0:
        return None
    k = min(k, logits.shape[1])
    top = np.argsort(-logits, axis=1, kind="stable")[:, :k]
    return float((top == labels[:, None]).any(axis=1).mean())


def group_accuracies(logits: np.ndarray, labels: np.ndarray, groups: np.ndarray, names: list[str]) -> dict[str, float]:
    """Top-1 per group name; groups with no samples are left out."""
    correct = logits.argmax(axis=1) == labels
    return {name: float(correct[groups == g].mean()) for g, name in enumerate(names) if (groups == g).any()}


def expected_calibration_error(logits: np.ndarray, labels: np.ndarray, bins: int = ECE_BINS) -> float | None:
    """Expected calibration error (Guo et al., 2017): the images binned by their softmax confidence into `bins`
    equal-width bins; the mean over images of |accuracy - confidence| of their bin. None for no images."""
    if len(labels) == 0:
        return None
    shifted = logits.astype(np.float64) - logits.max(axis=1, keepdims=True)
    probs = np.exp(shifted)
    confidence = probs.max(axis=1) / probs.sum(axis=1)
    correct = logits.argmax(axis=1) == labels
    which = np.minimum((confidence * bins).astype(np.int64), bins - 1)  # (k/bins, (k+1)/bins]; 1.0 in the last
    ece = 0.0
    for b in np.unique(which):
        members = which == b
        ece += members.sum() * abs(correct[members].mean() - confidence[members].mean())
    return float(ece / len(labels))


def class_accuracies(logits: np.ndarray, labels: np.ndarray, classes: list[str]) -> dict[str, float]:
    """Top-1 per class (by name) of the classes that have images, in class order."""
    correct = logits.argmax(axis=1) == labels
    return {name: float(correct[labels == c].mean()) for c, name in enumerate(classes) if (labels == c).any()}


def confusion(logits: np.ndarray, labels: np.ndarray) -> list[list[int]]:
    """The confusion counts as sparse [true class, predicted class, images] triples (only the counts that are not 0),
    ordered by true and then predicted class: compact at ImageNet's 1,000 classes."""
    if len(labels) == 0:
        return []
    pairs, counts = np.unique(np.stack([labels, logits.argmax(axis=1)], axis=1), axis=0, return_counts=True)
    return [[int(t), int(p), int(n)] for (t, p), n in zip(pairs, counts, strict=True)]


def _mean(values: list[float]) -> float | None:
    return float(np.mean(values)) if values else None


def summarize(datasets: dict[str, DatasetScores]) -> Summary:
    """ID top-1 (mean over ID sets), mean OOD top-1, and the lowest worst-group top-1 of any set."""
    worst = [d.worst_group_top1 for d in datasets.values() if d.worst_group_top1 is not None]
    measured = [d for d in datasets.values() if d.top1 is not None]
    return Summary(
        id_top1=_mean([d.top1 for d in measured if d.role == "id" and d.top1 is not None]),
        ood_top1_mean=_mean([d.top1 for d in measured if d.role == "ood" and d.top1 is not None]),
        worst_group_top1_min=min(worst) if worst else None,
    )


def agreement(logits: np.ndarray, reference: np.ndarray, labels: np.ndarray | None = None) -> Agreement:
    """How far one backend's logits are from a reference's on the same images: top-1 agreement, the largest absolute
    logit difference and, given labels, the drop in top-1 accuracy in percentage points (None for no images)."""
    if logits.shape != reference.shape:
        raise ValueError(f"logit shapes differ: {logits.shape} vs reference {reference.shape}")
    n = len(logits)
    predicted, reference_predicted = logits.argmax(axis=1), reference.argmax(axis=1)
    drop, interval = None, None
    if labels is not None and n:
        correct, reference_correct = predicted == labels, reference_predicted == labels
        # From counts, so losing exactly 1 image in 100 is exactly 1.0 pp and passes a 1.0 pp gate.
        drop = 100.0 * (int(reference_correct.sum()) - int(correct.sum())) / n
        interval = list(drop_interval(correct, reference_correct))
    return Agreement(
        top1_agreement=float((predicted == reference_predicted).mean()) if n else None,
        max_abs_logit_diff=float(np.abs(logits - reference).max()) if n else None,
        top1_drop_pp=drop,
        top1_drop_interval_pp=interval,
    )


# The accuracy-drop gates of an exported artifact against its torch model, in pp (`pipeline`, `bench`,
# `checks`): INT8 loses more to rounding (BENCHMARKS.md "INT8").
DEFAULT_MAX_DROP, DEFAULT_MAX_DROP_INT8 = 1.0, 1.5


def drop_limit(
    precision: str, max_drop: float = DEFAULT_MAX_DROP, max_drop_int8: float = DEFAULT_MAX_DROP_INT8
) -> float:
    """The accuracy-drop gate of an artifact of `precision`: INT8 artifacts take `max_drop_int8`."""
    return max_drop_int8 if precision == "int8" else max_drop


def check_max_drop(max_drop_pp: float, what: str = "max_drop_pp") -> None:
    """A gate's limit: a finite number of percentage points, at least 0 (checked before any evaluation runs)."""
    check_number(what, max_drop_pp, 0)


def gate(agreements: dict[str, Agreement], max_drop_pp: float) -> Gate:
    """Passes when no dataset's top-1 dropped by more than `max_drop_pp` percentage points (sets without images
    have no drop)."""
    check_max_drop(max_drop_pp)
    worst = worst_of(agreements, "top1_drop_pp", max) or 0.0
    at = [a.top1_drop_interval_pp for a in agreements.values() if a.top1_drop_pp == worst and a.top1_drop_interval_pp]
    return Gate(max_drop_pp, worst, bool(worst <= max_drop_pp), at[0] if at else None)


def worst_of(agreements: dict[str, Agreement], key: str, pick: Callable[[list[float]], float]) -> float | None:
    """The worst value of the Agreement field `key` over the sets that have one (`pick` is max for drops, min for
    agreement)."""
    values = [getattr(a, key) for a in agreements.values() if getattr(a, key) is not None]
    return pick(values) if values else None
