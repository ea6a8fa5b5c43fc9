"""Jobs that span stages, composed here so that no stage imports another.

- `export_run`: a run directory -> model.onnx, verified against the torch model with a serve runner; optionally the
  FP16 copy (export) and the INT8 copy (calib), each verified the same way; TensorRT engines where possible.
- `pipeline_runners`: the runners the main job compares: zero-shot, the fine-tuned torch model and every artifact;
  `exported_runners`: those `eval --artifacts` compares, an export folder's files against their model.
- `check_not_trained_on`: evaluation sets must not hold images of the run the model came from (train meets serve).
- `wise_sweep`: WiSE-FT interpolations of a run (train) evaluated along alpha (serve); the one validation picks is
  written as a run directory, with the sweep's table and ID-vs-OOD plot beside it.
- `compare_methods`: recipes x knobs x seeds trained (train), each with its WiSE-FT alphas evaluated (serve), the
  scores stored per cell so that a second run trains and measures nothing again; the leaderboard (serve).

Every file is written under a temporary name, checked (onnx.checker, then parity with the torch model on real task
images), and only then renamed into place: a failed export leaves nothing half-written behind.
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np

from calib.calibration import calibration_images, load_calibration_array
from calib.int8 import Int8Options, write_int8_copy
from common.artifact import ARTIFACT_PRECISIONS, CPU_INT8, ArtifactSpec, exported_files, onnx_file
from common.data import DataError, load_dataset, shared_images
from common.errors import OptionError, UserError
from common.files import atomic_write_json, atomic_write_text, writable_dir
from common.progress import ProgressHook
from common.run import RUN_FILE, DataSource, Run, open_run
from common.suites import EvalSet, TrainData, resolve_eval_sets, resolve_train_data
from common.tensorrt_compat import tensorrt_missing_reason
from common.typed_json import from_json
from common.world import BUILTIN
from export.fp16 import write_fp16_copy
from export.onnx_export import ExportError, check_model, export_onnx, fp32_spec, move_onnx, remove_onnx
from export.tensorrt_build import EngineOptions, build_engines
from serve.backends import open_runner
from serve.evaluate import evaluate, hold_decoded
from serve.leaderboard import (
    WISE_RULE,
    ZERO_SHOT,
    AlphaScore,
    Cell,
    SetScore,
    StoredScores,
    wise_choice,
    write_leaderboard,
)
from serve.metrics import drop_limit
from serve.parity import Parity, check_parity, parity_images
from serve.report import markdown_table, percent
from serve.robustness_plot import PlotCurve, PlotPoint, plot_id_vs_ood
from serve.runner import Runner
from serve.torch_runner import TorchRunner
from train.config import TrainConfig
from train.recipes import DEFAULT_WISE_ALPHA, knob_settings, recipe_config, resolve_recipe
from train.wise import Interpolation, base_state, check_new_run_dir, wise_classifier, write_wise_run

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


WISE_SWEEP_FILE = "wise-sweep.json"


@dataclass
class WiseSweep:
    rows: list[dict]  # per alpha: alpha, val_top1, id_top1, ood_top1_mean, top1 per set (fractions)
    chosen: float
    rule: str = WISE_RULE


def wise_sweep(
    run: Run,
    alphas: list[float],
    out: Path,
    sets: list[EvalSet],
    base: Run | None = None,
    batch_size: int = 256,
    progress: ProgressHook | None = None,
) -> tuple[Run, WiseSweep]:
    """Evaluates the interpolation at each alpha on the run's validation data and on `sets`; writes the one with
    the best validation top-1 (WISE_RULE) as the run directory `out`, with wise-sweep.json/.md/.png beside it."""
    check_new_run_dir(run, out)  # before the sweep's minutes of evaluation
    interpolation = Interpolation(run, base_state(run, base))
    preprocess = run.classifier.preprocess
    val = hold_decoded([EvalSet(resolve_train_data(run.record.data.source).val, "id")], preprocess)[0]
    sets = hold_decoded(sets, preprocess)  # decoded once for all alphas
    rows = []
    for i, alpha in enumerate(alphas):
        model = interpolation.classifier(alpha)
        runner = TorchRunner(model, ArtifactSpec(classifier=run.classifier), f"{run.path} (alpha {alpha:g})")
        step = f"alpha {alpha:g} ({i + 1}/{len(alphas)})"
        hook = (lambda n, d, t, step=step: progress(f"{step}: {n}", d, t)) if progress else None
        val_report, _ = evaluate(runner, [val], batch_size, progress=hook)
        report, _ = evaluate(runner, sets, batch_size, progress=hook) if sets else ({"datasets": {}, "summary": {}}, {})
        rows.append(
            {
                "alpha": alpha,
                "val_top1": val_report["summary"]["id_top1"],
                "id_top1": report["summary"].get("id_top1"),
                "ood_top1_mean": report["summary"].get("ood_top1_mean"),
                "top1": {name: d["top1"] for name, d in report["datasets"].items()},
            }
        )
    alpha = wise_choice({r["alpha"]: r["val_top1"] for r in rows})
    sweep = WiseSweep(rows, alpha)
    val_top1 = next(r["val_top1"] for r in rows if r["alpha"] == alpha)
    written = write_wise_run(run, alpha, out, base, interpolation, val_top1=val_top1)
    _write_sweep(sweep, written)
    return written, sweep


def sweep_table(sweep: WiseSweep) -> tuple[list[str], list[list[str]]]:
    """The sweep as a header and one row per alpha (top-1 %; the chosen alpha marked *), for the terminal and
    wise-sweep.md alike."""
    sets = list(sweep.rows[0]["top1"])
    header = ["alpha", "val", *sets, "ID", "OOD mean"]
    rows = [
        [
            f"{r['alpha']:g}" + (" *" if r["alpha"] == sweep.chosen else ""),
            percent(r["val_top1"]),
            *(percent(r["top1"][n]) for n in sets),
            percent(r["id_top1"]),
            percent(r["ood_top1_mean"]),
        ]
        for r in sweep.rows
    ]
    return header, rows


def _write_sweep(sweep: WiseSweep, run: Run) -> None:
    atomic_write_json(
        run.path / WISE_SWEEP_FILE, {"chosen_alpha": sweep.chosen, "rule": sweep.rule, "rows": sweep.rows}
    )
    header, rows = sweep_table(sweep)
    lines = [
        f"# WiSE-FT sweep of {run.record.wise.finetuned if run.record.wise else run.path}",
        "",
        f"Chosen alpha {sweep.chosen:g} (*): {sweep.rule}.",
        "",
        *markdown_table(header, rows),
    ]
    atomic_write_text(run.path / "wise-sweep.md", "\n".join(lines) + "\n")
    if all(r["id_top1"] is not None and r["ood_top1_mean"] is not None for r in sweep.rows):
        curve = PlotCurve(
            "WiSE-FT", [PlotPoint(f"{r['alpha']:g}", r["id_top1"], r["ood_top1_mean"]) for r in sweep.rows]
        )
        plot_id_vs_ood([], [curve], run.path / "wise-sweep.png", f"WiSE-FT along alpha (chosen {sweep.chosen:g})")


COMPARE_SCORES = "compare-scores.json"  # a cell's evaluations, beside its run


@dataclass
class CompareSpec:
    """What `compare_methods` trains and measures."""

    methods: list[str]  # train.recipes names, without +wise (every method gets its WiSE-FT curve)
    seeds: list[int]
    data: str  # training data spec
    sets: list[EvalSet]  # ID and OOD sets the choice is made on
    holdout: list[EvalSet]  # shifts nobody tuned for, reported apart
    alphas: list[float]  # WiSE-FT alphas evaluated per cell, besides 0 (the zero-shot model) and 1 (the cell)
    fixed_alpha: float = DEFAULT_WISE_ALPHA  # the WiSE-FT row at a fixed alpha
    train_options: dict = field(default_factory=dict)  # TrainConfig fields for every cell (epochs, max_steps, ...)
    batch_size: int = 256


@dataclass(frozen=True)
class CompareCell:
    method: str
    knob: str  # e.g. "alpha=2", "" for a method without a knob
    seed: int
    config: TrainConfig

    @property
    def folder(self) -> str:
        return f"{self.method}{'-' + self.knob.replace('=', '').replace(',', '-') if self.knob else ''}-s{self.seed}"


def compare_cells(spec: CompareSpec) -> list[CompareCell]:
    """Every cell with its training config, in training order; every option is checked here, before anything is
    written (a bad seed or epoch count is one line, not a half-made comparison folder)."""
    if not spec.methods or not spec.seeds:
        raise OptionError("a comparison needs at least one method and one seed")
    cells = []
    for name in spec.methods:
        recipe = resolve_recipe(name)
        for value in recipe.knob_values or (None,):
            settings = knob_settings(recipe, value) if value is not None else {}
            label = ",".join(f"{k}={v:g}" for k, v in settings.items())
            for seed in spec.seeds:
                cfg = recipe_config(name, settings, seed=seed, data=spec.data, **spec.train_options)
                cells.append(CompareCell(name, label, seed, cfg))
    return cells


def _trained_cell(out: Path, cell: CompareCell) -> Run:
    """The cell's finished run: trained, resumed when an earlier comparison stopped inside it, or as found."""
    from train.trainer import train  # looked up at each call: tests stand in for it

    if (out / RUN_FILE).is_file():
        run = open_run(out)
        theirs = TrainConfig.from_dict(run.record.train_config, str(out / RUN_FILE)).to_dict()  # typed as ours
        ours = cell.config.to_dict()
        differ = sorted(k for k in ours if k not in ("num_workers", "device") and theirs.get(k) != ours[k])
        if differ:  # a comparison folder holds one comparison: old cells of other settings would mix in silently
            raise UserError(f"{out} was trained with other settings ({', '.join(differ)}): use another --out")
        if run.record.status == "finished":
            return run
        return train(None, out, resume=True)
    return train(cell.config, out)


