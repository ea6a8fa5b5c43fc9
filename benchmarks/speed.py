"""CPU inference speed of every backend and precision, side by side in one run on this machine.

    python benchmarks/speed.py [--models ViT-B-32,builtin] [--batch 64] [--iters 3] [--json FILE]

For each model (ViT-B-32 with random weights, whose speed does not depend on them, and the built-in model): torch
eager FP32 and BF16 autocast, then every registered backend's rows for the FP32 file and the two INT8 copies (the
pipeline's rows: ONNX Runtime on fp32, int8 (the TensorRT form, s8s8 Q/DQ) and int8-cpu (the CPU form, u8
activations); OpenVINO fp32, bf16 and int8 (the Q/DQ file)). Each row: images/s
(median of --iters timed batches after a warm-up), the ratio to torch eager FP32 and to ONNX Runtime FP32, top-1
agreement with ONNX Runtime FP32 on the timed batch, and the fraction of this machine's peak for its precision: the
model's FLOPs per image (torch's FLOP counter) x images/s over a large matmul's FLOP/s timed in the same run (FP32
and BF16 in torch, INT8 u8 x s8 in ONNX Runtime's MatMulInteger). INT8 copies are calibrated on 64 images (the
built-in model: its training images; ViT-B-32: the random batch). `--json FILE` writes the rows and peaks as JSON.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import onnx
import onnxruntime
import open_clip
import torch
from torch.utils.flop_counter import FlopCounterMode

from calib.calibration import calibration_images
from calib.int8 import Int8Options, write_int8_copy
from common.artifact import DEFAULT_TEMPLATES, ArtifactSpec, ClassifierMeta, ExportedFiles
from common.classifier import ClipClassifier
from common.models import build_visual
from common.run import DataSource
from data.specs import builtin_classnames, resolve_eval_sets, resolve_train_data
from export.onnx_export import export_onnx
from serve.backends import artifact_rows, backends_running, open_row
from serve.openvino_runner import import_openvino, openvino_core
from serve.torch_runner import TorchRunner

PEAK_SIZE = 2048


def random_classifier(model_name: str, classes: list[str]) -> tuple[ClipClassifier, ArtifactSpec]:
    config = open_clip.get_model_config(model_name)
    size = config["vision_cfg"]["image_size"]
    preprocess = {
        "size": size,
        "mean": list(open_clip.OPENAI_DATASET_MEAN),
        "std": list(open_clip.OPENAI_DATASET_STD),
        "interpolation": "bicubic",
        "resize_mode": "shortest",
    }
    visual = build_visual(config, preprocess)
    weights = torch.nn.functional.normalize(torch.randn(len(classes), config["embed_dim"]), dim=-1)
    meta = ClassifierMeta(model_name, None, config, preprocess, classes, classes, list(DEFAULT_TEMPLATES), 100.0)
    return ClipClassifier(visual, weights, 100.0).eval(), ArtifactSpec(classifier=meta)


def timed(run: Callable[[], np.ndarray], n: int, iters: int) -> tuple[float, np.ndarray]:
    """Images/s of `run` (a batch of `n`), median of `iters` after a warm-up, and its last output."""
    out = run()
    seconds = []
    for _ in range(iters):
        start = time.perf_counter()
        out = run()
        seconds.append(time.perf_counter() - start)
    return n / statistics.median(seconds), out


def peaks(iters: int) -> dict[str, float]:
    """This machine's matmul GFLOP/s per precision, the best of the engines that offer it, on PEAK_SIZE^3: FP32 in
    torch, ONNX Runtime and OpenVINO; BF16 in torch and OpenVINO; INT8 (u8 x s8) in ONNX Runtime's MatMulInteger
    and OpenVINO's INT8 kernels (a Q/DQ MatMul). Each engine's own GEMM differs by 2-4x on one CPU (torch's FP32
    matmul reached a quarter of ONNX Runtime's on this AMD EPYC), so the best measured stands for the peak."""
    rng = np.random.default_rng(0)
    a, b = (
        rng.standard_normal((PEAK_SIZE, PEAK_SIZE), np.float32),
        rng.standard_normal((PEAK_SIZE, PEAK_SIZE), np.float32),
    )
    rates: dict[str, list[float]] = {"fp32": [], "bf16": []}
    for name, dtype in (("fp32", torch.float32), ("bf16", torch.bfloat16)):
        x, y = torch.from_numpy(a).to(dtype), torch.from_numpy(b).to(dtype)
        rates[name].append(timed(lambda x=x, y=y: (x @ y).float().numpy(), 1, iters + 2)[0])
    fp32_graph, int8_graph = _matmul_graph(b, quantized=False), _matmul_graph(b, quantized=True)
    session = onnxruntime.InferenceSession(fp32_graph, providers=["CPUExecutionProvider"])
    rates["fp32"].append(timed(lambda: session.run(None, {"x": a})[0], 1, iters + 2)[0])
    rates["int8"] = [_int8_peak(iters)]
    for precision, graph, hint in (
        ("fp32", fp32_graph, "f32"),
        ("bf16", fp32_graph, "bf16"),
        ("int8", int8_graph, "f32"),
    ):
        rates[precision].append(_openvino_rate(graph, hint, a, iters))
    flop = 2 * PEAK_SIZE**3
    return {f"{name}_gflops": max(r) * flop / 1e9 for name, r in rates.items()}


def _matmul_graph(weight: np.ndarray, quantized: bool) -> bytes:
    """x @ W as an ONNX model; `quantized`: both sides through symmetric INT8 Q/DQ (OpenVINO runs it in INT8)."""
    h = onnx.helper
    inits = [onnx.numpy_helper.from_array(weight, "w")]
    nodes, left, right = [], "x", "w"
    if quantized:
        scale = onnx.numpy_helper.from_array(np.array(0.05, np.float32), "s")
        zero = onnx.numpy_helper.from_array(np.array(0, np.int8), "z")
        inits += [scale, zero]
        for name in ("x", "w"):
            nodes += [h.make_node("QuantizeLinear", [name, "s", "z"], [f"{name}q"])]
            nodes += [h.make_node("DequantizeLinear", [f"{name}q", "s", "z"], [f"{name}d"])]
        left, right = "xd", "wd"
    nodes.append(h.make_node("MatMul", [left, right], ["y"]))
    shape = [PEAK_SIZE, PEAK_SIZE]
    x = h.make_tensor_value_info("x", onnx.TensorProto.FLOAT, shape)
    y = h.make_tensor_value_info("y", onnx.TensorProto.FLOAT, shape)
    graph = h.make_graph(nodes, "peak", [x], [y], inits)
    return h.make_model(graph, opset_imports=[h.make_opsetid("", 17)]).SerializeToString()


def _openvino_rate(graph: bytes, hint: str, x: np.ndarray, iters: int) -> float:
    ov = import_openvino()
    core = openvino_core()  # the process's one Core (serve.openvino_runner says why)
    model = core.read_model(graph, ov.Tensor(np.empty(0, np.uint8)))
    compiled = core.compile_model(model, "CPU", {"INFERENCE_PRECISION_HINT": hint, "PERFORMANCE_HINT": "LATENCY"})
    request = compiled.create_infer_request()
    return timed(lambda: request.infer({0: x})[0], 1, iters + 2)[0]


def _int8_peak(iters: int) -> float:
    """Matmuls/s of ONNX Runtime's MatMulInteger, u8 activations x s8 weights (what the CPU INT8 form runs)."""
    rng = np.random.default_rng(0)
    weight = onnx.numpy_helper.from_array(rng.integers(-127, 127, (PEAK_SIZE, PEAK_SIZE), dtype=np.int8), "w")
    x = onnx.helper.make_tensor_value_info("x", onnx.TensorProto.UINT8, [PEAK_SIZE, PEAK_SIZE])
    y = onnx.helper.make_tensor_value_info("y", onnx.TensorProto.INT32, [PEAK_SIZE, PEAK_SIZE])
    node = onnx.helper.make_node("MatMulInteger", ["x", "w"], ["y"])
    graph = onnx.helper.make_graph([node], "peak", [x], [y], [weight])
    model = onnx.helper.make_model(graph, opset_imports=[onnx.helper.make_opsetid("", 17)])
    session = onnxruntime.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    feed = {"x": rng.integers(0, 255, (PEAK_SIZE, PEAK_SIZE), dtype=np.uint8)}
    return timed(lambda: session.run(None, feed)[0], 1, iters + 2)[0]


def gflop_per_image(model: torch.nn.Module, size: int) -> float:
    counter = FlopCounterMode(display=False)
    with counter, torch.enable_grad():  # without grad, attention takes a fused path the counter does not see
        model(torch.randn(1, 3, size, size))
    return counter.get_total_flops() / 1e9


def model_setup(name: str, batch_size: int) -> tuple[ClipClassifier, ArtifactSpec, np.ndarray, torch.Tensor]:
    """The classifier, its spec, 64 calibration images and the timed batch: for the built-in model real images
    (training images to calibrate, ID test images to time and compare), for ViT-B-32 random ones."""
    if name == "builtin":
        zero_shot = TorchRunner.builtin_zero_shot("cpu")
        model, spec = zero_shot.model, zero_shot.spec
        calib = calibration_images(resolve_train_data(DataSource()).train, spec.classifier, 64)
        test = resolve_eval_sets(["builtin:id_test"], spec.classes)[0].data
        return model, spec, calib, torch.from_numpy(calibration_images(test, spec.classifier, batch_size))
    model, spec = random_classifier(name, list(builtin_classnames()))
    size = spec.classifier.image_size
    rng = np.random.default_rng(1)
    calib = rng.standard_normal((64, 3, size, size)).astype(np.float32)
    return model, spec, calib, torch.from_numpy(rng.standard_normal((batch_size, 3, size, size)).astype(np.float32))


def rows_for(name: str, batch_size: int, iters: int, peak: dict[str, float], tmp: Path) -> list[dict]:
    model, spec, calib, batch = model_setup(name, batch_size)
    size = spec.classifier.image_size
    fp32 = export_onnx(model, spec, tmp / f"{name}.onnx")
    files = {"int8": tmp / f"{name}.int8.onnx", "int8-cpu": tmp / f"{name}.int8-cpu.onnx"}
    for key, scheme in (("int8", "s8s8"), ("int8-cpu", "u8s8")):
        write_int8_copy(fp32, files[key], spec, calib, Int8Options(n_images=64), "benchmark", scheme)
    eager = TorchRunner(model, spec, name, "cpu")

    def bf16_eager() -> np.ndarray:
        with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
            return model(batch).float().numpy()

    candidates: list[tuple[str, str, Callable[[], np.ndarray]]] = [
        ("torch", "fp32", lambda: eager.infer(batch)),
        ("torch", "bf16", bf16_eager),
    ]
    # Every registered backend's rows for these files (serve.backends.artifact_rows): the pipeline's rows.
    exported = ExportedFiles({"fp32": fp32, **files})
    candidates += [(b, row.name, _infer(open_row(b, row), batch)) for b, row in artifact_rows(exported)]
    flops = gflop_per_image(model, size)
    rows = []
    for backend, precision, run in candidates:
        rate, logits = timed(run, batch_size, iters)
        peak_key = "bf16" if precision == "bf16" else ("int8" if precision.startswith("int8") else "fp32")
        row = {"model": name, "backend": backend, "precision": precision, "images_per_s": rate}
        row.update(logits=logits, peak_fraction=rate * flops / peak[f"{peak_key}_gflops"])
        rows.append(row)
        print(f"  {name:9s} {backend:12s} {precision:10s} {rate:9.1f} images/s", flush=True)
    return _with_ratios(rows)


def _infer(runner, batch: torch.Tensor) -> Callable[[], np.ndarray]:
    return lambda: runner.infer(batch)


def _with_ratios(rows: list[dict]) -> list[dict]:
    torch_fp32 = next(r for r in rows if r["backend"] == "torch" and r["precision"] == "fp32")
    onnx = backends_running(".onnx")[0]  # the backend that runs ONNX files by default: ONNX Runtime
    ort_fp32 = next(r for r in rows if r["backend"] == onnx and r["precision"] == "fp32")
    reference = ort_fp32["logits"].argmax(axis=1)
    for row in rows:
        row["vs_torch_fp32"] = row["images_per_s"] / torch_fp32["images_per_s"]
        row["vs_ort_fp32"] = row["images_per_s"] / ort_fp32["images_per_s"]
        row["agreement"] = float((row.pop("logits").argmax(axis=1) == reference).mean())
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", default="ViT-B-32,builtin")
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--iters", type=int, default=3)
    parser.add_argument("--json", type=Path, default=None, help="Also write the figures here, as JSON.")
    args = parser.parse_args()
    peak = peaks(args.iters)
    print(f"peak GFLOP/s ({PEAK_SIZE}^3 matmul): " + ", ".join(f"{k} {v:.0f}" for k, v in peak.items()), flush=True)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.models.split(","):
            rows += rows_for(name, args.batch, args.iters, peak, Path(tmp))
    print(f"\nbatch {args.batch}, {torch.get_num_threads()} threads")
    print(
        f"{'model':9s} {'backend':12s} {'precision':10s} {'images/s':>9s} {'vs torch':>8s} {'vs ORT':>7s} "
        f"{'agree':>6s} {'peak':>6s}"
    )
    for r in rows:
        print(
            f"{r['model']:9s} {r['backend']:12s} {r['precision']:10s} {r['images_per_s']:9.1f} "
            f"{r['vs_torch_fp32']:7.2f}x {r['vs_ort_fp32']:6.2f}x {r['agreement']:6.3f} "
            f"{100 * r['peak_fraction']:5.1f}%"
        )
    if args.json:
        args.json.write_text(json.dumps({"peak": peak, "batch": args.batch, "rows": rows}, indent=2) + "\n")


if __name__ == "__main__":
    main()
