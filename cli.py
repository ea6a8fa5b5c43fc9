"""Command line: fine-tune (ProReg and the other recipes), export, evaluate, benchmark, compare. A thin layer: each
command parses its options and calls one function of the stages or of workflows/ (docs/DESIGN.md, "The CLI").

python cli.py train                   # the recommended recipe on the built-in benchmark -> runs/<name>, runs/latest
python cli.py eval --checkpoint runs/latest
python cli.py pipeline                # the README's main job: train, export, evaluate every artifact, one table
"""

from __future__ import annotations

import atexit
import contextlib
import functools
import logging
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer
from rich.markup import escape

import cli_options as opts

# Light imports only: the options' defaults and choices. Stages load inside the commands.
from common.artifact import DEFAULT_TEMPLATES, TRITON_DEFAULT_MAX_BATCH, TRITON_DEFAULT_MODEL
from common.builtin import BUILTIN
from common.graph_scopes import PARTS
from common.run import LATEST, RUNS_ROOT, Run
from serve.metrics import DEFAULT_MAX_DROP, DEFAULT_MAX_DROP_INT8
from train.options import method_options_help
from train.recipes import COMPARED
from workflows.console import console, main_rank, progress_bar, progress_hook, say

if TYPE_CHECKING:
    from train.config import TrainConfig
    from workflows.tracking import Tracking

app = typer.Typer(
    **opts.APP, help="ProReg fine-tuning of OpenCLIP classifiers, ONNX/TensorRT export and OOD evaluation."
)
command = functools.partial(app.command, cls=opts.Command)  # help as cli_options.Command writes it


@app.callback()
def _setup(version: opts.Version = False) -> None:
    # Library warnings (an unreadable image skipped, a class name cut by the text tower) as plain stderr lines.
    logging.basicConfig(level=logging.WARNING, format="warning: %(message)s", force=True)
    from common.distributed import shutdown

    atexit.register(shutdown)  # under torchrun: leave the process group once the command is done


@contextlib.contextmanager
def one_line_errors() -> Iterator[None]:
    """Bad input (a UserError) ends the command with one line on stderr and exit status 2; a bug keeps its
    traceback."""
    from common.files import as_user_error

    try:
        yield
    except Exception as err:
        user_error = as_user_error(err)  # a full disk, also where no stage expected one, is one line too
        if user_error is None:
            raise
        rank = "" if main_rank() else f"(rank {os.environ.get('RANK')}) "  # under torchrun, each rank's own
        console.print(f"[red]error:[/red] {rank}{escape(str(user_error))}", highlight=False, soft_wrap=True)
        raise typer.Exit(2) from None


def _typed(ctx: typer.Context, name: str) -> bool:
    """Whether the user gave option `name` (rather than its default). Compared by name: typer bundles its own copy
    of click, whose ParameterSource is not click's."""
    source = ctx.get_parameter_source(name)
    return source is not None and source.name in ("COMMANDLINE", "ENVIRONMENT")


def do_train(
    cfg: TrainConfig | None,
    out: Path | None,
    resume: bool,
    overrides: dict[str, Any] | None = None,
    tracking: Tracking | None = None,
) -> Run:
    """Trains with progress bars; Ctrl-C saves and exits 130 with the command that resumes."""
    from train.trainer import TrainingInterrupted
    from workflows.training import train_with_progress

    try:
        return train_with_progress(cfg, out, resume, overrides, tracking)
    except TrainingInterrupted:
        raise typer.Exit(130) from None


# ---- train -----------------------------------------------------------------------------------------------------------


