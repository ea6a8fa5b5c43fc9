"""Inference speed, measured side by side in one run on this machine.

    python benchmarks/speed.py [--model ViT-B-32] [--batch 64] [--iters 5] [--threads N]

1. Model-only throughput of the same classifier in torch eager and in ONNX Runtime (FP32, and FP16 for reference),
   random weights (speed does not depend on them), batch 64, after warm-up; ratio ORT / torch.
2. End-to-end `eval` throughput (PNG decode + preprocessing + model) against model-only throughput in the same
   evaluation, ONNX Runtime FP32, on the built-in benchmark's ID test images: for the same ViT (images resized to
   its 224 px) and for the tiny built-in model (64 px), with DataLoader workers 0 and 2.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import open_clip
import torch

from common.artifact import DEFAULT_TEMPLATES, ArtifactSpec, ClassifierMeta
from common.classifier import ClipClassifier
from common.models import build_visual
from common.suites import builtin_classnames, resolve_eval_sets
from export.fp16 import write_fp16_copy
from export.onnx_export import export_onnx
from serve.evaluate import evaluate
from serve.onnxruntime_runner import OnnxRuntimeRunner
from serve.torch_runner import TorchRunner


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


def images_per_second(runner, batch: torch.Tensor, iters: int) -> float:
    runner.infer(batch)  # warm-up (graph optimization, allocator)
    seconds = []
    for _ in range(iters):
        start = time.perf_counter()
        runner.infer(batch)
        seconds.append(time.perf_counter() - start)
    return len(batch) / statistics.median(seconds)


def model_only(args: argparse.Namespace, tmp: Path) -> Path:
    model, spec = random_classifier(args.model, list(builtin_classnames()))
    onnx_path = export_onnx(model, spec, tmp / "model.onnx")
    write_fp16_copy(onnx_path, tmp / "model.fp16.onnx", spec)
    size = spec.classifier.image_size
    batch = torch.randn(args.batch, 3, size, size)
    eager = images_per_second(TorchRunner(model, spec, args.model, "cpu"), batch, args.iters)
    ort32 = images_per_second(OnnxRuntimeRunner(onnx_path), batch, args.iters)
    ort16 = images_per_second(OnnxRuntimeRunner(tmp / "model.fp16.onnx"), batch, args.iters)
    print(f"## model only: {args.model} at {size} px, batch {args.batch}, {torch.get_num_threads()} threads")
    print(f"torch eager fp32      {eager:8.1f} images/s")
    print(f"onnxruntime fp32      {ort32:8.1f} images/s   {ort32 / eager:.2f}x torch")
    print(f"onnxruntime fp16      {ort16:8.1f} images/s   {ort16 / eager:.2f}x torch (CPU has no fast FP16 path)")
    return onnx_path


def end_to_end(onnx_path: Path, label: str, n_images: int, batch: int) -> None:
    runner = OnnxRuntimeRunner(onnx_path)
    sets = resolve_eval_sets(["builtin:id_test"], runner.spec.classes)
    sets[0].data.samples = sets[0].data.samples[:n_images]
    print(f"## end to end: {label}, ONNX Runtime fp32, {n_images} PNG images, batch {batch}")
    for workers in (0, 2):
        report, _ = evaluate(runner, sets, batch_size=batch, num_workers=workers)
        t = report["throughput"]
        ratio = t["images_per_s"] / t["model_images_per_s"]
        print(
            f"workers {workers}: end to end {t['images_per_s']:7.1f} images/s, "
            f"model only {t['model_images_per_s']:7.1f} images/s, ratio {ratio:.2f}"
        )


def builtin_onnx(tmp: Path) -> Path:
    zero_shot = TorchRunner.builtin_zero_shot("cpu")
    return export_onnx(zero_shot.model, zero_shot.spec, tmp / "builtin.onnx")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="ViT-B-32")
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--iters", type=int, default=5)
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as tmp:
        vit = model_only(args, Path(tmp))
        end_to_end(vit, f"{args.model} at 224 px", 256, args.batch)
        end_to_end(builtin_onnx(Path(tmp)), "built-in model at 64 px", 1200, args.batch)


if __name__ == "__main__":
    main()
