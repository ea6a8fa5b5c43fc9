"""The pictures of an evaluation report: report.png (top-1 and worst-group top-1 per set) and report.sets.png (per
set, where its errors go: a confusion matrix up to HEATMAP_MAX_CLASSES classes, the most-confused pairs beyond; and
its accuracy per class)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from common.figures import pyplot, save_figure
from serve.report import DatasetScores, Report

HEATMAP_MAX_CLASSES = 50
MOST_CONFUSED = 15  # pairs, and worst classes, shown for a set of more classes


def _labelled_bars(ax: Any, x: list[float], values: list[float | None], color: list[str], alpha: float) -> None:
    """Bars with their value written on them; a set without a value says n/a (a 0.0 is a bar of height 0, labelled)."""
    ax.bar(x, [100 * v if v is not None else 0 for v in values], width=0.4, color=color, alpha=alpha)
    for xi, v in zip(x, values, strict=True):
        ax.annotate("n/a" if v is None else f"{100 * v:.1f}", (xi, 100 * v if v is not None else 0), ha="center",
                    va="bottom", fontsize=7, xytext=(0, 2), textcoords="offset points")  # fmt: skip


def plot_scores(report: Report, path: Path) -> None:
    """Top-1 (solid) and worst-group top-1 (light) per set, ID blue and OOD orange, the reference's top-1 as a line;
    the legend below the axes, never over a bar."""
    plt = pyplot()
    names = list(report.datasets)
    colors = ["tab:blue" if report.datasets[n].role == "id" else "tab:orange" for n in names]
    fig, ax = plt.subplots(figsize=(1.6 * len(names) + 2, 4.0))
    x = list(range(len(names)))
    _labelled_bars(ax, [i - 0.2 for i in x], [report.datasets[n].top1 for n in names], colors, 1.0)
    _labelled_bars(ax, [i + 0.2 for i in x], [report.datasets[n].worst_group_top1 for n in names], colors, 0.45)
    handles = [plt.Rectangle((0, 0), 1, 1, color="gray"), plt.Rectangle((0, 0), 1, 1, color="gray", alpha=0.45)]
    labels = ["top-1", "worst-group top-1"]
    if report.agreement:  # the reference's top-1, to see each drop at a glance
        top1 = [100 * (report.datasets[n].top1 or 0) for n in names]
        ref = [top1[i] + (report.agreement[n].top1_drop_pp or 0) for i, n in enumerate(names)]
        handles.append(ax.scatter([i - 0.2 for i in x], ref, marker="_", s=900, color="black", zorder=3))
        labels.append("reference top-1")
    ax.set_xticks(x, names, rotation=15)
    ax.set_ylim(0, 108)
    ax.set_ylabel("%")
    ax.set_title(f"{report.backend} ({report.precision}): ID blue, OOD orange")
    ax.legend(handles, labels, loc="upper center", bbox_to_anchor=(0.5, -0.22), ncol=3, fontsize=8, frameon=False)
    save_figure(fig, path, tight=True)


def confusion_matrix(scores: DatasetScores) -> np.ndarray:
    """counts[true, predicted] of a set, from its sparse confusion."""
    counts = np.zeros((len(scores.classes), len(scores.classes)), dtype=np.int64)
    for true, predicted, n in scores.confusion:
        counts[true, predicted] = n
    return counts


def _heatmap(ax: Any, scores: DatasetScores) -> None:
    counts = confusion_matrix(scores)
    rows = counts / np.maximum(counts.sum(axis=1, keepdims=True), 1)  # each true class's share
    image = ax.imshow(rows * 100, cmap="Blues", vmin=0, vmax=100)
    ticks = range(len(scores.classes))
    size = 7 if len(scores.classes) <= 20 else 4
    ax.set_xticks(ticks, scores.classes, rotation=90, fontsize=size)
    ax.set_yticks(ticks, scores.classes, fontsize=size)
    ax.set(xlabel="predicted", ylabel="true")
    if len(scores.classes) <= 12:
        for (i, j), n in np.ndenumerate(counts):
            if n:
                ax.text(
                    j, i, str(n), ha="center", va="center", fontsize=6, color="white" if rows[i, j] > 0.5 else "black"
                )
    ax.figure.colorbar(image, ax=ax, fraction=0.046, pad=0.04, label="% of the true class")


def _most_confused(ax: Any, scores: DatasetScores) -> None:
    pairs = sorted((p for p in scores.confusion if p[0] != p[1]), key=lambda p: -p[2])[:MOST_CONFUSED]
    labels = [f"{scores.classes[t]} -> {scores.classes[p]}" for t, p, _ in pairs][::-1]
    ax.barh(range(len(pairs)), [n for _, _, n in pairs][::-1], color="tab:red")
    ax.set_yticks(range(len(pairs)), labels, fontsize=7)
    ax.set(xlabel="images", title=f"the {len(pairs)} most-confused pairs (true -> predicted)")


def _per_class(ax: Any, scores: DatasetScores) -> None:
    items = list(scores.per_class_top1.items())
    if len(items) > HEATMAP_MAX_CLASSES:
        items = sorted(items, key=lambda kv: kv[1])[:MOST_CONFUSED]
        ax.set_title(f"the {len(items)} least accurate classes")
    else:
        ax.set_title("top-1 % per class")
    values = [100 * v for _, v in items][::-1]
    ax.barh(range(len(items)), values, color="tab:blue")
    for y, value in enumerate(values):
        ax.annotate(f"{value:.1f}", (value, y), xytext=(-3, 0), textcoords="offset points", ha="right", va="center",
                    fontsize=6, color="white" if value > 15 else "black")  # fmt: skip
    ax.set_yticks(range(len(items)), [k for k, _ in items][::-1], fontsize=7 if len(items) <= 20 else 5)
    ax.set_xlim(0, 100)


def plot_sets(report: Report, path: Path) -> bool:
    """Per set one row: where its errors go and its accuracy per class. False (nothing written) when no set has
    per-class results (a report written before they were recorded)."""
    sets = [(name, s) for name, s in report.datasets.items() if s.classes and s.confusion]
    if not sets:
        return False
    plt = pyplot()
    width = max(len(s.classes) for _, s in sets)
    side = min(4 + 0.18 * width, 12) if width <= HEATMAP_MAX_CLASSES else 6
    fig, axes = plt.subplots(len(sets), 2, figsize=(2 * side + 1, side * len(sets)), squeeze=False)
    for (name, scores), (left, right) in zip(sets, axes, strict=True):
        (_heatmap if len(scores.classes) <= HEATMAP_MAX_CLASSES else _most_confused)(left, scores)
        what = left.get_title()
        left.set_title(f"{name} ({scores.role}, {scores.n} images)" + (f": {what}" if what else ""), fontsize=9)
        _per_class(right, scores)
    fig.tight_layout()
    save_figure(fig, path, tight=True)
    return True
