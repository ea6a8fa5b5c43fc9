"""Data loading at 64 px: end-to-end `eval` throughput against model-only throughput, side by side in one run.

    python benchmarks/data_loading.py [--repeats 3] [--batch 64] [--workers 0 2] [--json FILE]

The built-in zero-shot model, exported to ONNX and run by ONNX Runtime FP32, evaluated on the built-in benchmark's
test sets (ID and the three OOD sets, 4800 PNG images of 64 px) as `cli.py eval` does it. For each DataLoader worker
count: end-to-end images/s (decoding + preprocessing + model, over the evaluation's wall time), model-only images/s
(the runner's own time in the same evaluation) and their ratio; `cold` reads every file, `held` is a further
evaluation of the same sets with their decoded images held (what `eval --reference`, a pipeline's or a
comparison's later evaluations get). Each row is the evaluation with the median ratio of `--repeats`.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
from pathlib import Path
from typing import Any

import torch

from data.specs import resolve_eval_sets
from export.onnx_export import export_onnx
from serve.evaluate import evaluate
from serve.onnxruntime_runner import OnnxRuntimeRunner
from serve.torch_runner import TorchRunner


def builtin_onnx(folder: Path) -> Path:
    """The built-in zero-shot model exported as ONNX FP32."""
    zero_shot = TorchRunner.builtin_zero_shot("cpu")
    return export_onnx(zero_shot.model, zero_shot.spec, folder / "builtin.onnx")


def measure(runner: OnnxRuntimeRunner, workers: int, held: bool, batch: int, repeats: int) -> dict[str, Any]:
    """The evaluation with the median end-to-end / model-only ratio among `repeats`."""
    rows = []
    for _ in range(repeats):
        sets = resolve_eval_sets(["builtin"], runner.spec.classes)  # nothing held
        if held:
            evaluate(runner, sets, batch_size=batch, num_workers=workers, keep_decoded=True)
        report, _ = evaluate(runner, sets, batch_size=batch, num_workers=workers)
        t = report.throughput
        rows.append(
            {
                "images": "held" if held else "cold",
                "workers": workers,
                "end_to_end_images_per_s": t.images_per_s,
                "model_images_per_s": t.model_images_per_s,
                "ratio": t.images_per_s / t.model_images_per_s,
            }
        )
    median_ratio = statistics.median_low([r["ratio"] for r in rows])
    return next(r for r in rows if r["ratio"] == median_ratio)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--workers", type=int, nargs="+", default=[0, 2])
    parser.add_argument("--json", type=Path, default=None, help="also write the rows to this file")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        runner = OnnxRuntimeRunner(builtin_onnx(Path(tmp)))
        images = sum(len(ev.data.samples) for ev in resolve_eval_sets(["builtin"], runner.spec.classes))
        evaluate(runner, resolve_eval_sets(["builtin:id_test"], runner.spec.classes), batch_size=args.batch)  # warm
        print(
            f"## built-in model at 64 px, ONNX Runtime fp32, {images} PNG images (built-in test sets), "
            f"batch {args.batch}, {torch.get_num_threads()} threads, median of {args.repeats}"
        )
        cases = [(held, workers) for held in (False, True) for workers in args.workers]
        rows = [measure(runner, workers, held, args.batch, args.repeats) for held, workers in cases]
    for r in rows:
        print(
            f"{r['images']:4s} workers {r['workers']}: end to end {r['end_to_end_images_per_s']:7.1f} images/s, "
            f"model only {r['model_images_per_s']:7.1f} images/s, ratio {r['ratio']:.2f}"
        )
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2) + "\n")


if __name__ == "__main__":
    main()
