"""Pure metric functions over logits: accuracies, group accuracies, summaries and backend agreement."""

from __future__ import annotations

from typing import Any

import numpy as np


def topk_accuracy(logits: np.ndarray, labels: np.ndarray, k: int) -> float:
    """Fraction of samples whose label is among the k highest logits (k capped at the number of classes)."""
    if len(labels) == 0:
        return float("nan")
    k = min(k, logits.shape[1])
    top = np.argsort(-logits, axis=1, kind="stable")[:, :k]
    return float((top == labels[:, None]).any(axis=1).mean())


def group_accuracies(logits: np.ndarray, labels: np.ndarray, groups: np.ndarray, names: list[str]) -> dict[str, float]:
    """Top-1 per group name; groups with no samples are left out."""
    correct = logits.argmax(axis=1) == labels
    return {name: float(correct[groups == g].mean()) for g, name in enumerate(names) if (groups == g).any()}


def _mean(values: list[float]) -> float | None:
    return float(np.mean(values)) if values else None


def summarize(datasets: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """ID top-1 (mean over ID sets), mean OOD top-1, and the lowest worst-group top-1 of any set."""
    worst = [d["worst_group_top1"] for d in datasets.values() if d["worst_group_top1"] is not None]
    return {
        "id_top1": _mean([d["top1"] for d in datasets.values() if d["role"] == "id"]),
        "ood_top1_mean": _mean([d["top1"] for d in datasets.values() if d["role"] == "ood"]),
        "worst_group_top1_min": min(worst) if worst else None,
    }


def agreement(logits: np.ndarray, reference: np.ndarray, labels: np.ndarray | None = None) -> dict[str, float]:
    """How far one backend's logits are from a reference's on the same images: top-1 agreement, the largest absolute
    logit difference and, given labels, the drop in top-1 accuracy in percentage points."""
    if logits.shape != reference.shape:
        raise ValueError(f"logit shapes differ: {logits.shape} vs reference {reference.shape}")
    n = len(logits)
    out = {
        "top1_agreement": float((logits.argmax(axis=1) == reference.argmax(axis=1)).mean()) if n else float("nan"),
        "max_abs_logit_diff": float(np.abs(logits - reference).max()) if n else 0.0,
    }
    if labels is not None:
        out["top1_drop_pp"] = 100.0 * (topk_accuracy(reference, labels, 1) - topk_accuracy(logits, labels, 1))
    return out


def gate(agreements: dict[str, dict[str, float]], max_drop_pp: float) -> dict[str, Any]:
    """Passes when no dataset's top-1 dropped by more than `max_drop_pp` percentage points."""
    worst = max((a["top1_drop_pp"] for a in agreements.values()), default=0.0)
    return {"max_drop_pp": max_drop_pp, "worst_drop_pp": worst, "passed": bool(worst <= max_drop_pp)}
