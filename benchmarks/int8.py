"""INT8 accuracy retention on every ID and OOD set, by calibration set and method; INT8 vs FP32 speed.

    python benchmarks/int8.py [--run runs/latest]

The run is exported once to FP32 ONNX; each variant is quantized from it and evaluated with ONNX Runtime on the
built-in ID and OOD sets; drops are in percentage points of top-1 against the FP32 ONNX model, side by side.
The last variant calibrates on ID training images plus OOD sketches: it peeks at a test distribution and is there
only to show where the drop comes from, not as a recipe.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from calib.calibration import calibration_images  # noqa: E402
from calib.quantize import quantize_int8  # noqa: E402
from common.metadata import ClassifierMeta  # noqa: E402
from common.suites import resolve_eval_sets, resolve_train_data  # noqa: E402
from export.onnx_export import read_metadata, write_metadata  # noqa: E402
from export.stage import export_run  # noqa: E402
from serve.evaluate import evaluate, with_reference  # noqa: E402
from serve.runners import OnnxRuntimeRunner  # noqa: E402


def variants(meta: ClassifierMeta) -> dict[str, tuple[np.ndarray, str]]:
    train = resolve_train_data("builtin").train
    sketch = resolve_eval_sets(["builtin:ood_sketch"], meta.classes)[0].data
    id300 = calibration_images(train, meta, 300)
    out = {f"ID train 300, {m}": (id300, m) for m in ("entropy", "percentile", "minmax")}
    out["ID train 1000, entropy"] = (calibration_images(train, meta, 1000), "entropy")
    out["ID train 300 + RandAugment, entropy"] = (calibration_images(train, meta, 300, augment=True), "entropy")
    peek = np.concatenate([calibration_images(train, meta, 240), calibration_images(sketch, meta, 60, seed=1)])
    out["ID 240 + OOD sketch 60 (peeking), entropy"] = (peek, "entropy")
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run", type=Path, default=Path("runs/latest"))
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        fp32 = export_run(args.run, Path(tmp), log=lambda m: None).onnx["fp32"]
        meta = ClassifierMeta.from_dict(read_metadata(fp32))
        sets = resolve_eval_sets([], meta.classes)
        ref_report, ref_results = evaluate(OnnxRuntimeRunner(fp32), sets, batch_size=64)
        names = list(ref_report["datasets"])
        print("| calibration | " + " | ".join(f"{n} drop pp" for n in names) + " | INT8/FP32 speed |")
        print("|---|" + "---|" * (len(names) + 1))
        for label, (images, method) in variants(meta).items():
            path = Path(tmp) / "model.int8.onnx"
            quantize_int8(fp32, path, images, method)
            write_metadata(path, meta, {"precision": "int8"})
            report, results = evaluate(OnnxRuntimeRunner(path), sets, batch_size=64)
            report = with_reference(report, results, ref_results, str(fp32), None)
            drops = [f"{report['agreement'][n]['top1_drop_pp']:+.2f}" for n in names]
            speed = report["throughput"]["model_images_per_s"] / ref_report["throughput"]["model_images_per_s"]
            print(f"| {label} | " + " | ".join(drops) + f" | {speed:.2f}x |", flush=True)
        fp32_top1 = ", ".join(f"{n} {100 * ref_report['datasets'][n]['top1']:.1f}" for n in names)
        print(
            f"\nFP32 ONNX top-1 %: {fp32_top1}; FP32 model-only "
            f"{ref_report['throughput']['model_images_per_s']:.0f} images/s"
        )


if __name__ == "__main__":
    main()
