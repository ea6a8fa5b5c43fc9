"""The rows the main job and `eval --artifacts` compare: `pipeline_runners` (zero-shot, the fine-tuned torch model
and every artifact on every runtime here) and `exported_runners` (an export folder's files against their model)."""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

from common.artifact import ExportedFiles, exported_files
from common.builtin import BUILTIN
from common.errors import OptionError, UserError
from common.run import RUN_FILE, Run
from serve.backends import artifact_rows, open_row, open_runner
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
    files = ExportedFiles(exported.onnx, exported.engines)
    artifacts, limits = artifact_runners(label, files, max_drop, max_drop_int8, log.info)
    return {**runners, **artifacts}, reference, limits


def artifact_runners(
    label: str, files: ExportedFiles, max_drop: float, max_drop_int8: float, say: Log = print
) -> tuple[dict[str, Runner], dict[str, float | None]]:
    """A runner per way this machine can run the exported `files` (serve.backends.artifact_rows; `say` tells which
    backend cannot run here and why), rows named '<label> (<backend> <row>)'; and each row's accuracy-drop limit
    (INT8 rows: `max_drop_int8`)."""
    runners: dict[str, Runner] = {}
    limits: dict[str, float | None] = {}
    for backend, row in artifact_rows(files, say):
        name = f"{label} ({backend} {row.name})"
        runners[name] = open_row(backend, row)
        limits[name] = drop_limit(runners[name].spec.precision, max_drop, max_drop_int8)
    return runners, limits


def exported_runners(
    folder: Path, reference: str | None, max_drop: float, max_drop_int8: float, log: Log = print
) -> tuple[dict[str, Runner], str, dict[str, float | None]]:
    """The runners `eval --artifacts` compares: the model the artifacts came from (`reference`, default `folder`
    when it is a run directory) and every exported file in `folder` on every runtime this machine has; the
    reference's row name; each artifact row's accuracy-drop limit in pp."""
    folder = Path(folder)
    if not folder.is_dir():
        raise UserError(f"--artifacts: no such folder: {folder}")
    files = exported_files(folder)
    if not files:
        raise UserError(f"{folder} holds no exported model (model.onnx, model.<precision>.onnx, .plan): export first")
    if reference is None and not (folder / RUN_FILE).is_file():
        raise OptionError(f"{folder} is not a run directory: name the model its artifacts came from with --reference")
    source = reference or str(folder)
    reference_runner = open_runner(source)
    runners, limits = artifact_runners(folder.resolve().name, files, max_drop, max_drop_int8, log)
    reference_row = f"reference ({reference_runner.backend} {Path(source).name})"
    return {reference_row: reference_runner, **runners}, reference_row, limits
