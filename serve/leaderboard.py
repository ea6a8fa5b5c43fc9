"""The recipes comparison's leaderboard: per (recipe, knob, seed) evaluations -> rows of mean +- std over seeds,
as leaderboard.json, leaderboard.md and the ID-vs-OOD plot.

A cell's evaluation holds, per WiSE-FT alpha, the validation top-1 and every set's top-1 and worst-group top-1;
sets are "tuned" (the ID and OOD sets methods are chosen on) or "holdout" (shifts nobody tuned for, reported apart).
"""

from __future__ import annotations

import json
import statistics
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from common.errors import UserError
from common.files import atomic_write_json, atomic_write_text
from common.markdown import markdown_table
from common.typed_json import from_json
from serve.report import percent
from serve.robustness_plot import PlotCurve, PlotPoint, plot_id_vs_ood

ZERO_SHOT = "zero-shot"


@dataclass
class SetScore:
    role: str  # "id", "ood" or "holdout"
    top1: float
    worst_group_top1: float | None = None


@dataclass
class AlphaScore:
    """One model (a cell at one WiSE-FT alpha) on the validation data and every set."""

    val_top1: float
    sets: dict[str, SetScore]

    def id_top1(self) -> float:
        return statistics.fmean(s.top1 for s in self.sets.values() if s.role == "id")

    def mean(self, role: str) -> float | None:
        scores = [s.top1 for s in self.sets.values() if s.role == role]
        return statistics.fmean(scores) if scores else None

    def worst_group(self) -> float | None:
        worst = [
            s.worst_group_top1 for s in self.sets.values() if s.worst_group_top1 is not None and s.role != "holdout"
        ]
        return min(worst) if worst else None


@dataclass
class StoredScores:
    """What a comparison stores per cell (and for the zero-shot model): the sets measured and, per alpha, the
    scores."""

    sets: list[str]
    alphas: dict[str, AlphaScore]


@dataclass
class Cell:
    """One trained (recipe, knob, seed) and its evaluations by alpha: 1.0 the fine-tuned model itself, 0.0 the
    zero-shot model on the cell's own validation split."""

    recipe: str
    knob: str  # "" when the recipe has no knob
    seed: int
    run: str
    alphas: dict[float, AlphaScore] = field(default_factory=dict)


@dataclass
class Row:
    name: str
    knob: str
    alpha: str  # "1", a fixed alpha, or "val" (chosen per seed on validation)
    seeds: int
    metrics: dict[str, tuple[float, float] | None]  # name -> (mean, std) over seeds, fractions; None: not measured

    def mean_of(self, name: str) -> float:
        """The mean of a metric, -1 when not measured (sorts last)."""
        value = self.metrics.get(name)
        return value[0] if value else -1.0


WISE_RULE = "highest validation top-1; ties go to the smaller alpha (closer to the zero-shot model)"


def wise_choice(val_top1: dict[float, float]) -> float:
    """WiSE-FT's alpha by WISE_RULE, from each alpha's validation top-1."""
    return max(val_top1, key=lambda a: (val_top1[a], -a))


def _metrics(scores: list[AlphaScore]) -> dict[str, tuple[float, float] | None]:
    def stat(values: list[float | None]) -> tuple[float, float] | None:
        got = [v for v in values if v is not None]
        if not got:
            return None
        return (statistics.fmean(got), statistics.stdev(got) if len(got) > 1 else 0.0)

    out = {"val": stat([s.val_top1 for s in scores]), "id": stat([s.id_top1() for s in scores])}
    for name, first in scores[0].sets.items():  # holdout sets' keys say so, whatever the sets are called
        if first.role != "id":
            out[f"holdout:{name}" if first.role == "holdout" else name] = stat([s.sets[name].top1 for s in scores])
    out["ood_mean"] = stat([s.mean("ood") for s in scores])
    out["worst_group"] = stat([s.worst_group() for s in scores])
    out["holdout_mean"] = stat([s.mean("holdout") for s in scores])
    return out


def method_rows(cells: list[Cell], zero_shot: AlphaScore, fixed_alpha: float) -> list[Row]:
    """For one method's cells: the knob with the best mean validation top-1, then rows for its fine-tuned model,
    WiSE-FT at `fixed_alpha`, and WiSE-FT with alpha chosen on validation per seed (unless it chose the same row's
    alpha for every seed: a row of the same numbers)."""
    by_knob: dict[str, list[Cell]] = {}
    for cell in cells:
        by_knob.setdefault(cell.knob, []).append(cell)
    knob = max(by_knob, key=lambda k: statistics.fmean(c.alphas[1.0].val_top1 for c in by_knob[k]))
    chosen = by_knob[knob]
    name, n = chosen[0].recipe, len(chosen)

    rows = [Row(name, knob, "1", n, _metrics([c.alphas[1.0] for c in chosen]))]
    if all(fixed_alpha in c.alphas for c in chosen) and fixed_alpha not in (0.0, 1.0):
        rows.append(Row(f"{name}+wise", knob, f"{fixed_alpha:g}", n, _metrics([c.alphas[fixed_alpha] for c in chosen])))
    with_zero_shot = [{0.0: zero_shot, **c.alphas} for c in chosen]  # a cell's own alpha 0 wins over the default
    picks = [wise_choice({a: score.val_top1 for a, score in alphas.items()}) for alphas in with_zero_shot]
    if len(set(picks)) == 1 and f"{picks[0]:g}" in {row.alpha for row in rows}:
        return rows  # validation chose, for every seed, the alpha of a row above: its numbers again
    label = "val: " + ",".join(f"{a:g}" for a in picks)
    scores = [alphas[a] for alphas, a in zip(with_zero_shot, picks, strict=True)]
    rows.append(Row(f"{name}+wise", knob, label, n, _metrics(scores)))
    return rows


