"""TensorBoard: event files in the run directory, so `tensorboard --logdir runs` shows every run (a comparison's
leaderboard goes into the comparison's folder)."""

from __future__ import annotations

from typing import Any

from common.markdown import markdown_table
from trackers.tracker import TrackedRun, Tracker


class TensorBoardTracker(Tracker):
    name = "tensorboard"
    module = "tensorboard"
    extra = "tensorboard"

    def __init__(self, run: TrackedRun, parent: Tracker | None = None):
        super().__init__(run, parent)
        from torch.utils.tensorboard import SummaryWriter

        # purge_step: a resumed run's events past its checkpoint are hidden, as metrics.jsonl drops those lines
        resumed = run.resumed_at is not None
        purge = run.resumed_at + 1 if run.resumed_at is not None else None
        self.writer: Any = SummaryWriter(str(run.folder), purge_step=purge, flush_secs=30)
        self.last_step = run.resumed_at or 0
        if run.params and not resumed:  # at step 0: logged again after a resume, it would purge every later step
            self.writer.add_text(
                "params", "\n".join(markdown_table(["parameter", "value"], sorted_params(run.params))), 0
            )

    def log_metrics(self, values: dict[str, float], step: int) -> None:
        for key, value in values.items():
            self.writer.add_scalar(key, value, step)
        self.last_step = max(self.last_step, step)

    def log_summary(self, values: dict[str, float]) -> None:
        self.log_metrics(values, self.last_step)

    def log_table(self, name: str, header: list[str], rows: list[list[str]]) -> None:
        self.writer.add_text(name, "\n".join(markdown_table(header, rows)), self.last_step)

    def finish(self, status: str) -> None:
        self.writer.add_text("status", status, self.last_step)
        self.writer.close()


def sorted_params(params: dict[str, Any]) -> list[list[str]]:
    return [[key, str(value)] for key, value in sorted(params.items())]


TRACKER = TensorBoardTracker
