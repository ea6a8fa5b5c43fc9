"""What computing the teacher's logits once (no augmentation) saves, measured side by side.

    python benchmarks/teacher_cache.py [--epochs 3]

Two ProReg runs on the built-in benchmark, identical but for the cache; prints wall time of each and the saving.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from train.config import TrainConfig
from train.trainer import train


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--epochs", type=int, default=3)
    args = parser.parse_args()
    seconds = {}
    with tempfile.TemporaryDirectory() as tmp:
        for cached in (True, False):
            start = time.perf_counter()
            run = train(TrainConfig(epochs=args.epochs, teacher_cache=cached), Path(tmp) / str(cached))
            seconds[cached] = time.perf_counter() - start
            print(
                f"teacher cache {'on ' if cached else 'off'}: {seconds[cached]:6.1f} s, "
                f"best val top-1 {100 * run.record.best.val_top1:.1f}%",
                flush=True,
            )
    saved = seconds[False] - seconds[True]
    print(
        f"saving: {saved:.1f} s of {seconds[False]:.1f} s ({100 * saved / seconds[False]:.0f}%), {args.epochs} epochs"
    )


if __name__ == "__main__":
    main()