@command(
    "train",
    context_settings={"allow_extra_args": True, "ignore_unknown_options": True},  # the methods' own options
    epilog=method_options_help(),  # the methods' own options, from the registry
)
def train_cmd(
    ctx: typer.Context,
    model: opts.Model = BUILTIN,
    pretrained: opts.Pretrained = None,
    data: opts.TrainData = BUILTIN,
    val_data: opts.ValData = None,
    classnames: opts.Classnames = None,
    template: opts.Template = list(DEFAULT_TEMPLATES),
    templates_file: opts.TemplatesFile = None,
    recipe: opts.Recipe = None,
    loss: opts.Loss = "proreg",
    head: opts.Head = None,
    head_init: opts.HeadInit = "text",
    head_lr_scale: opts.HeadLrScale = None,
    lp_fraction: opts.LpFraction = 0.0,
    epochs: opts.Epochs = 10,
    max_steps: opts.MaxSteps = None,
    batch_size: opts.TrainBatch = 64,
    accum_steps: opts.AccumSteps = 1,
    lr: opts.Lr = None,
    augment: opts.Augment = "none",
    teacher_cache: opts.TeacherCache = True,
    seed: opts.Seed = 0,
    workers: opts.Workers = 0,
    device: opts.Device = "auto",
    autocast: opts.Autocast = "auto",
    strict: opts.Strict = False,
    log_every: opts.LogEvery = 10,
    val_per_epoch: opts.ValPerEpoch = 1,
    weight_decay: opts.WeightDecay = 0.01,
    warmup_fraction: opts.WarmupFraction = 0.1,
    warmup_steps: opts.WarmupSteps = None,
    decay: opts.Decay = "cosine",
    out: opts.RunOut = None,
    resume: opts.Resume = None,
    log: opts.Log = [],
) -> None:
    """Fine-tune an OpenCLIP image encoder: a recipe (the recommended one by default) or a loss (ProReg, TeS, kd,
    ce, FLYP) with a head (the fixed text classifier, a trainable one started from it, or a linear one)."""
    from train.options import method_settings, resume_overrides, train_config
    from workflows.tracking import Tracking

    with one_line_errors():
        typed = {k for k in ctx.params if k not in ("resume", "log") and _typed(ctx, k)}
        own = method_settings(ctx.params, typed, ctx.args)
        with Tracking(log, "train") as tracking:
            if resume:  # the run's own config; only what the user typed is passed on, to be honoured or refused
                do_train(None, resume, True, resume_overrides(ctx.params, typed, own), tracking)
            else:
                do_train(train_config(ctx.params, typed, own), out, False, None, tracking)


# ---- eval and bench --------------------------------------------------------------------------------------------------


@command("eval")
def eval_cmd(
    checkpoint: opts.EvalCheckpoint = None,
    zero_shot: opts.ZeroShot = None,
    pretrained: opts.ZeroShotWeights = None,
    onnx: opts.Onnx = None,
    engine: opts.Engine = None,
    triton: opts.Triton = None,
    model: opts.TritonModel = None,
    timeout: opts.TritonTimeout = None,
    data: opts.Data = [],
    reference: opts.Reference = None,
    max_drop: opts.EvalMaxDrop = None,
    runtime: opts.Runtime = None,
    inference_precision: opts.InferencePrecision = None,
    reference_runtime: opts.ReferenceRuntime = None,
    provider: opts.Provider = None,
    batch_size: opts.BatchSize = 64,
    workers: opts.Workers = 0,
    out: opts.ReportOut = Path("report.json"),
    allow_overlap: opts.AllowOverlap = False,
) -> None:
    """Evaluate one model on ID and OOD sets in batches, optionally against a reference with an accuracy-drop gate;
    write report.json, report.md and a chart. Exit 1 when the gate fails."""
    from common.distributed import current
    from serve.report_files import check_report_path, write_report
    from workflows.console import print_gate, print_report
    from workflows.evaluation import check_gate, choose_model, evaluate_model, file_backend, open_runners

    with one_line_errors():
        given = {"--checkpoint": checkpoint, "--zero-shot": zero_shot, "--onnx": onnx, "--engine": engine}
        how = {"runtime": runtime, "inference_precision": inference_precision, "provider": provider, "timeout": timeout}
        choice = choose_model({**given, "--triton": triton}, model, pretrained, how)
        check_gate(max_drop, reference)
        check_report_path(out)  # before any work: never over a file that is not a report of ours
        ref_backend = file_backend("--reference-runtime", reference_runtime, reference)
        current()  # under torchrun: join the group (each rank on its GPU) before any runner is put on a device
        with progress_bar() as bar:
            hook = progress_hook(bar)
            runner, ref_runner = open_runners(choice, reference, ref_backend, data, hook)
        with progress_bar() as bar:
            hook = progress_hook(bar, "eval ", runner.backend)
            report = evaluate_model(runner, ref_runner, data, max_drop, (batch_size, workers), allow_overlap, hook)
        failed = report.failed
        if not main_rank():  # under torchrun every rank holds the whole report; rank 0 writes and prints it
            raise typer.Exit(1 if failed else 0)
        write_report(report, out)
    print_report(report)
    console.print(f"wrote {out}, {out.with_suffix('.md')}, {out.with_suffix('.png')}")
    if report.gate:
        print_gate(report.gate)
    if failed:
        raise typer.Exit(1)


