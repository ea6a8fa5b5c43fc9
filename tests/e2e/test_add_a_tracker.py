"""Adding a tracker is one module and one registration line (docs/DESIGN.md, "Add a tracker", shows this file's
tracker): registered from this test alone, it is a choice of `train --log`, and receives the run's parameters, every
metrics.jsonl record, the final values and its end, while nothing else in the project had to name it."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from cli import app
from trackers import TRACKERS
from trackers.tracker import TrackedRun, Tracker

pytestmark = pytest.mark.slow


# ---- the tracker: what a contributor writes in trackers/<name>_tracker.py -------------------------------------------


class JsonLinesTracker(Tracker):
    """Every event as one JSON line in <run>/events.jsonl (a stand-in for a team's own tracking service)."""

    name = "jsonlines"
    module = "json"  # what must be importable for --log jsonlines
    extra = "jsonlines"  # pyproject's extra that installs it

    def __init__(self, run: TrackedRun, parent: Tracker | None = None):
        super().__init__(run, parent)
        self.file = open(run.folder / "events.jsonl", "a")
        self._write("start", {"job": run.job, "params": run.params, "resumed_at": run.resumed_at})

    def _write(self, event: str, data: dict) -> None:
        self.file.write(json.dumps({"event": event, **data}) + "\n")

    def log_metrics(self, values: dict[str, float], step: int) -> None:
        self._write("metrics", {"step": step, "values": values})

    def log_summary(self, values: dict[str, float]) -> None:
        self._write("summary", {"values": values})

    def log_table(self, name: str, header: list[str], rows: list[list[str]]) -> None:
        self._write("table", {"name": name, "header": header, "rows": rows})

    def finish(self, status: str) -> None:
        self._write("finish", {"status": status})
        self.file.close()


TRACKER = JsonLinesTracker

# ---- and its registration line, in trackers/__init__.py's tuple of modules ------------------------------------------


@pytest.fixture
def registered(monkeypatch):
    monkeypatch.setitem(TRACKERS, TRACKER.name, TRACKER)


def test_a_tracker_registered_from_this_file_logs_a_training(registered, tmp_path):
    out = tmp_path / "run"
    args = ["train", "--max-steps", "3", "--log-every", "1", "--batch-size", "16", "--out", str(out)]
    result = CliRunner().invoke(app, [*args, "--log", "jsonlines"])
    assert result.exit_code == 0, result.output
    events = [json.loads(line) for line in (out / "events.jsonl").read_text().splitlines()]
    assert [e["event"] for e in events][:1] + [e["event"] for e in events][-2:] == ["start", "summary", "finish"]
    assert events[0]["params"]["max_steps"] == 3 and events[0]["job"] == "train"
    steps = [e["step"] for e in events if e["event"] == "metrics" and "train/loss" in e["values"]]
    jsonl = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert steps == [r["step"] for r in jsonl if "loss" in r] == [1, 2, 3]
    assert any("val/top1" in e["values"] for e in events if e["event"] == "metrics")
    assert "final/val_top1" in events[-2]["values"] and events[-1]["status"] == "finished"
