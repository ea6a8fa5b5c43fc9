"""The `train` and `pipeline` commands' training: a prepared session trained with a progress bar, its outcome said
in a line or two."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from common.run import Run
from workflows.console import console, main_rank, progress_bar, progress_hook, say

if TYPE_CHECKING:
    from train.config import TrainConfig


def train_with_progress(
    cfg: TrainConfig | None, out: Path | None, resume: bool, overrides: dict[str, Any] | None = None
) -> Run:
    """Trains with progress bars and says where the run went. Ctrl-C saves, prints the command that resumes and
    raises train.trainer.TrainingInterrupted."""
    from train.trainer import TrainingInterrupted, prepare, run_training

    with progress_bar() as bar:  # bad input fails in prepare, before any bar is drawn
        session = prepare(cfg, out, resume, progress=progress_hook(bar), overrides=overrides)
        task = bar.add_task(f"train {session.cfg.loss.kind}", total=session.total_steps, info="teacher logits")

        def on_step(step: int, terms: dict[str, float]) -> None:
            bar.update(task, completed=step, info=f"loss {terms.get('loss', float('nan')):.3f}")

        try:
            run = run_training(session, on_step=on_step)
        except TrainingInterrupted as stop:
            if main_rank():
                console.print(f"{stop}; saved. Resume with: python cli.py train --resume {session.out}")
            raise
    if main_rank():
        best, wise = run.record.best, run.record.wise
        say(f"run directory {run.path}: best validation top-1 {100 * best.val_top1:.1f}% at step {best.step}")
        if wise is not None and wise.val_top1 is not None:
            say(f"WiSE-FT at alpha {wise.alpha:g} (the run's model): validation top-1 {100 * wise.val_top1:.1f}%")
    return run
