"""The cost of a training step by method, augmentation and precision, side by side in one run on this machine.

    python benchmarks/train_step.py [--steps 40] [--batch 64] [--json FILE]

Training on the built-in model and benchmark, each configuration for --steps optimizer steps; steps/s from the
loop's own per-step timing (metrics.jsonl's images/s) after the first 5 steps, so model loading and the one teacher
pass of the cached case are left out. Rows: ce and ProReg without augmentation (ProReg reads its teacher's logits
from the cache), ce and ProReg with RandAugment (the teacher runs every step), and ProReg in BF16 autocast on the
CPU against FP32. Ratios: ProReg over ce in each setting, BF16 over FP32.
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

from common.run import open_run
from train.config import TrainConfig
from train.losses import LossConfig
from train.trainer import train

ROWS = {
    "ce, no augmentation": dict(loss="ce"),
    "proreg, no augmentation (cached teacher)": dict(loss="proreg"),
    "ce, RandAugment": dict(loss="ce", augment="randaugment"),
    "proreg, RandAugment (teacher every step)": dict(loss="proreg", augment="randaugment"),
    "proreg, no augmentation, bf16 autocast": dict(loss="proreg", autocast="bf16"),
}


def steps_per_second(run_dir: Path, batch: int) -> float:
    rows = [r for r in open_run(run_dir).metrics() if "images_per_s" in r and r["step"] > 5]
    return sum(r["images_per_s"] for r in rows) / len(rows) / batch


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    rates = {}
    with tempfile.TemporaryDirectory() as tmp:
        for i, (name, opts) in enumerate(ROWS.items()):
            loss = LossConfig(kind=str(opts.pop("loss")))
            cfg = TrainConfig(loss=loss, max_steps=args.steps, batch_size=args.batch, log_every=1, **opts)
            run = train(cfg, Path(tmp) / str(i))
            rates[name] = steps_per_second(run.path, args.batch)
            print(f"{name:45s} {rates[name]:6.2f} steps/s", flush=True)
    names = list(ROWS)
    ratios = {
        "proreg / ce step time, cached teacher": rates[names[0]] / rates[names[1]],
        "proreg / ce step time, RandAugment": rates[names[2]] / rates[names[3]],
        "bf16 / fp32 step time (proreg, cached)": rates[names[1]] / rates[names[4]],
    }
    for name, ratio in ratios.items():
        print(f"{name:45s} {ratio:6.2f}x")
    if args.json:
        args.json.write_text(json.dumps({"steps_per_s": rates, "step_time_ratios": ratios}, indent=2) + "\n")


if __name__ == "__main__":
    main()
