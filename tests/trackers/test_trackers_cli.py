"""`train --log tensorboard --log mlflow --log wandb` on the built-in default: each tracker's files read back with
its own reader hold the loss terms, the validation top-1 and the final evaluation, equal to metrics.jsonl."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.trackers import readers
from tests.trackers.environment import tracker_environment

REPO = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def logged(tmp_path_factory) -> tuple[Path, Path, subprocess.CompletedProcess]:
    """One training of the built-in default (12 steps), logged to all three trackers: (working dir, run dir, result)."""
    cwd = tmp_path_factory.mktemp("tracked")
    command = [sys.executable, str(REPO / "cli.py"), "train", "--max-steps", "12", "--log-every", "2"]
    command += ["--log", "tensorboard", "--log", "mlflow", "--log", "wandb"]
    env = tracker_environment(cwd / "home")
    result = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    return cwd, (cwd / "runs" / "latest").resolve(), result


def jsonl(run: Path) -> tuple[dict[int, float], dict[int, float]]:
    """metrics.jsonl's loss per logged step and validation top-1 per validation step."""
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    losses = {r["step"]: r["loss"] for r in records if "loss" in r}
    return losses, {r["step"]: r["val_top1"] for r in records if "val_top1" in r}


def test_the_command_says_nothing_of_trackers_when_they_work(logged):
    assert "warning" not in logged[2].stderr


def test_tensorboard_holds_the_loss_terms_validation_and_final_values(logged):
    _, run, _ = logged
    losses, val = jsonl(run)
    scalars = readers.tensorboard_scalars(run)
    assert scalars["train/loss"] == pytest.approx(losses, rel=1e-6)
    assert {"train/ce", "train/proreg_weight_mean", "train/lr", "train/images_per_s"} <= scalars.keys()
    assert scalars["val/top1"] == pytest.approx(val)
    record = json.loads((run / "run.json").read_text())
    assert list(scalars["final/val_top1"].values()) == pytest.approx([record["wise"]["val_top1"]])
    assert "loss.kind" in readers.tensorboard_texts(run)["params"]


def test_mlflow_holds_one_finished_run_with_params_and_metrics(logged):
    cwd, run, _ = logged
    client = readers.mlflow_client(cwd)
    (tracked,) = readers.mlflow_runs(client)
    assert tracked.info.status == "FINISHED"
    assert tracked.data.params["loss.kind"] == "proreg" and tracked.data.params["max_steps"] == "12"
    assert tracked.data.tags["run_directory"] == str(run)
    losses, val = jsonl(run)
    history = {m.step: m.value for m in client.get_metric_history(tracked.info.run_id, "train/loss")}
    assert history == pytest.approx(losses, rel=1e-6)
    assert {m.step: m.value for m in client.get_metric_history(tracked.info.run_id, "val/top1")} == pytest.approx(val)
    assert tracked.data.metrics["final/best_val_top1"] == pytest.approx(max(val.values()))


def test_wandb_holds_an_offline_run_in_the_run_directory(logged):
    _, run, _ = logged
    losses, val = jsonl(run)
    history = readers.wandb_history(run)
    assert history["train/loss"] == pytest.approx(losses, rel=1e-6)
    assert history["val/top1"] == pytest.approx(val)
    summary = readers.wandb_summary(run)
    assert summary["final/best_val_top1"] == pytest.approx(max(val.values()))
    assert readers.wandb_config(run)["loss.kind"] == "proreg"
    ids = json.loads((run / "trackers.json").read_text())
    assert list(run.glob(f"wandb/offline-run-*-{ids['wandb']}/run-{ids['wandb']}.wandb"))
