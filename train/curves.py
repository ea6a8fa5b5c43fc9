"""curves.png in the run directory: the training curves read from metrics.jsonl (each loss term, the learning rate,
validation top-1 against steps), the checkpoint validation chose marked."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from common.figures import pyplot, save_figure

CURVES_FILE = "curves.png"
NOT_TERMS = {"step", "epoch", "lr", "images_per_s", "val_top1"}


def plot_curves(records: list[dict[str, Any]], best_step: int | None, path: Path) -> Path | None:
    """Writes the curves of `records` (metrics.jsonl's, in order) to `path`; None when there is nothing to draw."""
    steps = [r for r in records if "loss" in r]
    val = [r for r in records if "val_top1" in r]
    if not steps and not val:
        return None
    plt = pyplot()

    fig, (terms_ax, lr_ax, val_ax) = plt.subplots(1, 3, figsize=(13, 3.6))
    terms = sorted({k for r in steps for k, v in r.items() if k not in NOT_TERMS and isinstance(v, (int, float))})
    for term in terms:
        xy = [(r["step"], r[term]) for r in steps if term in r]
        terms_ax.plot(*zip(*xy, strict=True), label=term, linewidth=2.2 if term == "loss" else 1.2)
    terms_ax.set(title="loss terms", xlabel="step")
    if terms:
        terms_ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    lr = [(r["step"], r["lr"]) for r in steps if "lr" in r]
    if lr:
        lr_ax.plot(*zip(*lr, strict=True), color="tab:gray")
    lr_ax.set(title="learning rate", xlabel="step")
    lr_ax.ticklabel_format(axis="y", style="sci", scilimits=(-3, 3))
    if val:
        val_ax.plot([r["step"] for r in val], [100 * r["val_top1"] for r in val], marker="o", color="tab:green")
        chosen = [r for r in val if r["step"] == best_step]
        if chosen:
            val_ax.scatter([best_step], [100 * chosen[-1]["val_top1"]], s=160, facecolors="none", edgecolors="black",
                           linewidths=1.5, zorder=3, label=f"chosen: step {best_step}")  # fmt: skip
            val_ax.legend(fontsize=8, loc="lower right")
    val_ax.set(title="validation top-1 %", xlabel="step")
    fig.tight_layout()
    save_figure(fig, path)
    return path
