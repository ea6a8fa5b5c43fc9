"""The plot robust fine-tuning is read by: ID top-1 against mean OOD top-1, one point per model, WiSE-FT curves as
lines through their alphas (Wortsman et al.'s figure 1, Radford et al.'s effective-robustness plots)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from common.figures import pyplot, save_figure


@dataclass
class PlotPoint:
    label: str
    id_top1: float  # fractions
    ood_top1: float
    id_std: float = 0.0  # over seeds; drawn as error bars when > 0
    ood_std: float = 0.0
    method: str = ""  # points and curves of one method share a color


@dataclass
class PlotCurve:
    label: str
    points: list[PlotPoint] = field(default_factory=list)  # in order along the curve (alpha 0 .. 1)
    method: str = ""


def plot_id_vs_ood(points: list[PlotPoint], curves: list[PlotCurve], path: Path, title: str) -> None:
    """Writes the scatter (and curves) to `path`, atomically; the zero-shot point, if labelled so, is a star."""
    plt = pyplot()

    fig, ax = plt.subplots(figsize=(7.2, 5.4))
    palette = [plt.get_cmap("tab10")(i) for i in range(10)]
    methods = list(dict.fromkeys([c.method or c.label for c in curves] + [p.method or p.label for p in points]))
    color = {m: palette[i % len(palette)] for i, m in enumerate(methods)}
    for curve in curves:
        xs = [100 * p.id_top1 for p in curve.points]
        ys = [100 * p.ood_top1 for p in curve.points]
        (line,) = ax.plot(
            xs, ys, "-", marker=".", alpha=0.5, label=curve.label, color=color[curve.method or curve.label]
        )
        for p, x, y in zip(curve.points, xs, ys, strict=True):
            ax.annotate(p.label, (x, y), fontsize=6, color=line.get_color(), xytext=(2, 2), textcoords="offset points")
    for p in points:
        marker = "*" if p.label.startswith("zero-shot") else "o"
        ax.errorbar(
            100 * p.id_top1,
            100 * p.ood_top1,
            xerr=100 * p.id_std or None,
            yerr=100 * p.ood_std or None,
            fmt=marker,
            markersize=11 if marker == "*" else 6,
            capsize=2,
            label=p.label,
            color=color[p.method or p.label],
        )
    ax.set_xlabel("ID top-1 %")
    ax.set_ylabel("mean OOD top-1 %")
    ax.set_title(title, fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="best")
    fig.tight_layout()
    save_figure(fig, path, dpi=120)
