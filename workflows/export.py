"""`export_run`: a run directory -> model.onnx, verified against the torch model with a serve runner; optionally
the FP16 copy (export) and the INT8 copies (calib), each verified the same way; TensorRT engines where possible.

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
from common.artifact import CPU_INT8, ArtifactSpec, onnx_file
from common.errors import OptionError
from common.files import no_space_named, writable_dir
from common.run import Run, open_run
from data.labeled import load_dataset
from data.specs import TrainData, resolve_eval_sets, resolve_train_data
from export.fp16 import write_fp16_copy
from export.onnx_export import ExportError, check_model, export_onnx, fp32_spec, move_onnx, remove_onnx
from export.tensorrt_build import EngineOptions, build_engines
from export.triton_repo import TritonRepoOptions, check_triton_repo, write_triton_repo
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
        with no_space_named(final):
            write(tmp)
        check_model(tmp)
        parity = check_parity(reference, open_runner(tmp), images)
        log(f"{final.name}: {parity.describe()}")  # two INT8 files (TensorRT's and the CPU's): each named
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
    engines: bool = True,
) -> ExportResult:
    """Exports a run's best checkpoint (`run`: its directory or the Run) to model.onnx, and model.fp16.onnx and
    the INT8 copies when asked (model.int8.onnx for TensorRT, model.int8-cpu.onnx for CPUs), each verified; builds
    TensorRT engines from them if it can (and `engines`). The result's files are keyed by
    common.artifact.ARTIFACT_PRECISIONS."""
    run = run if isinstance(run, Run) else open_run(run)
    reference = open_runner(run, device="cpu")  # the export traces on the CPU
    assert isinstance(reference, TorchRunner)  # a Run always opens as the torch model
    spec = fp32_spec(run)
    run_data = functools.cache(lambda: resolve_train_data(run.record.data.source))  # read only if needed, once
    images = parity_images(load_dataset(parity_data) if parity_data else run_data().val, spec.classifier, parity_n)
    out_dir = Path(out_dir or run.path)
    fp32 = onnx_file(out_dir, "fp32")
    copies: dict[str, Callable[[Path], Path]] = {"fp32": lambda tmp: export_onnx(reference.model, spec, tmp)}
    if fp16:
        copies["fp16"] = lambda tmp: write_fp16_copy(fp32, tmp, spec)
    if int8:  # calibration images are read before anything is written: bad calibration input leaves no files
        calibration, source = _calibration_batch(run_data, run.record.data.source.train, spec, int8)
        copies["int8"] = lambda tmp: write_int8_copy(fp32, tmp, spec, calibration, int8, source)
        copies[CPU_INT8] = lambda tmp: write_int8_copy(fp32, tmp, spec, calibration, int8, source, "u8s8")
    writable_dir(out_dir, "output folder")
    result = ExportResult()
    for precision, write in copies.items():
        final = onnx_file(out_dir, precision)
        result.parity[precision] = _verified(write, final, reference, images, log)
        result.onnx[precision] = final
    for_tensorrt = {name: path for name, path in result.onnx.items() if name != CPU_INT8}  # u8: not for TensorRT
    if engines:
        result.engines, result.engine_skipped = build_engines(for_tensorrt, engine or EngineOptions(), log)
    return result


def export_with_triton(
    checkpoint: Path,
    out: Path | None,
    options: tuple[bool, Int8Options | None, EngineOptions, str | None],
    triton: tuple[Path, TritonRepoOptions] | None,
    log: Log,
) -> tuple[ExportResult, dict[str, Path]]:
    """`export`: export_run of `checkpoint` into `out` with options (fp16, INT8 options, engine options, parity
    data), then, with `triton` (a repository folder and its options), a Triton model repository of every file;
    a repository folder that holds other models is refused before anything is exported. Returns the export and
    the Triton models written (name -> folder)."""
    fp16, int8, engine, parity_data = options
    if triton:
        precisions = ["fp32", *(["fp16"] if fp16 else []), *(["int8", CPU_INT8] if int8 else [])]
        check_triton_repo(triton[0], triton[1], fp32_spec(open_run(checkpoint)), precisions, engine.min_batch)
    result = export_run(checkpoint, out, fp16=fp16, engine=engine, parity_data=parity_data, int8=int8, log=log)
    models = write_triton_repo(triton[0], triton[1], result.onnx, result.engines) if triton else {}
    return result, models


# Options that configure something only another option makes: (options, that option, what they configure).
OPTION_GROUPS = (
    (("calib_data", "calib_size", "calib_method", "int8_keep"), "--int8", "copy"),
    (("triton_name", "triton_max_batch", "triton_gpu"), "--triton-repo", "models"),
)


def check_option_groups(typed: set[str], int8: bool, triton_repo: bool) -> None:
    """OptionError for an option typed (by parameter name) without the option whose output it configures."""
    for group, given, what in OPTION_GROUPS:
        named = ["--" + name.replace("_", "-") for name in group if name in typed]
        if named and not (int8 if given == "--int8" else triton_repo):
            raise OptionError(f"{', '.join(named)}: only with {given}, whose {what} these options configure")
