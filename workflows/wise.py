"""`wise_sweep`: WiSE-FT interpolations of a run (train) evaluated along alpha (serve); the one validation picks is
written as a run directory, with the sweep's table and ID-vs-OOD plot beside it."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from common.artifact import ArtifactSpec
from common.builtin import BUILTIN
from common.figures import pyplot, save_figure
from common.files import atomic_write_json, atomic_write_text
from common.markdown import markdown_table
from common.progress import ProgressHook
from common.run import Run, open_run
from data.specs import EvalSet, resolve_eval_sets, resolve_train_data
from serve.evaluate import evaluate, hold_decoded
from serve.leaderboard import (
    WISE_RULE,
    wise_choice,
)
from serve.report import percent
from serve.robustness_plot import PlotCurve, PlotPoint, plot_id_vs_ood
from serve.torch_runner import TorchRunner
from train.wise import Interpolation, base_state, check_new_run_dir, write_wise_run
from workflows.report_page import write_report_page

Log = Callable[[str], None]
log = logging.getLogger(__name__)


WISE_SWEEP_FILE = "wise-sweep.json"
SWEEP_PICTURE = "wise-sweep.png"


@dataclass
class WiseSweep:
    rows: list[dict]  # per alpha: alpha, val_top1, id_top1, ood_top1_mean, top1 per set (fractions)
    chosen: float
    rule: str = WISE_RULE


def wise_sweep(
    run: Run,
    alphas: list[float],
    out: Path,
    sets: list[EvalSet],
    base: Run | None = None,
    batch_size: int = 256,
    progress: ProgressHook | None = None,
) -> tuple[Run, WiseSweep]:
    """Evaluates the interpolation at each alpha on the run's validation data and on `sets`; writes the one with
    the best validation top-1 (WISE_RULE) as the run directory `out`, with wise-sweep.json/.md/.png beside it."""
    check_new_run_dir(run, out)  # before the sweep's minutes of evaluation
    interpolation = Interpolation(run, base_state(run, base))
    preprocess = run.classifier.preprocess
    val = hold_decoded([EvalSet(resolve_train_data(run.record.data.source).val, "id")], preprocess)[0]
    sets = hold_decoded(sets, preprocess)  # decoded once for all alphas
    rows: list[dict[str, Any]] = []
    for i, alpha in enumerate(alphas):
        model = interpolation.classifier(alpha)
        runner = TorchRunner(model, ArtifactSpec(classifier=run.classifier), f"{run.path} (alpha {alpha:g})")
        step = f"alpha {alpha:g} ({i + 1}/{len(alphas)})"
        hook = (lambda n, d, t, step=step: progress(f"{step}: {n}", d, t)) if progress else None
        val_report, _ = evaluate(runner, [val], batch_size, progress=hook)
        report = evaluate(runner, sets, batch_size, progress=hook)[0] if sets else None
        rows.append(
            {
                "alpha": alpha,
                "val_top1": val_report.summary.id_top1,
                "id_top1": report.summary.id_top1 if report else None,
                "ood_top1_mean": report.summary.ood_top1_mean if report else None,
                "top1": {name: d.top1 for name, d in report.datasets.items()} if report else {},
            }
        )
    alpha = wise_choice({r["alpha"]: r["val_top1"] for r in rows})
    sweep = WiseSweep(rows, alpha)
    val_top1 = next(r["val_top1"] for r in rows if r["alpha"] == alpha)
    written = write_wise_run(run, alpha, out, base, interpolation, val_top1=val_top1)
    _write_sweep(sweep, written)
    return written, sweep


def sweep_table(sweep: WiseSweep) -> tuple[list[str], list[list[str]]]:
    """The sweep as a header and one row per alpha (top-1 %; the chosen alpha marked *), for the terminal and
    wise-sweep.md alike."""
    sets = list(sweep.rows[0]["top1"])
    header = ["alpha", "val", *sets, "ID", "OOD mean"]
    rows = [
        [
            f"{r['alpha']:g}" + (" *" if r["alpha"] == sweep.chosen else ""),
            percent(r["val_top1"]),
            *(percent(r["top1"][n]) for n in sets),
            percent(r["id_top1"]),
            percent(r["ood_top1_mean"]),
        ]
        for r in sweep.rows
    ]
    return header, rows


def _write_sweep(sweep: WiseSweep, run: Run) -> None:
    atomic_write_json(
        run.path / WISE_SWEEP_FILE, {"chosen_alpha": sweep.chosen, "rule": sweep.rule, "rows": sweep.rows}
    )
    header, rows = sweep_table(sweep)
    lines = [
        f"# WiSE-FT sweep of {run.record.wise.finetuned if run.record.wise else run.path}",
        "",
        f"Chosen alpha {sweep.chosen:g} (*): {sweep.rule}.",
        "",
        *markdown_table(header, rows),
    ]
    atomic_write_text(run.path / "wise-sweep.md", "\n".join(lines) + "\n")
    title = f"WiSE-FT along alpha (chosen {sweep.chosen:g})"
    if all(r["id_top1"] is not None and r["ood_top1_mean"] is not None for r in sweep.rows):
        curve = PlotCurve(
            "WiSE-FT", [PlotPoint(f"{r['alpha']:g}", r["id_top1"], r["ood_top1_mean"]) for r in sweep.rows]
        )
        plot_id_vs_ood([], [curve], run.path / SWEEP_PICTURE, title)
    else:  # no ID and OOD sets to place it on (a run trained on the user's data, no --data): validation along alpha
        plot_validation_along_alpha(sweep, run.path / SWEEP_PICTURE, title)
    write_report_page(run.path)


def plot_validation_along_alpha(sweep: WiseSweep, path: Path, title: str) -> None:
    plt = pyplot()

    fig, ax = plt.subplots(figsize=(5.5, 3.6))
    ax.plot([r["alpha"] for r in sweep.rows], [100 * r["val_top1"] for r in sweep.rows], marker="o")
    chosen = next(r for r in sweep.rows if r["alpha"] == sweep.chosen)
    ax.scatter([sweep.chosen], [100 * chosen["val_top1"]], s=160, facecolors="none", edgecolors="black", zorder=3)
    ax.set(title=title, xlabel="alpha (0: zero-shot, 1: fine-tuned)", ylabel="validation top-1 %")
    fig.tight_layout()
    save_figure(fig, path)


def wise_command(
    checkpoint: Path,
    alpha_text: str,
    base: Path | None,
    data: list[str],
    out: Path | None,
    sweep_options: tuple[int, bool],
    progress: ProgressHook | None = None,
) -> tuple[Run, WiseSweep | None]:
    """`wise`: one interpolation of the run `checkpoint` (towards `base`, default its zero-shot model) written as a
    run directory, or, for several alphas (`alpha_text`, comma-separated), the sweep on `data` (default: the
    built-in sets for a built-in run) and the alpha validation picks. sweep_options: (batch size, whether the user
    typed the sweep's options: refused for one alpha, which evaluates nothing)."""
    from common.errors import OptionError, check_number
    from train.wise import parse_alphas
    from workflows.overlap import check_not_trained_on

    alphas, (batch_size, typed_sweep_options) = parse_alphas(alpha_text), sweep_options
    check_number("batch size", batch_size, 1)
    if len(alphas) == 1 and typed_sweep_options:
        raise OptionError("--data and --batch-size configure a sweep; one --alpha evaluates nothing")
    run, base_run = open_run(checkpoint), open_run(base) if base else None
    name = run.path.resolve().name + (f"-wise{alphas[0]:g}" if len(alphas) == 1 else "-wise")
    target = out or run.path.resolve().with_name(name)
    if len(alphas) == 1:
        return write_wise_run(run, alphas[0], target, base_run), None
    builtin_run = run.record.data.source.train == BUILTIN
    sets = resolve_eval_sets(data, run.classifier.classes) if data or builtin_run else []
    check_not_trained_on(ArtifactSpec(classifier=run.classifier, source_run=str(run.path)), sets, allow=False)
    return wise_sweep(run, alphas, target, sets, base_run, batch_size, progress)