@command("bench")
def bench_cmd(
    folder: opts.ExportFolder = RUNS_ROOT / LATEST,
    reference: opts.BenchReference = None,
    data: opts.Data = [],
    max_drop: opts.MaxDrop = DEFAULT_MAX_DROP,
    max_drop_int8: opts.MaxDropInt8 = DEFAULT_MAX_DROP_INT8,
    batch_size: opts.BatchSize = 64,
    out: opts.BenchOut = Path("report.json"),
    allow_overlap: opts.AllowOverlap = False,
) -> None:
    """Every artifact in an export folder (model*.onnx, .plan) on every runtime here, compared with its model and
    gated; prints which passed and which is fastest on this machine. Exit 1 when an artifact failed its gate."""
    from serve.side_by_side import summary_path, write_reports
    from workflows.console import gate_status, print_comparison, print_recommendation
    from workflows.pipeline import bench
    from workflows.report_page import write_report_page

    with one_line_errors(), progress_bar() as bar:
        batch = (batch_size, out, allow_overlap)
        reports = bench(folder, reference, data, (max_drop, max_drop_int8), batch, progress_hook(bar, "eval "), say)
    if not main_rank():
        raise typer.Exit(gate_status(reports))
    written = write_reports(reports, out)
    page = write_report_page(out.parent, f"bench {folder}")
    print_comparison(reports, f"{folder}: top-1 %, drops against {reference or folder}")
    print_recommendation(reports)
    say(f"wrote {len(written)} reports {out.parent / (out.stem + '-*.json')}, {summary_path(out)} (.md) and {page}")
    raise typer.Exit(gate_status(reports, tell=True))


# ---- export and serve ------------------------------------------------------------------------------------------------


@command("export")
def export_cmd(
    ctx: typer.Context,
    checkpoint: opts.Checkpoint = RUNS_ROOT / LATEST,
    fp16: opts.Fp16 = False,
    int8: opts.Int8 = False,
    calib_data: opts.CalibData = None,
    calib_size: opts.CalibSize = 300,
    calib_method: opts.CalibMethod = "percentile",
    int8_keep: opts.Int8Keep = ",".join(PARTS),
    out: opts.ExportOut = None,
    parity_data: opts.ParityData = None,
    min_batch: opts.MinBatch = 1,
    opt_batch: opts.OptBatch = 32,
    max_batch: opts.MaxBatch = 256,
    workspace_gib: opts.WorkspaceGib = 4.0,
    timing_cache: opts.TimingCache = None,
    version_compatible: opts.VersionCompatible = False,
    triton_repo: opts.TritonRepo = None,
    triton_name: opts.TritonName = TRITON_DEFAULT_MODEL,
    triton_max_batch: opts.TritonMaxBatch = TRITON_DEFAULT_MAX_BATCH,
    triton_gpu: opts.TritonGpu = False,
) -> None:
    """Export image encoder + head as one ONNX graph (dynamic batch), verified against torch; optionally FP16 and
    INT8 copies; TensorRT engines from each when TensorRT and a GPU are present; optionally a Triton Inference Server
    model repository of them."""
    from calib.int8 import Int8Options
    from export.tensorrt_build import EngineOptions
    from export.triton_repo import TritonRepoOptions
    from workflows.console import say_exported
    from workflows.export import check_option_groups, export_with_triton

    with one_line_errors():
        check_option_groups({name for name in ctx.params if _typed(ctx, name)}, int8, triton_repo is not None)
        engine = EngineOptions(min_batch, opt_batch, max_batch, workspace_gib, timing_cache, version_compatible)
        keep = tuple(part for part in int8_keep.split(",") if part)
        int8_options = Int8Options(calib_data, calib_size, calib_method, keep) if int8 else None
        triton = (triton_repo, TritonRepoOptions(triton_name, triton_max_batch, triton_gpu)) if triton_repo else None
        result, models = export_with_triton(checkpoint, out, (fp16, int8_options, engine, parity_data), triton, say)
    say_exported(result, models, triton_repo)


@command("serve")
def serve_cmd(
    artifact: opts.Artifact,
    name: opts.ServeName = TRITON_DEFAULT_MODEL,
    host: opts.Host = "127.0.0.1",
    http_port: opts.HttpPort = 8000,
    grpc_port: opts.GrpcPort = 8001,
    metrics_port: opts.MetricsPort = 8002,
    max_batch_size: opts.ServeMaxBatch = TRITON_DEFAULT_MAX_BATCH,
) -> None:
    """Host an artifact in a Triton Inference Server (PyTriton) with dynamic batching, through the same runner as
    eval, until Ctrl-C (exit 130) or SIGTERM (exit 0). `eval --triton URL --model NAME` measures it."""
    import signal

    from serve.backends import open_runner
    from serve.triton_server import Endpoints, ServeOptions, serve_until_stopped

    with one_line_errors():
        options = ServeOptions(name, host, http_port, grpc_port, metrics_port, max_batch_size)
        runner = open_runner(artifact)

        def ready(at: Endpoints) -> None:
            say(
                f"serving {runner.artifact} ({runner.backend} {runner.precision}) as {name!r}: {at.http} (HTTP), "
                f"{at.grpc} (gRPC), {at.metrics}/metrics; eval --triton {at.http} --model {name}; Ctrl-C stops"
            )

        stopped_by = serve_until_stopped(runner, options, ready)
    say("stopped")
    if stopped_by == signal.SIGINT:
        raise typer.Exit(130)


