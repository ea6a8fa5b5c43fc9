"""workflows/tracking.py: the trackers of a run called as one. A tracker that fails costs one warning and never the
run; a missing or unknown tracker is refused before any work; a resumed run logs into the same tracked runs; a
comparison's cells nest under its run; an evaluation's scores, drops and gates are logged as the final values."""

from __future__ import annotations

import errno
import importlib.util
import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

import trackers
from cli import app
from serve.report import DatasetScores, Gate, Report, Summary, Throughput
from tests.trackers import readers
from trackers.tracker import Tracker
from workflows.tracking import Tracking

TRAIN = ["train", "--max-steps", "4", "--log-every", "1", "--batch-size", "16"]


class FullDisk(Tracker):
    """A tracker whose store fills up at its third metrics call."""

    name, module, extra = "full-disk", "json", "none"
    calls = 0

    def log_metrics(self, values, step):
        FullDisk.calls += 1
        if FullDisk.calls >= 3:
            raise OSError(errno.ENOSPC, "No space left on device")

    def log_summary(self, values):
        raise AssertionError("called after it failed")

    def log_table(self, name, header, rows):
        pass

    def finish(self, status):
        raise AssertionError("called after it failed")


@pytest.mark.slow
def test_a_tracker_that_fails_mid_run_costs_one_warning_and_the_others_go_on(tmp_path, cwd, tracker_env, monkeypatch):
    monkeypatch.setitem(trackers.TRACKERS, FullDisk.name, FullDisk)
    out = tmp_path / "run"
    result = CliRunner().invoke(app, [*TRAIN, "--out", str(out), "--log", "full-disk", "--log", "tensorboard"])
    assert result.exit_code == 0, result.output
    warnings = [line for line in result.output.splitlines() if line.startswith("warning:")]
    assert warnings == [
        "warning: tracker full-disk failed (OSError: [Errno 28] No space left on device); the run goes on without it"
    ]
    assert json.loads((out / "run.json").read_text())["status"] == "finished"
    assert set(readers.tensorboard_scalars(out)["train/loss"]) == {1, 2, 3, 4}  # the other tracker logged every step


@pytest.mark.slow
def test_a_tracking_store_that_cannot_be_reached_costs_a_warning(tmp_path, cwd, tracker_env, monkeypatch):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "bogus-scheme://nowhere")
    out = tmp_path / "run"
    result = CliRunner().invoke(app, [*TRAIN, "--out", str(out), "--log", "mlflow"])
    assert result.exit_code == 0, result.output
    (warning,) = [line for line in result.output.splitlines() if line.startswith("warning:")]
    assert warning.startswith("warning: tracker mlflow could not start (") and "bogus-scheme" in warning
    assert json.loads((out / "run.json").read_text())["status"] == "finished"


@pytest.mark.parametrize(
    ("tracker", "missing", "words"),
    [
        ("wandb", "wandb", "--log wandb needs wandb: pip install -e '.[wandb]'"),
        ("mlflow", "mlflow", "--log mlflow needs mlflow: pip install -e '.[mlflow]'"),
        ("tensorboard", "tensorboard", "--log tensorboard needs tensorboard: pip install -e '.[tensorboard]'"),
        ("neptune", None, "unknown tracker 'neptune' for --log; choose from tensorboard, mlflow, wandb"),
    ],
)
@pytest.mark.parametrize("command", [TRAIN, ["pipeline", "--max-steps", "2"], ["compare", "--max-steps", "2"]])
def test_a_tracker_that_is_missing_or_unknown_is_refused_before_any_work(
    command, tracker, missing, words, cwd, monkeypatch
):
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == missing else real(name, *a))
    result = CliRunner().invoke(app, [*command, "--log", tracker])
    assert result.exit_code == 2
    assert result.output.strip().splitlines() == [f"error: {words}"]
    assert list(cwd.iterdir()) == []