def _score(runner: Runner, run: Run, spec: CompareSpec) -> AlphaScore:
    """One model on the run's validation split and on every set of the comparison."""
    val_report, _ = evaluate(runner, [_validation_set(run)], spec.batch_size)
    report, _ = evaluate(runner, spec.sets + spec.holdout, spec.batch_size)
    holdout = {ev.data.name for ev in spec.holdout}
    return AlphaScore(
        val_top1=val_report["summary"]["id_top1"],
        sets={
            name: SetScore("holdout" if name in holdout else d["role"], d["top1"], d["worst_group_top1"])
            for name, d in report["datasets"].items()
        },
    )


def _stored(file: Path, names: list[str]) -> dict[float, AlphaScore]:
    """The scores a comparison stored in `file` for the sets `names`, by alpha; {} when there are none (or they are
    of other sets)."""
    if not file.is_file():
        return {}
    try:
        stored = from_json(StoredScores, json.loads(file.read_text()), str(file), UserError)
    except (json.JSONDecodeError, UserError) as err:  # torn by a kill, or foreign: measured again
        log.warning(f"{file} is unreadable and is measured again ({str(err).splitlines()[0]})")
        return {}
    return {float(a): score for a, score in stored.alphas.items()} if stored.sets == names else {}


def _store(file: Path, names: list[str], scores: dict[float, AlphaScore]) -> None:
    atomic_write_json(file, asdict(StoredScores(names, {f"{a:g}": score for a, score in scores.items()})))


