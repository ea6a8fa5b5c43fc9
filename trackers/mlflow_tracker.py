"""MLflow: one MLflow run per training (nested under the comparison's run for `compare`), in the tracking store the
user sets the MLflow way (MLFLOW_TRACKING_URI), else MLflow's local default: `mlflow.db` in the working directory,
which `mlflow ui` in that folder shows. The experiment is MLFLOW_EXPERIMENT_NAME or "proreg-clip". Metrics are
buffered and sent in batches (one store write per validation or per 200 values, and at the end)."""

from __future__ import annotations

import logging
import os
import time
from typing import Any

from common.markdown import markdown_table
from trackers.tracker import PROJECT, TrackedRun, Tracker

BATCH = 200  # MLflow's log_batch takes up to 1000 metrics


class MlflowTracker(Tracker):
    name = "mlflow"
    module = "mlflow"
    extra = "mlflow"

    def __init__(self, run: TrackedRun, parent: Tracker | None = None):
        super().__init__(run, parent)
        import mlflow
        from mlflow.tracking import MlflowClient

        logging.getLogger("mlflow").setLevel(logging.WARNING)  # "Updating database tables" and the like
        self.client: Any = MlflowClient(tracking_uri=mlflow.get_tracking_uri())
        self.pending: list[Any] = []
        self.last_step = run.resumed_at or 0
        stored = run.stored_ids().get(self.name)
        if stored and run.resumed_at is not None:
            self.run_id = stored
            self.client.update_run(self.run_id, "RUNNING")
            return
        experiment = os.environ.get("MLFLOW_EXPERIMENT_NAME", PROJECT)
        found = self.client.get_experiment_by_name(experiment)
        experiment_id = found.experiment_id if found else self.client.create_experiment(experiment)
        tags = {"job": run.job, "run_directory": str(run.folder.resolve())}
        if isinstance(parent, MlflowTracker):
            tags["mlflow.parentRunId"] = parent.run_id
        self.run_id = self.client.create_run(experiment_id, run_name=run.name, tags=tags).info.run_id
        self._log_params(run.params)
        run.store_id(self.name, self.run_id)

    def _log_params(self, params: dict[str, Any]) -> None:
        from mlflow.entities import Param

        items = [Param(key, str(value)[:6000]) for key, value in sorted(params.items())]
        for start in range(0, len(items), 100):  # log_batch takes up to 100 params
            self.client.log_batch(self.run_id, params=items[start : start + 100])

    def log_metrics(self, values: dict[str, float], step: int) -> None:
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        self.pending += [Metric(key, float(value), now, step) for key, value in values.items()]
        self.last_step = max(self.last_step, step)
        if len(self.pending) >= BATCH or any(key.startswith("val/") for key in values):
            self.flush()

    def flush(self) -> None:
        pending, self.pending = self.pending, []
        for start in range(0, len(pending), 1000):
            self.client.log_batch(self.run_id, metrics=pending[start : start + 1000])

    def log_summary(self, values: dict[str, float]) -> None:
        self.log_metrics(values, self.last_step)
        self.flush()

    def log_table(self, name: str, header: list[str], rows: list[list[str]]) -> None:
        self.client.log_text(self.run_id, "\n".join(markdown_table(header, rows)) + "\n", f"{name}.md")
        self.client.log_dict(self.run_id, {"header": header, "rows": rows}, f"{name}.json")

    def finish(self, status: str) -> None:
        self.flush()
        self.client.set_terminated(self.run_id, {"finished": "FINISHED", "interrupted": "KILLED"}.get(status, "FAILED"))


TRACKER = MlflowTracker
