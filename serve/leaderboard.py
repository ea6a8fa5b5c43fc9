"""The recipes comparison's leaderboard: per (recipe, knob, seed) evaluations -> rows of mean +- std over seeds,
as leaderboard.json, leaderboard.md and the ID-vs-OOD plot.

A cell's evaluation holds, per WiSE-FT alpha, the validation top-1 and every set's top-1 and worst-group top-1;
sets are "tuned" (the ID and OOD sets methods are chosen on) or "holdout" (shifts nobody tuned for, reported apart).
"""

from __future__ import annotations

import json
import statistics
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from common.errors import UserError
from common.files import atomic_write_json, atomic_write_text
from common.markdown import markdown_table
from common.typed_json import from_json
from serve.intervals import RowSamples, paired_differences, unpack_correct
from serve.report import percent
from serve.robustness_plot import PlotCurve, PlotPoint, plot_id_vs_ood

ZERO_SHOT = "zero-shot"


@dataclass
class SetScore:
    role: str  # "id", "ood" or "holdout"
    top1: float
    worst_group_top1: float | None = None
    n: int = 0  # images scored
    correct: str | None = None  # which of them were right (serve.intervals.pack_correct): the intervals' input


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
    # Against the best row on mean OOD ("best") and the default recipe's row ("default"): per metric (ood_mean, id,
    # holdout_mean) [difference, low, high], fractions, a 95% paired-bootstrap interval over seeds and images.
    versus: dict[str, dict[str, list[float]]] = field(default_factory=dict)
    tied: bool | None = None  # with the best row on mean OOD (its interval holds 0); None: no per-image results

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
    return [row for row, _ in _scored_rows(cells, zero_shot, fixed_alpha)]


def _scored_rows(cells: list[Cell], zero_shot: AlphaScore, fixed_alpha: float) -> list[tuple[Row, list[AlphaScore]]]:
    """method_rows, each with the scores it summarizes (one per seed)."""
    by_knob: dict[str, list[Cell]] = {}
    for cell in cells:
        by_knob.setdefault(cell.knob, []).append(cell)
    knob = max(by_knob, key=lambda k: statistics.fmean(c.alphas[1.0].val_top1 for c in by_knob[k]))
    chosen = by_knob[knob]
    name, n = chosen[0].recipe, len(chosen)

    def row(label: str, alpha: str, scores: list[AlphaScore]) -> tuple[Row, list[AlphaScore]]:
        return Row(label, knob, alpha, n, _metrics(scores)), scores

    rows = [row(name, "1", [c.alphas[1.0] for c in chosen])]
    if all(fixed_alpha in c.alphas for c in chosen) and fixed_alpha not in (0.0, 1.0):
        rows.append(row(f"{name}+wise", f"{fixed_alpha:g}", [c.alphas[fixed_alpha] for c in chosen]))
    with_zero_shot = [{0.0: zero_shot, **c.alphas} for c in chosen]  # a cell's own alpha 0 wins over the default
    picks = [wise_choice({a: score.val_top1 for a, score in alphas.items()}) for alphas in with_zero_shot]
    if len(set(picks)) == 1 and f"{picks[0]:g}" in {r.alpha for r, _ in rows}:
        return rows  # validation chose, for every seed, the alpha of a row above: its numbers again
    label = "val: " + ",".join(f"{a:g}" for a in picks)
    rows.append(row(f"{name}+wise", label, [alphas[a] for alphas, a in zip(with_zero_shot, picks, strict=True)]))
    return rows


def leaderboard(
    cells: list[Cell], zero_shot: AlphaScore, fixed_alpha: float, default: tuple[str, str] | None = None
) -> list[Row]:
    """Every method's rows and the zero-shot row, best mean OOD first, each with its differences to the best row and
    to the `default` (name, alpha) row where there is one (see Row.versus)."""
    methods: dict[str, list[Cell]] = {}
    for cell in cells:
        methods.setdefault(cell.recipe, []).append(cell)
    scored = [(Row(ZERO_SHOT, "", "0", 1, _metrics([zero_shot])), [zero_shot])]
    for method_cells in methods.values():
        scored += _scored_rows(method_cells, zero_shot, fixed_alpha)
    scored.sort(key=lambda pair: -pair[0].mean_of("ood_mean"))
    _add_differences(scored, default)
    return [row for row, _ in scored]


def _role_mean(names: list[str]) -> Callable[[dict[str, Any]], Any]:
    return lambda top1: sum(top1[n] for n in names) / len(names)