WISE_ALPHAS = ",".join(f"{a / 10:g}" for a in range(11))


# ---- the main job, WiSE-FT and the comparison of recipes -------------------------------------------------------------


@command("pipeline")
def pipeline_cmd(
    recipe: opts.PipelineRecipe = None,
    loss: opts.PipelineLoss = None,
    epochs: opts.Epochs = 10,
    max_steps: opts.MaxSteps = None,
    seed: opts.Seed = 0,
    max_drop: opts.MaxDrop = DEFAULT_MAX_DROP,
    max_drop_int8: opts.MaxDropInt8 = DEFAULT_MAX_DROP_INT8,
    log: opts.Log = [],
) -> None:
    """The main job on the built-in default: fine-tune with the recommended recipe; export FP32, FP16 and INT8
    ONNX (and TensorRT engines where possible); evaluate zero-shot, torch and every artifact on the ID and OOD sets;
    print one table."""
    from serve.metrics import check_max_drop
    from workflows.console import gate_status, print_comparison, print_recommendation
    from workflows.pipeline import evaluate_pipeline, pipeline_config
    from workflows.tracking import Tracking

    with one_line_errors(), Tracking(log, "pipeline") as tracking:
        check_max_drop(max_drop, "--max-drop")
        check_max_drop(max_drop_int8, "--max-drop-int8")
        label, cfg = pipeline_config(recipe, loss, epochs, max_steps, seed)
        run = do_train(cfg, None, False, None, tracking)
        with progress_bar() as bar:
            reports = evaluate_pipeline(run, label, (max_drop, max_drop_int8), progress_hook(bar, "eval "), say)
        tracking.log_reports(reports)
    print_comparison(reports, "built-in benchmark: top-1 %, drops against the fine-tuned torch model")
    print_recommendation(reports)
    say(f"run directory and reports: {run.path} (open {run.path / 'report.html'})")
    raise typer.Exit(gate_status(reports, tell=True))


@command("wise")
def wise_cmd(
    ctx: typer.Context,
    checkpoint: opts.Checkpoint = RUNS_ROOT / LATEST,
    alpha: opts.Alpha = WISE_ALPHAS,
    base: opts.Base = None,
    data: opts.SweepData = [],
    out: opts.WiseOut = None,
    batch_size: opts.BatchSize = 256,
) -> None:
    """WiSE-FT: interpolate a fine-tuned run with its zero-shot model, theta = (1 - a) theta_0 + a theta_ft, into a
    run directory that export, eval and pipeline take like any run (no inference cost)."""
    from workflows.console import print_sweep
    from workflows.wise import wise_command

    with one_line_errors(), progress_bar() as bar:
        typed_sweep_options = bool(data) or _typed(ctx, "batch_size")
        sweep_options = (batch_size, typed_sweep_options)
        written, sweep = wise_command(checkpoint, alpha, base, data, out, sweep_options, progress_hook(bar, "wise "))
    if sweep is None:
        wise = written.record.wise
        console.print(f"wrote {written.path} (alpha {wise.alpha if wise else alpha:g})")
        return
    print_sweep(sweep)
    say(f"wrote {written.path} (alpha {sweep.chosen:g}: {sweep.rule}), wise-sweep.json/.md/.png, report.html in it")


