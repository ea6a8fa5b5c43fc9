"""What logging to the trackers costs a training step, side by side in one run on this machine.

    python benchmarks/tracking_overhead.py [--steps 60] [--rounds 3] [--json FILE]

The built-in default recipe trained for --steps steps without trackers and with all three (TensorBoard, MLflow's
local store, W&B offline), alternating, --rounds times each, at the default --log-every 10 and at --log-every 1 (the
worst case: every step logged). The loop's own wall time (run.json's train_seconds: every step, its logging and the
validations) per step, the median over rounds; the overhead is with/without - 1. Starting the trackers (before the
first step: W&B's service, MLflow's database) is reported apart, per run.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
from pathlib import Path

from train.config import TrainConfig
from train.trainer import train
from workflows.tracking import Tracking

TRACKERS = ["tensorboard", "mlflow", "wandb"]


def timed_run(folder: Path, steps: int, log_every: int, trackers: list[str]) -> tuple[float, float, float]:
    """(seconds per step of the training loop, of it inside the trackers' hooks, and seconds spent starting and
    finishing the trackers)."""
    cfg = TrainConfig(max_steps=steps, log_every=log_every)
    started, hooks = [0.0], [0.0]
    with Tracking(trackers, "benchmark") as tracking:

        def on_start(out: Path, params: dict, resumed_at: int | None) -> None:
            begin = time.perf_counter()
            tracking.start(out, params, resumed_at)
            started[0] += time.perf_counter() - begin

        def on_record(record: dict) -> None:
            begin = time.perf_counter()
            tracking.log_record(record)
            hooks[0] += time.perf_counter() - begin

        run = train(cfg, folder, on_start=on_start, on_record=on_record)
        begin = time.perf_counter()
    finish = time.perf_counter() - begin
    return run.record.train_seconds / steps, hooks[0] / steps, started[0] + finish


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=60)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    json_path = args.json.resolve() if args.json else None
    os.environ.setdefault("WANDB_MODE", "offline")  # a benchmark never reaches the network
    figures: dict[str, dict[str, float]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        os.chdir(tmp)  # MLflow's default store (mlflow.db) goes here
        for log_every in (10, 1):
            times: dict[str, list[float]] = {"none": [], "all three": []}
            in_hooks, setup = [], []
            for r in range(args.rounds):
                for label, names in (("none", []), ("all three", TRACKERS)):
                    folder = Path(tmp) / f"{log_every}-{r}-{label}"
                    per_step, hooks, start = timed_run(folder, args.steps, log_every, names)
                    times[label].append(per_step)
                    if names:
                        in_hooks.append(hooks)
                        setup.append(start)
            without, with_ = statistics.median(times["none"]), statistics.median(times["all three"])
            figures[f"log_every {log_every}"] = {
                "ms_per_step_without": 1000 * without,
                "ms_per_step_with": 1000 * with_,
                "wall_overhead_pct": 100 * (with_ / without - 1),
                "without_spread_pct": 100 * (max(times["none"]) - min(times["none"])) / without,
                "in_hooks_pct": 100 * statistics.median(in_hooks) / with_,
                "tracker_start_and_finish_s": statistics.median(setup),
            }
    for name, f in figures.items():
        print(
            f"{name}: {f['ms_per_step_without']:.1f} ms/step without trackers, {f['ms_per_step_with']:.1f} with all"
            f" three ({f['wall_overhead_pct']:+.2f}%; rounds without trackers spread {f['without_spread_pct']:.1f}%);"
            f" inside the trackers' hooks {f['in_hooks_pct']:.2f}% of a step; starting and finishing them"
            f" {f['tracker_start_and_finish_s']:.2f} s"
        )
    if json_path:
        json_path.write_text(json.dumps(figures, indent=2))


if __name__ == "__main__":
    main()
