"""Jobs that span stages, composed here so that no stage imports another.

- `export_run`: a run directory -> model.onnx, verified against the torch model with a serve runner; optionally the
  FP16 copy (export) and the INT8 copy (calib), each verified the same way; TensorRT engines where possible.
- `pipeline_runners`: the runners the main job compares: zero-shot, the fine-tuned torch model and every artifact.
- `check_not_trained_on`: evaluation sets must not hold images of the run the model came from (train meets serve).

Every file is written under a temporary name, checked (onnx.checker, then parity with the torch model on real task
images), and only then renamed into place: a failed export leaves nothing half-written behind.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from calib.calibration import calibration_images, load_calibration_array
from calib.int8 import Int8Options, write_int8_copy
from common.artifact import ArtifactSpec
from common.data import DataError, load_dataset, shared_images
from common.errors import UserError
from common.files import writable_dir
from common.run import RUN_FILE, Run, open_run
from common.suites import EvalSet, TrainData, resolve_eval_sets, resolve_train_data
from common.world import BUILTIN
from export.fp16 import write_fp16_copy
from export.onnx_export import ExportError, check_model, export_onnx, fp32_spec, move_onnx, remove_onnx
from export.tensorrt_build import EngineOptions, build_engines
from serve.backends import open_runner
from serve.parity import Parity, check_parity, parity_images
from serve.runner import Runner
from serve.torch_runner import TorchRunner

Log = Callable[[str], None]
log = logging.getLogger(__name__)


@dataclass
class ExportResult:
    onnx: dict[str, Path] = field(default_factory=dict)  # precision -> file
    parity: dict[str, Parity] = field(default_factory=dict)
    engines: dict[str, Path] = field(default_factory=dict)
    engine_skipped: str | None = None  # why no engine was built


def _calibration_batch(
    run_data: Callable[[], TrainData], data_spec: str, spec: ArtifactSpec, opts: Int8Options
) -> tuple[np.ndarray, str]:
    """The calibration images (`opts.calib_data`, else the run's training split, which `run_data` resolves from
    `data_spec`) and a description of where they came from."""
    if opts.calib_data and opts.calib_data.endswith(".npy"):
        return load_calibration_array(Path(opts.calib_data), spec.classifier), opts.calib_data
    if opts.calib_data:
        data = resolve_eval_sets([opts.calib_data], spec.classes)[0].data
        return calibration_images(data, spec.classifier, opts.n_images, opts.seed, opts.augment), opts.calib_data
    source = f"{data_spec} (training split{', RandAugment' if opts.augment else ''})"
    return calibration_images(run_data().train, spec.classifier, opts.n_images, opts.seed, opts.augment), source


def _verified(write: Callable[[Path], Path], final: Path, reference: Runner, images, log: Log) -> Parity:
    """Writes a file under a temporary name, checks it and moves it to `final` only if it passes; removes it if
    anything fails, the writing included."""
    tmp = final.with_name(final.name + ".tmp.onnx")
    try:
        write(tmp)
        check_model(tmp)
        parity = check_parity(reference, open_runner(tmp), images)
        log(parity.describe())
        if not parity.passed:
            raise ExportError(f"export failed its parity check: {parity.describe()}")
    except BaseException:
        remove_onnx(tmp)
        raise
    move_onnx(tmp, final)
    return parity


def export_run(
    run: Path | Run,
    out_dir: Path | None = None,
    fp16: bool = False,
    engine: EngineOptions | None = None,
    parity_data: str | None = None,
    parity_n: int = 256,
    int8: Int8Options | None = None,
    log: Log = print,
) -> ExportResult:
    """Exports a run's best checkpoint (`run`: its directory or the Run) to model.onnx, and model.fp16.onnx and
    model.int8.onnx when asked, each verified; builds TensorRT engines from them if it can."""
    run = run if isinstance(run, Run) else open_run(run)
    reference = open_runner(run, device="cpu")  # the export traces on the CPU
    assert isinstance(reference, TorchRunner)  # a Run always opens as the torch model
    spec = fp32_spec(run)
    run_data = functools.cache(lambda: resolve_train_data(run.record.data.source))  # read only if needed, once
    images = parity_images(load_dataset(parity_data) if parity_data else run_data().val, spec.classifier, parity_n)
    out_dir = Path(out_dir or run.path)
    fp32 = out_dir / "model.onnx"
    copies: dict[str, Callable[[Path], Path]] = {"fp32": lambda tmp: export_onnx(reference.model, spec, tmp)}
    if fp16:
        copies["fp16"] = lambda tmp: write_fp16_copy(fp32, tmp, spec)
    if int8:  # calibration images are read before anything is written: bad calibration input leaves no files
        calibration, source = _calibration_batch(run_data, run.record.data.source.train, spec, int8)
        copies["int8"] = lambda tmp: write_int8_copy(fp32, tmp, spec, calibration, int8, source)
    writable_dir(out_dir, "output folder")
    result = ExportResult()
    for precision, write in copies.items():
        final = fp32 if precision == "fp32" else out_dir / f"model.{precision}.onnx"
        result.parity[precision] = _verified(write, final, reference, images, log)
        result.onnx[precision] = final
    result.engines, result.engine_skipped = build_engines(result.onnx, engine or EngineOptions(), log)
    return result


def pipeline_runners(
    run: Run, label: str, exported: ExportResult, max_drop: float, max_drop_int8: float
) -> tuple[dict[str, Runner], str, dict[str, float | None]]:
    """Row name -> runner for the zero-shot model, the fine-tuned torch model (the reference, rows named by `label`)
    and every exported artifact; the reference's row name; each artifact's accuracy-drop limit in pp."""
    reference = f"{label} (torch)"
    runners = {"zero-shot (torch)": open_runner(BUILTIN), reference: open_runner(run)}
    limits: dict[str, float | None] = {}
    artifacts = {("onnxruntime", p): f for p, f in exported.onnx.items()}
    artifacts.update({("tensorrt", p): f for p, f in exported.engines.items()})
    for (backend, precision), path in artifacts.items():
        row = f"{label} ({backend} {precision})"
        runners[row] = open_runner(path, backend)
        limits[row] = max_drop_int8 if precision == "int8" else max_drop
    return runners, reference, limits


def check_not_trained_on(spec: ArtifactSpec, sets: list[EvalSet], allow: bool) -> None:
    """Refuses (or with `allow`, warns about) evaluation sets holding images the model was trained on, when the run
    it came from is still there to say what those were."""
    if not spec.source_run or not (Path(spec.source_run) / RUN_FILE).is_file():
        return
    try:
        train = resolve_train_data(open_run(spec.source_run).record.data.source).train
    except UserError:  # the training data moved or the run changed since: nothing left to compare with
        return
    for ev in sets:
        seen = shared_images(train, ev.data)
        if seen:
            message = (
                f"{len(seen)} of the {len(ev.data.samples)} images of {ev.data.name!r} were in the training data "
                f"of {spec.source_run} (first: {seen[0]}); accuracy there does not measure generalization"
            )
            if not allow:
                raise DataError(message + "; --allow-overlap to evaluate anyway")
            log.warning(message)