def leaderboard(cells: list[Cell], zero_shot: AlphaScore, fixed_alpha: float) -> list[Row]:
    """Every method's rows and the zero-shot row, best mean OOD first."""
    methods: dict[str, list[Cell]] = {}
    for cell in cells:
        methods.setdefault(cell.recipe, []).append(cell)
    rows = [Row(ZERO_SHOT, "", "0", 1, _metrics([zero_shot]))]
    for method_cells in methods.values():
        rows += method_rows(method_cells, zero_shot, fixed_alpha)
    return sorted(rows, key=lambda r: -r.mean_of("ood_mean"))


def _pm(value: tuple[float, float] | None) -> str:
    if value is None:
        return "-"
    mean, std = value
    return percent(mean) + (f" ± {100 * std:.1f}" if std else "")


def leaderboard_table(rows: list[Row]) -> tuple[list[str], list[list[str]]]:
    """The leaderboard's main table (the sets tuned on): header and rows, as leaderboard.md and the trackers show it."""
    tuned = [k for k in rows[0].metrics if k != "val" and not k.startswith("holdout")]
    header = ["recipe", "knob", "WiSE alpha", "seeds", "val", *tuned]
    return header, [
        [r.name, r.knob, r.alpha, str(r.seeds), *(_pm(r.metrics[k]) for k in ["val", *tuned])] for r in rows
    ]


def markdown(rows: list[Row], title: str) -> str:
    holdout = [k for k in rows[0].metrics if k.startswith("holdout") and rows[0].metrics[k] is not None]
    # The tuned columns: "id", each OOD set, "ood_mean", "worst_group"; the holdout ones: "holdout:NAME", the mean.
    lines = [f"# {title}", "", "Top-1 % (mean ± std over seeds), best mean OOD first.", ""]
    lines += markdown_table(*leaderboard_table(rows))
    if holdout:
        lines += ["", "## Held-out shifts (nothing was tuned on these)", ""]
        ranked = sorted(rows, key=lambda r: -r.mean_of("holdout_mean"))
        lines += markdown_table(
            ["recipe", "knob", "WiSE alpha", *holdout],
            [[r.name, r.knob, r.alpha, *(_pm(r.metrics[k]) for k in holdout)] for r in ranked],
        )
    return "\n".join(lines) + "\n"


def _mean_point(label: str, scores: list[AlphaScore]) -> PlotPoint:
    return PlotPoint(
        label, statistics.fmean(s.id_top1() for s in scores), statistics.fmean(s.mean("ood") or 0.0 for s in scores)
    )


def plot_rows(cells: list[Cell], rows: list[Row], zero_shot: AlphaScore, path: Path, title: str) -> None:
    """Zero-shot and each fine-tuned row as points (error bars: std over seeds); each method's WiSE-FT curve, the
    mean over its chosen knob's seeds at each alpha, from the zero-shot model at alpha 0."""
    points = []
    for r in rows:
        if r.alpha in ("0", "1") and r.metrics["id"] and r.metrics["ood_mean"]:
            (x, dx), (y, dy) = r.metrics["id"], r.metrics["ood_mean"]
            points.append(PlotPoint(f"{r.name} {r.knob}".strip(), x, y, dx, dy, method=r.name))
    curves = []
    for r in rows:
        if r.alpha != "1":
            continue
        chosen = [c for c in cells if c.recipe == r.name and c.knob == r.knob]
        scores = [{0.0: zero_shot, **c.alphas} for c in chosen]  # a cell's own alpha 0 wins over the default
        alphas = sorted(set.intersection(*(set(c) for c in scores)))
        curve = [_mean_point(f"{a:g}", [c[a] for c in scores]) for a in alphas]
        curves.append(PlotCurve(f"{r.name} WiSE-FT", curve, method=r.name))
    plot_id_vs_ood(points, curves, path, title)


@dataclass
class Leaderboard:
    """leaderboard.json: the rows, the cells they summarize (with their scores by alpha) and the zero-shot model's
    scores; written by write_leaderboard, read by read_leaderboard."""

    title: str
    rows: list[Row]
    cells: list[Cell]
    zero_shot: AlphaScore

    def to_dict(self) -> dict[str, Any]:
        cells = [{**asdict(c), "alphas": {f"{a:g}": asdict(s) for a, s in c.alphas.items()}} for c in self.cells]
        return {
            "title": self.title,
            "rows": [asdict(r) for r in self.rows],
            "cells": cells,
            "zero_shot": asdict(self.zero_shot),
        }


def write_leaderboard(cells: list[Cell], zero_shot: AlphaScore, fixed_alpha: float, out: Path, title: str) -> list[Row]:
    rows = leaderboard(cells, zero_shot, fixed_alpha)
    atomic_write_json(out / "leaderboard.json", Leaderboard(title, rows, cells, zero_shot).to_dict())
    atomic_write_text(out / "leaderboard.md", markdown(rows, title))
    plot_rows(cells, rows, zero_shot, out / "leaderboard.png", title)
    return rows


def read_leaderboard(path: Path) -> Leaderboard:
    """leaderboard.json as written; UserError when it is not one of ours or is damaged."""
    try:
        data = json.loads(Path(path).read_text())
        cells = [{**c, "alphas": {float(a): s for a, s in c["alphas"].items()}} for c in data["cells"]]
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, KeyError, TypeError, ValueError) as err:
        raise UserError(f"cannot read leaderboard {path}: {err}") from err
    return from_json(Leaderboard, {**data, "cells": cells}, str(path), UserError)
