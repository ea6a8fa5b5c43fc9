"""The `train` and `pipeline` commands' training: a prepared session trained with a progress bar, its outcome said
in a line or two."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from common.errors import NoSpaceError
from common.run import STATE_FILE, Run
from workflows.console import console, main_rank, progress_bar, progress_hook, say
from workflows.report_page import write_report_page

if TYPE_CHECKING:
    from rich.progress import Progress

    from train.config import TrainConfig
    from train.session import Session
    from workflows.console import LineProgress
    from workflows.tracking import Tracking


def train_with_progress(
    cfg: TrainConfig | None,
    out: Path | None,
    resume: bool,
    overrides: dict[str, Any] | None = None,
    tracking: Tracking | None = None,
) -> Run:
    """Trains with progress bars, logs to the `tracking` trackers (started here, once the run directory is known;
    the caller finishes them) and says where the run went. Ctrl-C saves, prints the command that resumes and raises
    train.trainer.TrainingInterrupted."""
    from train.trainer import TrainingInterrupted, prepare

    with progress_bar() as bar:  # bad input fails in prepare, before any bar is drawn
        try:
            session = prepare(cfg, out, resume, progress=progress_hook(bar), overrides=overrides)
            run = _train_prepared(session, bar, resume, tracking)
        except TrainingInterrupted as stop:
            if main_rank():
                then = f". Resume with: python cli.py train --resume {stop.run_dir}" if stop.resumable else ""
                console.print(f"{stop}{then}", markup=False)
            if tracking is not None:
                tracking.status = "interrupted"
            raise
    if main_rank():
        write_report_page(run.path)
        say_trained(run)
        if tracking is not None:
            tracking.log_summary(final_values(run))
    return run


def _train_prepared(session: Session, bar: Progress | LineProgress, resume: bool, tracking: Tracking | None) -> Run:
    """run_training with a bar, its records to the trackers; a full disk's line says how to resume."""
    from train.trainer import run_training

    task = bar.add_task(f"train {session.cfg.loss.kind}", total=session.total_steps, info="teacher logits")
    on_record = None
    if tracking is not None and main_rank():
        tracking.start(session.out, session.cfg.to_dict(), session.counters.step if resume else None)
        on_record = tracking.log_record

    def on_step(step: int, terms: dict[str, float]) -> None:
        bar.update(task, completed=step, info=f"loss {terms.get('loss', float('nan')):.3f}")

    try:
        return run_training(session, on_step, on_record)
    except NoSpaceError as full:
        if (session.out / STATE_FILE).is_file():  # an earlier checkpoint to go on from
            raise NoSpaceError(full.path, full.reason, f"resume: python cli.py train --resume {session.out}") from full
        raise


def say_trained(run: Run) -> None:
    best, wise = run.record.best, run.record.wise
    say(f"run directory {run.path}: best validation top-1 {100 * best.val_top1:.1f}% at step {best.step}")
    say(f"curves and report: {run.path / 'report.html'}")
    if wise is not None and wise.val_top1 is not None:
        say(f"WiSE-FT at alpha {wise.alpha:g} (the run's model): validation top-1 {100 * wise.val_top1:.1f}%")


def final_values(run: Run) -> dict[str, float | None]:
    """The finished run's final evaluation for the trackers: the kept checkpoint's validation top-1 and step, the
    run's model's (WiSE-FT's when the recipe ends with it), and the training time."""
    best, wise = run.record.best, run.record.wise
    model_top1 = wise.val_top1 if wise is not None and wise.val_top1 is not None else best.val_top1
    return {
        "final/best_val_top1": best.val_top1,
        "final/best_step": float(best.step),
        "final/wise_alpha": wise.alpha if wise is not None else None,
        "final/val_top1": model_top1,
        "final/train_seconds": run.record.train_seconds,
    }
