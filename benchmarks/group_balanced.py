"""How far can the default recipe get on ood_background if the training bias is removed with group labels?

    python benchmarks/group_balanced.py [--seeds 0 1 2] [--epochs 6] [--out runs/group-balanced]

An upper bound for any debiasing a user could add without group labels (JTT, reweighting, ...): the built-in
training split's bias-conflicting images (10%, known from the manifest's `group` column) are repeated 9 times, so
that aligned and conflicting images are seen equally often, and the default recipe is trained on that manifest
(repeats are symbolic links: a manifest may not list one file twice). 6 epochs of the 5,496 rows are about as many
steps as 10 epochs of the 3,000. Each run is then swept along WiSE-FT alphas on the built-in and held-out sets via
`cli.py wise`; finished runs and sweeps are reused. Prints the mean over seeds per alpha as a markdown table.
"""

from __future__ import annotations

import argparse
import csv
import json
import statistics
import subprocess
import sys
from pathlib import Path

from data.world.benchmark import ensure_benchmark

ALPHAS = "0.3,0.4,0.5,0.6,0.75,1"
REPEATS = {"aligned": 1, "conflicting": 9}


def balanced_manifest(out: Path) -> Path:
    root = ensure_benchmark()
    manifest = out / "train_balanced.csv"
    if manifest.exists():
        return manifest
    links = out / "images"
    links.mkdir(parents=True, exist_ok=True)
    rows = []
    with open(root / "train.csv", newline="") as f:
        for row in csv.DictReader(f):
            for i in range(REPEATS[row["group"]]):
                link = links / f"{Path(row['path']).stem}_{i}.png"
                if not link.is_symlink():
                    link.symlink_to(root / row["path"])
                rows.append([str(link), row["label"], row["group"]])
    with open(manifest.with_suffix(".tmp"), "w", newline="") as f:
        csv.writer(f).writerows([["path", "label", "group"], *rows])
    manifest.with_suffix(".tmp").replace(manifest)
    return manifest


def cli(*args: str) -> None:
    subprocess.run([sys.executable, "cli.py", *args], check=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--epochs", type=int, default=6)
    parser.add_argument("--out", type=Path, default=Path("runs/group-balanced"))
    args = parser.parse_args()
    manifest, root = balanced_manifest(args.out), ensure_benchmark()
    sweeps = []
    for seed in args.seeds:
        run, swept = args.out / f"seed{seed}", args.out / f"seed{seed}-wise"
        if not (run / "run.json").exists():
            cli(
                "train",
                "--data",
                str(manifest),
                "--val-data",
                str(root / "val.csv"),
                "--classnames",
                str(root / "classnames.txt"),
                "--epochs",
                str(args.epochs),
                "--seed",
                str(seed),
                "--out",
                str(run),
            )
        if not (swept / "wise-sweep.json").exists():
            cli(
                "wise",
                "--checkpoint",
                str(run),
                "--alpha",
                ALPHAS,
                "--data",
                "builtin",
                "--data",
                "builtin-holdout",
                "--out",
                str(swept),
            )
        sweeps.append(json.loads((swept / "wise-sweep.json").read_text())["rows"])
    print_table(sweeps)


def print_table(sweeps: list[list[dict]]) -> None:
    main_ood = ("ood_background", "ood_sketch", "ood_corrupt")
    print("| WiSE alpha | id_test | ood_background | ood_sketch | ood_corrupt | OOD mean | holdout mean |")
    print("|---|---|---|---|---|---|---|")
    for rows in zip(*sweeps, strict=True):
        tops = [r["top1"] for r in rows]
        ood = [100 * statistics.mean(t[k] for k in main_ood) for t in tops]
        spread = f" ± {statistics.stdev(ood):.1f}" if len(ood) > 1 else ""
        holdout = 100 * statistics.mean(v for t in tops for k, v in t.items() if k.startswith("holdout"))
        cells = " | ".join(f"{100 * statistics.mean(t[k] for t in tops):.1f}" for k in ("id_test", *main_ood))
        print(f"| {rows[0]['alpha']:g} | {cells} | {statistics.mean(ood):.1f}{spread} | {holdout:.1f} |")


if __name__ == "__main__":
    main()
