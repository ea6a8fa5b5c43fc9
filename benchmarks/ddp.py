"""Data-parallel training on the CPU: optimizer steps per second with 1 and 2 gloo processes, side by side.

    python benchmarks/ddp.py [--steps 60] [--global-batch 64] [--json FILE]

The same ProReg training of the built-in model on its benchmark (teacher logits cached, so the loop is the model),
once as one process with every core, once under torchrun as 2 processes with one core each and half the batch
each: the same global batch and optimizer steps. The figure is steps/s measured from metrics.jsonl's per-step
images/s (the loop only: loading the model and data and the teacher's pass are excluded), averaged after the first
5 steps. On 2 cores the 2-process run shows DDP's cost; on a node of GPUs the same command scales out.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _train(out: Path, processes: int, global_batch: int, steps: int) -> float:
    per_process = global_batch // processes
    args = ["train", "--loss", "proreg", "--batch-size", str(per_process), "--max-steps", str(steps)]
    args += ["--log-every", "1", "--out", str(out)]
    threads = max(1, (os.cpu_count() or 1) // processes)
    if processes == 1:
        cmd = [sys.executable, str(ROOT / "cli.py"), *args]
    else:
        launcher = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={processes}"]
        cmd = [*launcher, str(ROOT / "cli.py"), *args]
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "PYTHONPATH": str(ROOT)}
    subprocess.run(cmd, check=True, env=env, capture_output=True)
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    rates = [r["images_per_s"] for r in rows if "images_per_s" in r and r["step"] > 5]
    return sum(rates) / len(rates) / global_batch


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=60)
    parser.add_argument("--global-batch", type=int, default=64)
    parser.add_argument("--json", type=Path, default=None, help="Also write the figures here.")
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for processes in (1, 2):
            steps_per_s = _train(Path(tmp) / str(processes), processes, args.global_batch, args.steps)
            rows.append({"processes": processes, "backend": "gloo", "steps_per_s": steps_per_s})
    base = rows[0]["steps_per_s"]
    print(f"global batch {args.global_batch}, {args.steps} steps, built-in model, {os.cpu_count()} CPUs")
    print(f"{'processes':>9} {'steps/s':>8} {'images/s':>9} {'vs 1':>6}")
    for row in rows:
        row["vs_one_process"] = row["steps_per_s"] / base
        images = row["steps_per_s"] * args.global_batch
        print(f"{row['processes']:>9} {row['steps_per_s']:>8.2f} {images:>9.1f} {row['vs_one_process']:>5.2f}x")
    if args.json:
        args.json.write_text(json.dumps({"global_batch": args.global_batch, "rows": rows}, indent=2) + "\n")


if __name__ == "__main__":
    main()
