"""The export stage: a run directory in; verified ONNX files (and TensorRT engines where possible) out.

Every file is written under a temporary name, checked (onnx.checker, then parity with the torch model on real task
images), and only then renamed into place: a failed export leaves nothing half-written behind.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from calib.calibration import Int8Options, calibration_images, load_calibration_array
from calib.quantize import quantize_int8
from common.checkpoint import BEST_WEIGHTS, load_run_classifier, read_run
from common.data import load_dataset
from common.metadata import ClassifierMeta
from common.runinfo import file_sha256
from common.suites import TrainData, resolve_eval_sets, resolve_train_data
from common.tensorrt_compat import tensorrt_missing_reason
from export.fp16 import convert_to_fp16
from export.onnx_export import OPSET, ExportError, check_model, export_onnx, move_onnx, remove_onnx, write_metadata
from export.tensorrt_build import EngineOptions, build_engine
from export.verify import Parity, compare, parity_images
from serve.runners import OnnxRuntimeRunner, TorchRunner

Log = Callable[[str], None]


@dataclass
class ExportResult:
    onnx: dict[str, Path] = field(default_factory=dict)  # precision -> file
    parity: dict[str, Parity] = field(default_factory=dict)
    engines: dict[str, Path] = field(default_factory=dict)
    engine_skipped: str | None = None  # why no engine was built


def _task_images(checkpoint: Path, meta: ClassifierMeta, parity_data: str | None, n: int) -> torch.Tensor:
    """Real images of the task: `parity_data`, else the run's own validation split."""
    data = load_dataset(parity_data) if parity_data else _run_data(checkpoint).val
    return parity_images(data, meta, n)


def _run_data(checkpoint: Path) -> TrainData:
    """The training and validation data the run was trained on, resolved from its run.json."""
    cfg = read_run(checkpoint)["train"]
    names = Path(cfg["classnames"]) if cfg.get("classnames") else None
    return resolve_train_data(cfg["data"], cfg.get("val_data"), names, cfg["val_fraction"], cfg["seed"])


def _calibration_batch(checkpoint: Path, meta: ClassifierMeta, opts: Int8Options) -> tuple[np.ndarray, str]:
    """The calibration images and a description of where they came from."""
    if opts.calib_data and opts.calib_data.endswith(".npy"):
        return load_calibration_array(Path(opts.calib_data), meta), opts.calib_data
    if opts.calib_data:
        data = resolve_eval_sets([opts.calib_data], meta.classes)[0].data
        return calibration_images(data, meta, opts.size, opts.seed, opts.augment), opts.calib_data
    train = _run_data(checkpoint).train
    source = f"{read_run(checkpoint)['train']['data']} (training split{', RandAugment' if opts.augment else ''})"
    return calibration_images(train, meta, opts.size, opts.seed, opts.augment), source


def _verified(tmp: Path, final: Path, reference: TorchRunner, images: torch.Tensor, log: Log) -> Parity:
    """Checks the file at `tmp` and moves it to `final` only if it passes; removes it otherwise."""
    try:
        check_model(tmp)
        parity = compare(reference, OnnxRuntimeRunner(tmp), images)
        log(parity.describe())
        if not parity.passed:
            raise ExportError(f"export failed its parity check: {parity.describe()}")
    except BaseException:
        remove_onnx(tmp)
        raise
    move_onnx(tmp, final)
    return parity


def export_run(
    checkpoint: Path,
    out_dir: Path | None = None,
    fp16: bool = False,
    engine: EngineOptions | None = None,
    parity_data: str | None = None,
    parity_n: int = 256,
    int8: Int8Options | None = None,
    log: Log = print,
) -> ExportResult:
    """Exports the run's best checkpoint to model.onnx (and model.fp16.onnx / model.int8.onnx), each verified;
    builds TensorRT engines from them if it can."""
    checkpoint = Path(checkpoint)
    model, meta = load_run_classifier(checkpoint)
    out_dir = Path(out_dir or checkpoint)
    out_dir.mkdir(parents=True, exist_ok=True)
    extra: dict[str, Any] = {
        "precision": "fp32",
        "source_checkpoint": str(checkpoint / BEST_WEIGHTS),
        "source_sha256": file_sha256(checkpoint / BEST_WEIGHTS),
        "exporter": f"torch {torch.__version__} dynamo, opset {OPSET}",
    }
    reference = TorchRunner(model, meta, str(checkpoint), device="cpu")
    images = _task_images(checkpoint, meta, parity_data, parity_n)
    # Calibration data is read before anything is written, so bad calibration input leaves no files behind.
    calibration, source = _calibration_batch(checkpoint, meta, int8) if int8 else (None, "")
    result = ExportResult()

    fp32_tmp = export_onnx(model, meta, out_dir / "model.onnx.tmp.onnx", extra)
    result.parity["fp32"] = _verified(fp32_tmp, out_dir / "model.onnx", reference, images, log)
    result.onnx["fp32"] = out_dir / "model.onnx"
    if fp16:
        fp16_tmp = out_dir / "model.fp16.onnx.tmp.onnx"
        kept = convert_to_fp16(out_dir / "model.onnx", fp16_tmp)
        write_metadata(fp16_tmp, meta, {**extra, "precision": "fp16", "fp32_nodes": kept})
        result.parity["fp16"] = _verified(fp16_tmp, out_dir / "model.fp16.onnx", reference, images, log)
        result.onnx["fp16"] = out_dir / "model.fp16.onnx"
    if int8 and calibration is not None:
        int8_tmp = out_dir / "model.int8.onnx.tmp.onnx"
        kept, used = quantize_int8(out_dir / "model.onnx", int8_tmp, calibration, int8.method, int8.keep)
        info = {"method": int8.method, "images": used, "data": source, "kept_fp32": kept}
        write_metadata(int8_tmp, meta, {**extra, "precision": "int8", "calibration": info})
        result.parity["int8"] = _verified(int8_tmp, out_dir / "model.int8.onnx", reference, images, log)
        result.onnx["int8"] = out_dir / "model.int8.onnx"
    build_engines(result, meta, extra, engine or EngineOptions(), log)
    return result


def build_engines(
    result: ExportResult, meta: ClassifierMeta, extra: dict[str, Any], options: EngineOptions, log: Log
) -> None:
    result.engine_skipped = tensorrt_missing_reason()
    if result.engine_skipped:
        log(f"no TensorRT engine: {result.engine_skipped}")
        return
    for precision, onnx_path in result.onnx.items():
        plan = onnx_path.with_suffix(".plan")
        build_engine(onnx_path, plan, options, {**meta.to_dict(), **extra, "precision": precision})
        result.engines[precision] = plan
        log(f"built {plan}")