def _add_differences(scored: list[tuple[Row, list[AlphaScore]]], default: tuple[str, str] | None) -> None:
    """Row.versus and Row.tied from the rows' per-image results (nothing when a score lacks them: an old cell)."""
    sets = scored[0][1][0].sets
    if not all(s.correct is not None for _, scores in scored for a in scores for s in a.sets.values()):
        return
    samples = {
        f"{row.name}|{row.knob}|{row.alpha}": RowSamples(
            [{name: unpack_correct(s.correct or "", s.n) for name, s in a.sets.items()} for a in scores]
        )
        for row, scores in scored
    }
    labels = list(samples)
    metrics = {
        metric: _role_mean(names)
        for metric, role in (("ood_mean", "ood"), ("id", "id"), ("holdout_mean", "holdout"))
        if (names := [n for n, s in sets.items() if s.role == role])
    }
    refs = {"best": labels[0]}
    chosen = [label for (row, _), label in zip(scored, labels, strict=True) if (row.name, row.alpha) == default]
    if chosen and chosen[0] != labels[0]:  # the default, when it is not the best row itself
        refs["default"] = chosen[0]
    found = paired_differences(samples, list(refs.values()), metrics)
    for (row, _), label in zip(scored, labels, strict=True):
        row.versus = {
            which: {m: [d.value, d.low, d.high] for m, d in found[ref][label].items()} for which, ref in refs.items()
        }
        row.tied = found[refs["best"]][label]["ood_mean"].tied if "ood_mean" in metrics else None


def _pm(value: tuple[float, float] | None) -> str:
    if value is None:
        return "-"
    mean, std = value
    return percent(mean) + (f" ± {100 * std:.1f}" if std else "")


def _interval(entry: list[float] | None) -> str:
    """[difference, low, high] (fractions) as '-0.4 [-1.2, +0.3]' in pp; '-' where there is none."""
    return "-" if not entry else f"{100 * entry[0]:+.1f} [{100 * entry[1]:+.1f}, {100 * entry[2]:+.1f}]"


def _label(row: Row) -> str:
    """'kd+wise (kd_alpha=0.5) at WiSE-FT alpha 0.5'."""
    return f"{row.name}{f' ({row.knob})' if row.knob else ''} at WiSE-FT alpha {row.alpha}"


def leaderboard_table(rows: list[Row]) -> tuple[list[str], list[list[str]]]:
    """The leaderboard's main table (the sets tuned on): header and rows, as leaderboard.md and the trackers show it;
    with per-image results, each row's mean-OOD difference to the best row and whether it is tied with it."""
    tuned = [k for k in rows[0].metrics if k != "val" and not k.startswith("holdout")]
    header = ["recipe", "knob", "WiSE alpha", "seeds", "val", *tuned]
    table = [[r.name, r.knob, r.alpha, str(r.seeds), *(_pm(r.metrics[k]) for k in ["val", *tuned])] for r in rows]
    if any(r.versus for r in rows):
        header.append("OOD vs best, pp [95%]")
        for i, (line, r) in enumerate(zip(table, rows, strict=True)):
            best = r.versus.get("best", {}).get("ood_mean")
            line.append("best" if i == 0 else _interval(best) + (" tie" if r.tied else ""))
    return header, table


def differences_section(rows: list[Row]) -> list[str]:
    """leaderboard.md's differences: every row against the best and the default row, and which rows the intervals
    could not separate from the best."""
    if not any(r.versus for r in rows):
        return []
    refs = [ref for ref in ("best", "default") if ref in rows[0].versus]
    metrics = [m for m in ("ood_mean", "id", "holdout_mean") if m in rows[0].versus["best"]]
    header = ["recipe", "knob", "WiSE alpha", *(f"{m} vs {ref}" for ref in refs for m in metrics)]
    table = [[r.name, r.knob, r.alpha, *(_interval(r.versus[ref][m]) for ref in refs for m in metrics)] for r in rows]
    tied = [_label(r) for r in rows[1:] if r.tied]
    lines = ["", "## Differences, with 95% intervals", "",
             "Each row minus the best row on mean OOD (and minus the default recipe's row), in pp, with a 95% interval"
             " from a paired bootstrap over seeds and evaluation images (the same seeds and images for both rows). An"
             " interval that holds 0 is a tie: the data cannot tell those rows apart.", ""]  # fmt: skip
    lines += markdown_table(header, table)
    verdict = f"Not separable from it on mean OOD: {'; '.join(tied)}." if tied else "Every other row is below it."
    return [*lines, "", f"Best on mean OOD: {_label(rows[0])}. {verdict}"]


def markdown(rows: list[Row], title: str) -> str:
    holdout = [k for k in rows[0].metrics if k.startswith("holdout") and rows[0].metrics[k] is not None]
    # The tuned columns: "id", each OOD set, "ood_mean", "worst_group"; the holdout ones: "holdout:NAME", the mean.
    lines = [f"# {title}", "", "Top-1 % (mean ± std over seeds), best mean OOD first.", ""]
    lines += markdown_table(*leaderboard_table(rows))
    lines += differences_section(rows)
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


def write_leaderboard(
    cells: list[Cell],
    zero_shot: AlphaScore,
    fixed_alpha: float,
    out: Path,
    title: str,
    default: tuple[str, str] | None = None,
) -> list[Row]:
    """leaderboard.json, .md and .png in `out`; `default`: the default recipe's row (name, alpha), if compared."""
    rows = leaderboard(cells, zero_shot, fixed_alpha, default)
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
