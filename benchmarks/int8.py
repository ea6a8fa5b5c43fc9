"""INT8 accuracy retention on every ID and OOD set, by calibration set and method; INT8 vs FP32 speed.

    python benchmarks/int8.py [--run runs/latest]

The run is exported once to FP32 ONNX; each variant is quantized from it and evaluated with ONNX Runtime on the
built-in ID and OOD sets; drops are in percentage points of top-1 against the FP32 ONNX model, side by side.
The last variant calibrates on ID training images plus OOD sketches: it peeks at a test distribution and is there
only to show where the drop comes from, not as a recipe.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from calib.calibration import calibration_images
from calib.int8 import Int8Options, write_int8_copy
from common.artifact import ArtifactSpec, read_onnx_spec
from common.run import DataSource
from data.specs import resolve_eval_sets, resolve_train_data
from serve.evaluate import evaluate, with_reference
from serve.onnxruntime_runner import OnnxRuntimeRunner
from workflows.export import export_run

ALL = ("patch_embed", "pool", "head")
NO_POOL = ("patch_embed", "head")


def variants(spec: ArtifactSpec) -> dict[str, tuple[np.ndarray, str, tuple[str, ...]]]:
    """label -> (calibration images, method, parts kept in FP32)."""
    meta = spec.classifier
    train = resolve_train_data(DataSource()).train
    sketch = resolve_eval_sets(["builtin:ood_sketch"], meta.classes)[0].data
    id300 = calibration_images(train, meta, 300)
    peek = np.concatenate([calibration_images(train, meta, 240), calibration_images(sketch, meta, 60, seed=1)])
    return {
        "ID train 300, percentile, keep all (default)": (id300, "percentile", ALL),
        "ID train 300, entropy, keep all": (id300, "entropy", ALL),
        "ID train 300, minmax, keep all": (id300, "minmax", ALL),
        "ID train 300, percentile, pool quantized": (id300, "percentile", NO_POOL),
        "ID train 300, entropy, pool quantized": (id300, "entropy", NO_POOL),
        "ID train 1000, percentile, keep all": (calibration_images(train, meta, 1000), "percentile", ALL),
        "ID train 300 + RandAugment, percentile, keep all": (
            calibration_images(train, meta, 300, augment=True),
            "percentile",
            ALL,
        ),
        "ID 240 + OOD sketch 60 (peeking), percentile, keep all": (peek, "percentile", ALL),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run", type=Path, default=Path("runs/latest"))
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        fp32 = export_run(args.run, Path(tmp), log=lambda m: None).onnx["fp32"]
        spec = read_onnx_spec(fp32)
        sets = resolve_eval_sets([], spec.classes)
        ref_report, ref_results = evaluate(OnnxRuntimeRunner(fp32), sets, batch_size=64)
        names = list(ref_report.datasets)
        print("| calibration | " + " | ".join(f"{n} drop pp" for n in names) + " |")
        print("|---|" + "---|" * len(names))
        for label, (images, method, keep) in variants(spec).items():
            path = Path(tmp) / "model.int8.onnx"
            write_int8_copy(fp32, path, spec, images, Int8Options(method=method, keep_fp32=keep), label)
            report, results = evaluate(OnnxRuntimeRunner(path), sets, batch_size=64)
            report = with_reference(report, results, ref_results, ref_report, None)
            drops = [f"{report.agreement[n].top1_drop_pp:+.2f}" for n in names]
            print(f"| {label} | " + " | ".join(drops) + " |", flush=True)
            if label.endswith("(default)"):
                default_int8 = Path(tmp) / "default.int8.onnx"
                path.replace(default_int8)
        fp32_top1 = ", ".join(f"{n} {100 * ref_report.datasets[n].top1:.1f}" for n in names)
        print(f"\nFP32 ONNX top-1 %: {fp32_top1}")
        side_by_side_speed(fp32, default_int8, spec.classifier.image_size)


def side_by_side_speed(fp32: Path, int8: Path, size: int, batch: int = 64, rounds: int = 7) -> None:
    """Model-only images/s of FP32 and INT8, alternating runs on the same batch; medians."""
    images = torch.randn(batch, 3, size, size)
    runners = {"fp32": OnnxRuntimeRunner(fp32), "int8": OnnxRuntimeRunner(int8)}
    seconds: dict[str, list[float]] = {name: [] for name in runners}
    for _ in range(rounds + 1):  # the first round warms up
        for name, runner in runners.items():
            start = time.perf_counter()
            runner.infer(images)
            seconds[name].append(time.perf_counter() - start)
    speed = {name: batch / statistics.median(s[1:]) for name, s in seconds.items()}
    print(
        f"ONNX Runtime, batch {batch}, median of {rounds}: FP32 {speed['fp32']:.0f} images/s, "
        f"INT8 {speed['int8']:.0f} images/s, INT8/FP32 {speed['int8'] / speed['fp32']:.2f}x"
    )


if __name__ == "__main__":
    main()
