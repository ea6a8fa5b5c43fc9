"""What a tracker is: one module that receives a run's events through these hooks (as Ultralytics' callbacks and
the Hugging Face Trainer's `report_to`). `trackers/__init__.py` lists them; `--log NAME` on train, compare and
pipeline chooses them; workflows/tracking.py calls the hooks, guarding each so that a failing tracker costs a
warning and never the run.

Every tracker logs the same things under the same keys: per logged step the loss terms as `train/<term>` (with
`train/lr`, `train/images_per_s`), `val/top1` at each validation, the final values (`final/...`, `eval/...`,
`artifact/...`) as a summary, and tables (a comparison's leaderboard)."""

from __future__ import annotations

import importlib.util
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from common.errors import OptionError
from common.files import atomic_write_json

PROJECT = "proreg-clip"  # the MLflow experiment and W&B project unless the user sets theirs the tracker's way
IDS_FILE = "trackers.json"  # in the run directory: each tracker's id of the run, so a resumed run logs into it


@dataclass
class TrackedRun:
    """The run a tracker logs: its directory, name, the job (train, pipeline, compare, a compare cell) and its
    parameters (the resolved training config)."""

    folder: Path
    name: str
    job: str
    params: dict[str, Any] = field(default_factory=dict)
    resumed_at: int | None = None  # the step a resumed run continues after: later events are dropped or replaced

    def stored_ids(self) -> dict[str, Any]:
        """The ids trackers stored in this run directory (empty for a new run)."""
        try:
            ids = json.loads((self.folder / IDS_FILE).read_text())
        except (OSError, ValueError):
            return {}
        return ids if isinstance(ids, dict) else {}

    def store_id(self, tracker: str, value: Any) -> None:
        atomic_write_json(self.folder / IDS_FILE, {**self.stored_ids(), tracker: value})


class Tracker:
    """One tracker's run. Subclasses set `name`, `module` (imported only when chosen), `extra` (pyproject's
    optional extra that installs it) and implement the hooks; `parent` is the comparison a cell's run nests in."""

    name: ClassVar[str]
    module: ClassVar[str]
    extra: ClassVar[str]

    def __init__(self, run: TrackedRun, parent: Tracker | None = None):
        self.run, self.parent = run, parent

    def log_metrics(self, values: dict[str, float], step: int) -> None:
        raise NotImplementedError

    def log_summary(self, values: dict[str, float]) -> None:
        raise NotImplementedError

    def log_table(self, name: str, header: list[str], rows: list[list[str]]) -> None:
        raise NotImplementedError

    def finish(self, status: str) -> None:
        """`status`: finished, interrupted or failed."""
        raise NotImplementedError


def check_installed(tracker: type[Tracker]) -> None:
    """OptionError naming the extra when the tracker's package is missing (before any work)."""
    if importlib.util.find_spec(tracker.module) is None:
        raise OptionError(f"--log {tracker.name} needs {tracker.module}: pip install -e '.[{tracker.extra}]'")


def metric_key(key: str) -> str:
    """A key every tracker takes: letters, digits and _-./ kept, anything else `_` (a row "kd+wise (openvino)"
    becomes "kd_wise_openvino_")."""
    return re.sub(r"[^A-Za-z0-9_\-./]+", "_", key)
