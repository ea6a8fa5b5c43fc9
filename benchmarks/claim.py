"""The ProReg claim on the built-in benchmark: zero-shot vs ce vs kd vs ProReg (both weight forms), seeds 0-2.

    python benchmarks/claim.py [--seeds 0 1 2] [--epochs 10] [--augment none|randaugment] [--out runs/claim]

Each run trains with the CLI's defaults and is evaluated on the ID and OOD sets with the torch runner. Finished runs
are reused, so an interrupted benchmark continues where it stopped. Prints a markdown table of mean +- std.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

from common.builtin import BUILTIN
from common.run import open_run
from data.specs import resolve_eval_sets
from serve.backends import open_runner
from serve.evaluate import evaluate
from train.config import TrainConfig
from train.losses import LossConfig, loss_config
from train.trainer import train

METHODS = {
    "ce": LossConfig(kind="ce"),
    "kd": LossConfig(kind="kd"),
    "proreg (official)": loss_config("proreg", weight_form="official"),
    "proreg (xerm)": loss_config("proreg", weight_form="xerm"),
}


def evaluate_checkpoint(checkpoint: str, report_path: Path) -> dict:
    if report_path.exists():
        return json.loads(report_path.read_text())
    runner = open_runner(checkpoint)
    report, _ = evaluate(runner, resolve_eval_sets([], runner.spec.classes), batch_size=256)
    report_path.parent.mkdir(parents=True, exist_ok=True)
    report_path.write_text(json.dumps(report, indent=2))
    return report


def run_method(name: str, loss: LossConfig, seed: int, epochs: int, augment: str, out: Path) -> dict:
    run_dir = out / f"{name.replace(' ', '').replace('(', '-').replace(')', '')}-s{seed}"
    if not (run_dir / "run.json").exists() or open_run(run_dir).record.status != "finished":
        start = time.time()
        cfg = TrainConfig(loss=loss, seed=seed, epochs=epochs, augment=augment)
        train(cfg, run_dir, resume=(run_dir / "state.pt").exists())
        print(f"{name} seed {seed}: trained in {time.time() - start:.0f} s", flush=True)
    return evaluate_checkpoint(str(run_dir), run_dir / "report.json")


def row(reports: list) -> dict[str, tuple[float, float]]:
    """Mean and std (over seeds) of each column, in percent (serve.report.Report's)."""
    cols: dict[str, list[float]] = {}
    for rep in reports:
        for name, d in rep.datasets.items():
            cols.setdefault(name, []).append(100 * d.top1)
        cols.setdefault("OOD mean", []).append(100 * rep.summary.ood_top1_mean)
        cols.setdefault("worst group", []).append(100 * rep.summary.worst_group_top1_min)
    return {k: (float(np.mean(v)), float(np.std(v))) for k, v in cols.items()}


def markdown(rows: dict[str, dict[str, tuple[float, float]]], n_seeds: int) -> str:
    cols = list(next(iter(rows.values())))
    lines = ["| method | " + " | ".join(cols) + " |", "|---|" + "---|" * len(cols)]
    for method, r in rows.items():
        lines.append(f"| {method} | " + " | ".join(f"{m:.1f} ± {s:.1f}" for m, s in r.values()) + " |")
    return "\n".join(lines) + f"\n\nTop-1 %, mean ± std over {n_seeds} seed(s); zero-shot has no seed.\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--augment", default="none", choices=["none", "randaugment"])
    parser.add_argument("--out", type=Path, default=Path("runs/claim"))
    args = parser.parse_args()
    rows = {"zero-shot": row([evaluate_checkpoint(BUILTIN, args.out / "zero-shot" / "report.json")])}
    for name, loss in METHODS.items():
        rows[name] = row([run_method(name, loss, seed, args.epochs, args.augment, args.out) for seed in args.seeds])
    table = markdown(rows, len(args.seeds))
    (args.out / "claim.md").write_text(table)
    print(table)


if __name__ == "__main__":
    main()
