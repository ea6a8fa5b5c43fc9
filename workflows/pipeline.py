"""The main job after training (`evaluate_pipeline`: export, then zero-shot, the fine-tuned torch model and every
artifact on every runtime here, gated) and `bench` (an export folder's files against their model, gated): the rows
both compare, each a serve runner, and their reports."""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

from common.artifact import ExportedFiles, exported_files
from common.builtin import BUILTIN
from common.errors import OptionError, UserError
from common.progress import ProgressHook
from common.run import RUN_FILE, Run
from data.specs import resolve_eval_sets
from serve.backends import artifact_rows, open_row, open_runner
from serve.metrics import check_max_drop, drop_limit
from serve.report import Report
from serve.runner import Runner
from serve.side_by_side import evaluate_side_by_side, write_reports
from train.config import TrainConfig
from train.losses import LossConfig
from train.recipes import RECOMMENDED, recipe_config
from workflows.export import ExportResult, export_run
from workflows.overlap import check_not_trained_on
from workflows.report_page import write_report_page

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
    """The runners `bench` compares: the model the artifacts came from (`reference`, default `folder`
    when it is a run directory) and every exported file in `folder` on every runtime this machine has; the
    reference's row name; each artifact row's accuracy-drop limit in pp."""
    folder = Path(folder)
    if not folder.is_dir():
        raise UserError(f"no such export folder: {folder}")
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


def pipeline_config(
    recipe: str | None, loss: str | None, epochs: int, max_steps: int | None, seed: int
) -> tuple[str, TrainConfig]:
    """(the table's label, the TrainConfig) of the main job: a recipe (default the recommended one) or one loss."""
    if recipe and loss:
        raise OptionError("give --recipe or --loss, not both")
    if loss:
        return loss, TrainConfig(loss=LossConfig(kind=loss), epochs=epochs, max_steps=max_steps, seed=seed)
    label = recipe or RECOMMENDED
    return label, recipe_config(label, epochs=epochs, max_steps=max_steps, seed=seed)


def evaluate_pipeline(
    run: Run, label: str, gates: tuple[float, float], progress: ProgressHook, say: Log
) -> dict[str, Report]:
    """Exports `run` (FP32, FP16, INT8; engines where TensorRT runs), evaluates every row on the built-in ID and OOD
    sets, each artifact gated against the torch model (gates: FP32/FP16, INT8 in pp), and writes the reports."""
    from calib.int8 import Int8Options

    exported = export_run(run, fp16=True, int8=Int8Options(), log=say)
    runners, reference, limits = pipeline_runners(run, label, exported, *gates)
    sets = resolve_eval_sets([], runners[reference].spec.classes)
    reports = evaluate_side_by_side(runners, sets, reference, limits, progress=progress)
    write_reports(reports, run.path / "report.json")
    write_report_page(run.path)
    return reports


def bench(
    folder: Path,
    reference: str | None,
    data: list[str],
    gates: tuple[float, float],
    batch: tuple[int, Path, bool],
    progress: ProgressHook,
    say: Log,
) -> dict[str, Report]:
    """Every artifact in `folder` on every runtime here against the model it came from (`reference`, default
    `folder`'s run), gated (gates: FP32/FP16, INT8 in pp), on the sets `data` names; batch: (batch size, the
    report path whose <stem>-<row>.json paths are checked, allow_overlap)."""
    from common.distributed import current
    from serve.report_files import check_report_path
    from serve.side_by_side import report_paths

    batch_size, out, allow_overlap = batch
    for limit, option in zip(gates, ("--max-drop", "--max-drop-int8"), strict=True):
        check_max_drop(limit, option)
    check_report_path(out)
    current()  # under torchrun: join the group (each rank on its GPU) before any runner is put on a device
    runners, reference_row, limits = exported_runners(folder, reference, *gates, log=say)
    for path in report_paths(list(runners), out).values():
        check_report_path(path)
    sets = resolve_eval_sets(data, classes=runners[reference_row].spec.classes)
    check_not_trained_on(runners[reference_row].spec, sets, allow=allow_overlap)
    return evaluate_side_by_side(runners, sets, reference_row, limits, batch_size, progress)