def test_a_resumed_run_logs_into_the_tracked_runs_it_started(tmp_path, tracker_env, monkeypatch):
    monkeypatch.chdir(tmp_path)
    folder = tmp_path / "run"
    folder.mkdir()
    with Tracking(["mlflow", "wandb", "tensorboard"], "train") as first:
        first.start(folder, {"loss": {"kind": "ce"}})
        first.log_record({"step": 1, "epoch": 0, "loss": 2.0})
        first.log_record({"step": 2, "epoch": 0, "loss": 1.5})
        first.status = "interrupted"
    ids = json.loads((folder / "trackers.json").read_text())
    with Tracking(["mlflow", "wandb", "tensorboard"], "train") as second:
        second.start(folder, {"loss": {"kind": "ce"}}, resumed_at=1)  # the checkpoint was at step 1: 2 comes again
        second.log_record({"step": 2, "epoch": 0, "loss": 1.25})
        second.log_record({"step": 3, "epoch": 0, "loss": 1.0})
    assert json.loads((folder / "trackers.json").read_text()) == ids
    client = readers.mlflow_client(tmp_path)
    (tracked,) = readers.mlflow_runs(client)
    assert tracked.info.run_id == ids["mlflow"] and tracked.info.status == "FINISHED"
    assert len(readers.wandb_records(folder)) > 0 and len(list(folder.glob(f"wandb/offline-run-*-{ids['wandb']}"))) == 2
    assert readers.tensorboard_scalars(folder)["train/loss"] == {1: 2.0, 2: 1.25, 3: 1.0}  # step 2 of the first purged


def test_an_evaluations_scores_drops_and_gates_are_final_values(tmp_path):
    scores = DatasetScores("ood", 10, 0, 0.8, 0.9, 0.5, {"a": 0.5, "b": 0.9})
    throughput = Throughput(100.0, 120.0, 64, 1.0, 2.0)
    report = Report("onnxruntime", "model.int8.onnx", "int8", ["x"], {"ood_sketch": scores}, Summary(None, 0.8, 0.5),
                    throughput, gate=Gate(1.5, 0.75, True))  # fmt: skip
    with Tracking(["tensorboard"], "pipeline") as tracking:
        tracking.start(tmp_path)
        tracking.log_record({"step": 7, "epoch": 1, "loss": 0.5})
        tracking.log_reports({"proreg+wise (onnxruntime int8)": report})
    scalars = readers.tensorboard_scalars(tmp_path)
    row = "proreg_wise_onnxruntime_int8_"
    assert scalars[f"eval/{row}/ood_sketch/top1"] == {7: pytest.approx(0.8)}
    assert scalars[f"eval/{row}/ood_sketch/worst_group_top1"] == {7: pytest.approx(0.5)}
    assert scalars[f"artifact/{row}/worst_drop_pp"] == {7: pytest.approx(0.75)}
    assert scalars[f"artifact/{row}/gate_passed"] == {7: 1.0}


@pytest.mark.slow
def test_a_comparison_is_one_tracked_run_with_its_leaderboard_and_each_cell_nested_in_it(cwd, tracker_env):
    args = ["compare", "--recipes", "ce", "--seeds", "0", "--max-steps", "2", "--alpha", "0.5", "--out", "cmp"]
    result = CliRunner().invoke(app, [*args, "--log", "mlflow", "--log", "tensorboard"])
    assert result.exit_code == 0, result.output
    client = readers.mlflow_client(cwd)
    runs = {run.info.run_name: run for run in readers.mlflow_runs(client)}
    assert set(runs) == {"cmp", "ce-s0"}
    parent, cell = runs["cmp"], runs["ce-s0"]
    assert cell.data.tags["mlflow.parentRunId"] == parent.info.run_id
    assert cell.data.tags["job"] == "compare-cell" and cell.data.params["loss.kind"] == "ce"
    leaderboard = json.loads((cwd / "cmp" / "leaderboard.json").read_text())
    fixed = next(row for row in leaderboard["rows"] if row["alpha"] == "0.5")
    assert cell.data.metrics["wise/alpha_0.5/ood_mean"] == pytest.approx(fixed["metrics"]["ood_mean"][0])
    logged = client.download_artifacts(parent.info.run_id, "leaderboard.md", str(cwd))
    assert "| ce+wise |" in Path(logged).read_text()
    assert "ce+wise" in readers.tensorboard_texts(cwd / "cmp")["leaderboard"]