@command("compare")
def compare_cmd(
    recipes: opts.Recipes = ",".join(COMPARED),
    seeds: opts.Seeds = "0,1,2",
    data: opts.CompareData = BUILTIN,
    eval_data: opts.EvalData = [],
    holdout: opts.Holdout = [],
    alpha: opts.SweptAlphas = "0.25,0.5,0.75",
    wise_alpha: opts.WiseAlpha = 0.5,
    epochs: opts.Epochs = 10,
    max_steps: opts.MaxSteps = None,
    out: opts.CompareOut = RUNS_ROOT / "compare",
    log: opts.Log = [],
) -> None:
    """Train each recipe over seeds on the same data (sweeping each recipe's main knob, chosen on validation),
    evaluate each with its WiSE-FT curve, and write leaderboard.md/.json and the ID-vs-OOD plot. Resumable: a
    finished (recipe, knob, seed) cell is not trained or evaluated again."""
    from train.trainer import TrainingInterrupted
    from workflows.compare import compare_recipes, compare_spec
    from workflows.tracking import Tracking

    with one_line_errors(), Tracking(log, "compare") as tracking, progress_bar() as bar:
        options = {"epochs": epochs, "max_steps": max_steps}
        spec = compare_spec(recipes, seeds, data, eval_data, holdout, (alpha, wise_alpha), options)
        task = bar.add_task("compare", total=1, info="")

        def on_cell(done: int, total: int, name: str) -> None:
            bar.update(task, completed=done, total=total, info=name)
            if not console.is_terminal:
                console.print(f"[{done + 1}/{total}] {name}" if done < total else "leaderboard", markup=False)

        try:
            rows = compare_recipes(spec, out, on_cell, tracking)
        except TrainingInterrupted as stop:
            tracking.status = "interrupted"
            console.print(f"{stop}. Run the same command again to go on where it stopped.", markup=False)
            raise typer.Exit(130) from None
    typer.echo((out / "leaderboard.md").read_text())  # markdown, unwrapped
    say(f"wrote {out / 'leaderboard.md'}, leaderboard.json, leaderboard.png, report.html ({len(rows)} rows)")


# ---- about the project and the machine -------------------------------------------------------------------------------


@command("datasets")
def datasets_cmd() -> None:
    """The dataset suites a --data / --val-data spec can name (SUITE:ROOT, or SUITE/VARIANT:ROOT): each with its
    roles, the layout it is read from (as its authors distribute it), its class count and where to get it."""
    from data.suites.registry import suites
    from workflows.console import print_suites

    print_suites(suites())


@command("pretrain-builtin")
def pretrain_builtin_cmd(
    steps: opts.PretrainSteps = 700,
    seed: opts.Seed = 0,
    out: opts.PretrainOut = None,
    replace_builtin: opts.ReplaceBuiltin = False,
) -> None:
    """Re-create the built-in model: contrastive pretraining from scratch on the procedural world (CPU, minutes)."""
    from train.pretrain_builtin import PretrainConfig, pretrain_builtin, pretrain_out

    with one_line_errors():
        cfg, out = PretrainConfig(steps=steps, seed=seed), pretrain_out(out, replace_builtin)
        with progress_bar() as bar:
            task = bar.add_task("pretrain builtin", total=steps, info="rendering corpus")

            def on_step(step: int, loss: float) -> None:
                bar.update(task, completed=step + 1, info=f"loss {loss:.3f}")

            info = pretrain_builtin(cfg, out, on_step=on_step)
    console.print(f"wrote {out} in {info['seconds']} s", markup=False)


@command("checks", short_help="What this machine can do, proven end to end: the environment and a self-test.")
def checks_cmd(
    quick: opts.Quick = False,
    json_file: opts.ChecksJson = None,
    timeout: opts.Timeout = None,
    keep: opts.Keep = None,
) -> None:
    """What this machine can do, proven end to end in a few minutes: the environment, then a short self-test of
    every path it supports on the built-in model and benchmark (training on the CPU, on GPUs with autocast and under
    torchrun; ONNX export FP32/FP16/INT8; each runtime and execution provider; TensorRT engines run as `eval
    --engine` runs them), each artifact gated against the torch model as `pipeline` gates it. One line per check:
    passed, failed (why), or not available (why, and what would make it available). Exit 0 only when every check
    that could run here passed."""
    from common.errors import check_number
    from common.files import atomic_write_json
    from workflows.check_worker import CheckSession, all_passed, check_outputs, checks_json, work_folder
    from workflows.checks import CHECKS
    from workflows.console import check_starting, print_check, print_facts
    from workflows.machine_facts import machine_facts

    with one_line_errors():
        if timeout is not None:
            check_number("--timeout", timeout, 0, above=True)
        check_outputs(json_file, keep)
        with work_folder(keep) as work, CheckSession(work) as session:
            facts = session.facts(functools.partial(machine_facts, RUNS_ROOT))
            print_facts(facts)
            results = session.run(CHECKS, quick, timeout, check_starting, print_check)
        if json_file is not None:
            atomic_write_json(json_file, checks_json(facts, results))
    passed = all_passed(results)
    console.print("every check that can run here passed" if passed else "[red]a check failed[/red]", highlight=False)
    raise typer.Exit(0 if passed else 1)


if __name__ == "__main__":
    sys.exit(app())