def _scored_cell(run: Run, cell: Cell, spec: CompareSpec) -> Cell:
    """Evaluates the run at alpha 1 and each WiSE-FT alpha, reusing what an earlier comparison stored."""
    file = run.path / COMPARE_SCORES
    names = sorted(ev.data.name for ev in spec.sets + spec.holdout)
    scores = _stored(file, names)
    wanted = sorted({*spec.alphas, 1.0} - {0.0})
    if any(alpha not in scores for alpha in wanted):
        interpolation = Interpolation(run, base_state(run, None))
        for alpha in wanted:
            model = interpolation.classifier(alpha)
            scores[alpha] = _score(
                TorchRunner(model, ArtifactSpec(classifier=run.classifier), str(run.path)), run, spec
            )
        _store(file, names, scores)
    cell.alphas = {**{a: scores[a] for a in wanted}, 0.0: _zero_shot_score(run, spec)}  # not an earlier run's extras
    return cell


@functools.cache
def _held_validation(source: DataSource, preprocess_json: str) -> EvalSet:
    data = resolve_train_data(source).val
    return hold_decoded([EvalSet(data, "id")], json.loads(preprocess_json))[0]


def _validation_set(run: Run) -> EvalSet:
    """A run's validation images, decoded once per process for every run with the same data and preprocessing."""
    return _held_validation(run.record.data.source, json.dumps(run.classifier.preprocess, sort_keys=True))


def compare_methods(spec: CompareSpec, out: Path, on_cell: Callable[[int, int, str], None] | None = None) -> list:
    """Trains every (method, knob, seed) cell into out/cells/, evaluates each with its WiSE-FT alphas, and writes
    leaderboard.md/.json/.png into `out`. A finished cell (run and scores) is not trained or evaluated again."""
    todo = compare_cells(spec)
    writable_dir(out, "comparison folder")
    cells: list[Cell] = []
    for i, cell in enumerate(todo):
        if on_cell:
            on_cell(i, len(todo), cell.folder)
        run = _trained_cell(out / "cells" / cell.folder, cell)
        if i == 0:  # every cell's model takes the same preprocessing: decode the sets once
            preprocess = run.classifier.preprocess
            spec = replace(
                spec, sets=hold_decoded(spec.sets, preprocess), holdout=hold_decoded(spec.holdout, preprocess)
            )
        cells.append(_scored_cell(run, Cell(cell.method, cell.knob, cell.seed, str(run.path)), spec))
    if on_cell:
        on_cell(len(todo), len(todo), "leaderboard")
    title = f"{spec.data}: {', '.join(spec.methods)} over seeds {', '.join(map(str, spec.seeds))}"
    return write_leaderboard(cells, cells[0].alphas[0.0], spec.fixed_alpha, out, title)


def _zero_shot_score(run: Run, spec: CompareSpec) -> AlphaScore:
    """The zero-shot model (alpha 0 of any cell) on the run's validation split and the sets, measured once per
    training-data source (a split drawn with the seed differs between seeds) and stored beside the cells."""
    source = run.record.data.source
    key = hashlib.sha256(json.dumps(asdict(source), sort_keys=True).encode()).hexdigest()[:10]
    file = run.path.parent.parent / f"zero-shot-{key}.json"
    names = sorted(ev.data.name for ev in spec.sets + spec.holdout)
    stored = _stored(file, names)
    if 0.0 not in stored:
        model = wise_classifier(run, 0.0, base_state(run, None))
        stored = {0.0: _score(TorchRunner(model, ArtifactSpec(classifier=run.classifier), ZERO_SHOT), run, spec)}
        _store(file, names, stored)
    return stored[0.0]
