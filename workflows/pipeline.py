"""The rows the main job and `eval --artifacts` compare: `pipeline_runners` (zero-shot, the fine-tuned torch model
and every artifact on every runtime here) and `exported_runners` (an export folder's files against their model)."""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

from common.artifact import ARTIFACT_PRECISIONS, exported_files
from common.builtin import BUILTIN
from common.errors import OptionError, UserError
from common.run import RUN_FILE, Run
from common.tensorrt_compat import tensorrt_missing_reason
from serve.backends import open_runner
from serve.metrics import drop_limit
from serve.runner import Runner
from workflows.export import ExportResult

Log = Callable[[str], None]
log = logging.getLogger(__name__)


def pipeline_runners(
    run: Run, label: str, exported: ExportResult, max_drop: float, max_drop_int8: float
) -> tuple[dict[str, Runner], str, dict[str, float | None]]:
    """Row name -> runner for the zero-shot model, the fine-tuned torch model (the reference, rows named by `label`)
    and every exported artifact; the reference's row name; each artifact's accuracy-drop limit in pp."""
    reference = f"{label} (torch)"
    runners = {"zero-shot (torch)": open_runner(BUILTIN), reference: open_runner(run)}
    artifacts, limits = artifact_runners(label, exported.onnx, exported.engines, max_drop, max_drop_int8, log.info)
    return {**runners, **artifacts}, reference, limits


def artifact_runners(
    label: str,
    onnx: dict[str, Path],
    engines: dict[str, Path],
    max_drop: float,
    max_drop_int8: float,
    say: Log = print,
) -> tuple[dict[str, Runner], dict[str, float | None]]:
    """A runner per way this machine can serve the exported files (`onnx`, `engines`: keyed by their
    ARTIFACT_PRECISIONS name): each ONNX file in ONNX Runtime, OpenVINO's rows where it is installed (`say` tells
    why there are none), the engines; rows named '<label> (<backend> <name>)'; and each row's accuracy-drop limit
    (INT8 rows: `max_drop_int8`)."""
    artifacts: dict[tuple[str, str, str | None], Path] = {("onnxruntime", p, None): f for p, f in onnx.items()}
    artifacts.update({("tensorrt", p, None): f for p, f in engines.items()})
    artifacts.update(openvino_artifacts(onnx, say))
    runners: dict[str, Runner] = {}
    limits: dict[str, float | None] = {}
    for (backend, name, precision), path in artifacts.items():
        row = f"{label} ({backend} {name})"
        runners[row] = open_runner(path, backend, precision=precision)
        limits[row] = drop_limit(ARTIFACT_PRECISIONS.get(name, ""), max_drop, max_drop_int8)
    return runners, limits


def exported_runners(
    folder: Path, reference: str | None, max_drop: float, max_drop_int8: float, log: Log = print
) -> tuple[dict[str, Runner], str, dict[str, float | None]]:
    """The runners `eval --artifacts` compares: the model the artifacts came from (`reference`, default `folder`
    when it is a run directory) and every exported file in `folder` on every runtime this machine has (engines
    only where TensorRT runs); the reference's row name; each artifact row's accuracy-drop limit in pp."""
    folder = Path(folder)
    if not folder.is_dir():
        raise UserError(f"--artifacts: no such folder: {folder}")
    onnx, engines = exported_files(folder)
    if not onnx and not engines:
        raise UserError(f"{folder} holds no exported model (model.onnx, model.<precision>.onnx, .plan): export first")
    if reference is None and not (folder / RUN_FILE).is_file():
        raise OptionError(f"{folder} is not a run directory: name the model its artifacts came from with --reference")
    source = reference or str(folder)
    reference_runner = open_runner(source)
    why_not = tensorrt_missing_reason() if engines else None
    if why_not:
        log(f"not evaluated: {', '.join(p.name for p in engines.values())} ({why_not})")
        engines = {}
    label = folder.resolve().name
    runners, limits = artifact_runners(label, onnx, engines, max_drop, max_drop_int8, log)
    reference_row = f"reference ({reference_runner.backend} {Path(source).name})"
    return {reference_row: reference_runner, **runners}, reference_row, limits


def openvino_artifacts(onnx: dict[str, Path], say: Log) -> dict[tuple[str, str, str | None], Path]:
    """OpenVINO's rows, where it is installed: the FP32 file at FP32 and, where the CPU has a BF16 path, BF16; the
    INT8 Q/DQ file (OpenVINO's own INT8 kernels read the symmetric form)."""
    from serve.openvino_runner import OpenVinoUnavailable, cpu_supports_bf16, import_openvino

    rows: dict[tuple[str, str, str | None], Path] = {}
    try:
        import_openvino()
    except OpenVinoUnavailable as why:  # not installed
        say(f"not evaluated on OpenVINO: {why}")
        return rows
    if "fp32" in onnx:
        rows["openvino", "fp32", "fp32"] = onnx["fp32"]
        if cpu_supports_bf16():
            rows["openvino", "bf16", "bf16"] = onnx["fp32"]
    if "int8" in onnx:
        rows["openvino", "int8", None] = onnx["int8"]
    return rows
