"""Command line: fine-tune with ProReg, export, evaluate. A thin layer: it parses options and calls the stages.

python cli.py train                   # ProReg on the built-in benchmark -> runs/<name>, runs/latest
python cli.py eval --checkpoint runs/latest
python cli.py pipeline                # the README's main job: train, then evaluate it and the zero-shot model
"""

from __future__ import annotations

import contextlib
import logging
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table

# Light imports only: the options' defaults and choices. Stages load inside the commands, so --help stays fast.
from common.artifact import DEFAULT_TEMPLATES
from common.graph_scopes import PARTS
from common.progress import ProgressHook
from common.run import LATEST, RUNS_ROOT, Run
from common.world import BUILTIN
from train.methods import LOSSES

if TYPE_CHECKING:
    from train.config import TrainConfig

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    help="ProReg fine-tuning of OpenCLIP classifiers, ONNX/TensorRT export and OOD evaluation.",
)
console = Console(stderr=True)


@app.callback()
def _setup() -> None:
    # Library warnings (an unreadable image skipped, a class name cut by the text tower) as plain stderr lines.
    logging.basicConfig(level=logging.WARNING, format="warning: %(message)s", force=True)


@contextlib.contextmanager
def one_line_errors() -> Iterator[None]:
    """Bad input (a UserError) ends the command with one line on stderr and exit status 2; a bug keeps its
    traceback."""
    from common.errors import UserError

    try:
        yield
    except UserError as err:
        console.print(f"[red]error:[/red] {escape(str(err))}", highlight=False, soft_wrap=True)
        raise typer.Exit(2) from None


def progress_bar() -> Progress:
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[info]}"),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=console,
        transient=True,  # cleared when done or failed, so an error stays the one line on stderr
        disable=not console.is_terminal,  # logs and pipes get the results, not bar redraws and blank lines
    )


def progress_hook(bar: Progress, prefix: str = "", info: str = "") -> ProgressHook:
    """A progress hook for library code: one bar per task name, created on its first report."""
    tasks: dict[str, TaskID] = {}

    def hook(name: str, done: int, total: int) -> None:
        if name not in tasks:
            tasks[name] = bar.add_task(f"{prefix}{name}", total=total, info=info)
        bar.update(tasks[name], completed=done)

    return hook


def do_train(cfg: TrainConfig | None, out: Path | None, resume: bool, overrides: dict[str, Any] | None = None) -> Run:
    """Trains with progress bars; Ctrl-C saves and exits with the command that resumes."""
    from train.trainer import TrainingInterrupted, prepare, run_training

    with progress_bar() as bar:  # bad input fails in prepare, before any bar is drawn
        session = prepare(cfg, out, resume, progress=progress_hook(bar), overrides=overrides)
        task = bar.add_task(f"train {session.cfg.loss.kind}", total=session.total_steps, info="teacher logits")

        def on_step(step: int, terms: dict[str, float]) -> None:
            bar.update(task, completed=step, info=f"loss {terms.get('loss', float('nan')):.3f}")

        try:
            run = run_training(session, on_step=on_step)
        except TrainingInterrupted as stop:
            console.print(f"{stop}; saved. Resume with: python cli.py train --resume {session.out}")
            raise typer.Exit(130) from None
    best = run.record.best
    console.print(f"run directory {run.path}: best validation top-1 {100 * best.val_top1:.1f}% at step {best.step}")
    return run


@app.command("train")
def train_cmd(
    ctx: typer.Context,
    model: str = typer.Option(
        BUILTIN, help="open_clip architecture (e.g. ViT-B-32), hf-hub:ORG/REPO, local-dir:PATH, or builtin."
    ),
    pretrained: str | None = typer.Option(None, help="Pretrained tag (e.g. laion2b_s34b_b79k) or checkpoint file."),
    data: str = typer.Option(
        BUILTIN, help="Training data: builtin, an image folder (a sub-folder per class) or a CSV path,label[,group]."
    ),
    val_data: str | None = typer.Option(None, help="Validation data; default: 10% held out of --data."),
    classnames: Path | None = typer.Option(None, help="Class-names file: 'label[,display name]' per line."),
    template: list[str] = typer.Option(list(DEFAULT_TEMPLATES), help="Prompt template with {} (repeatable)."),
    templates_file: Path | None = typer.Option(None, help="File with one prompt template per line."),
    loss: str = typer.Option("proreg", help=" | ".join(f"{k}: {m.description}" for k, m in LOSSES.items()) + "."),
    weight_form: str = typer.Option("xerm", help="ProReg weight: xerm (paper formula) | official (authors' code)."),
    alpha: float = typer.Option(1.0, help="ProReg: weight of the KL term."),
    gamma: float = typer.Option(1.0, help="ProReg xerm: exponent on the cross-entropies."),
    temperature: float = typer.Option(1.0, help="Distillation temperature T."),
    kd_alpha: float = typer.Option(0.5, help="kd: fixed share of the KL term."),
    epochs: int = typer.Option(10, help="Epochs (the paper's recipe uses 10)."),
    max_steps: int | None = typer.Option(None, help="Stop after this many optimizer steps (overrides --epochs)."),
    batch_size: int = typer.Option(64),
    accum_steps: int = typer.Option(1, help="Gradient accumulation: micro-batches per optimizer step."),
    lr: float | None = typer.Option(None, help="Encoder learning rate; default 1e-5 (paper), 3e-4 for builtin."),
    augment: str = typer.Option("none", help="none | randaugment (RandAugment(2, 9) as in the paper)."),
    teacher_cache: bool = typer.Option(True, help="Without augmentation, compute teacher logits once and reuse them."),
    seed: int = typer.Option(0),
    workers: int = typer.Option(0, help="DataLoader worker processes."),
    device: str = typer.Option("auto", help="auto | cpu | cuda | cuda:N."),
    precision: str = typer.Option("auto", help="auto (bf16 autocast on CUDA, fp32 on CPU) | fp32 | bf16 | fp16."),
    strict: bool = typer.Option(False, help="Fail on an unreadable image instead of skipping and counting it."),
    out: Path | None = typer.Option(None, help="Run directory; default runs/<time>-<loss>-s<seed>."),
    resume: Path | None = typer.Option(
        None,
        help="Continue the interrupted (or diverged) run in this directory, with its config; only --lr, "
        "--workers and --device may change.",
    ),
) -> None:
    """Fine-tune an OpenCLIP image encoder with ProReg (or kd / ce) against the fixed text classifier."""
    with one_line_errors():
        if resume:  # the run's own config; only what the user typed is passed on, to be honoured or refused
            typed = {k: v for k, v in ctx.params.items() if k != "resume" and _typed(ctx, k)}
            do_train(None, resume, resume=True, overrides={CONFIG_NAMES.get(k, k): v for k, v in typed.items()})
        else:
            do_train(_train_config(ctx.params), out, resume=False)


CONFIG_NAMES = {"workers": "num_workers"}  # train options named otherwise in TrainConfig


def _typed(ctx: typer.Context, name: str) -> bool:
    """Whether the user gave option `name` (rather than its default). Compared by name: typer bundles its own copy
    of click, whose ParameterSource is not click's."""
    source = ctx.get_parameter_source(name)
    return source is not None and source.name in ("COMMANDLINE", "ENVIRONMENT")


def _train_config(options: dict[str, Any]) -> TrainConfig:
    """The TrainConfig the train command's options describe (`options`: typer's parsed values, by name)."""
    from train.config import TrainConfig
    from train.losses import LossConfig

    o = options
    loss = LossConfig(o["loss"], o["weight_form"], o["alpha"], o["gamma"], o["temperature"], o["kd_alpha"])
    same_name: tuple[str, ...] = ("model", "pretrained", "data", "val_data", "epochs", "max_steps", "batch_size")
    same_name += ("accum_steps", "lr", "augment", "teacher_cache", "seed", "device", "precision", "strict")
    return TrainConfig(
        **{k: o[k] for k in same_name},
        classnames=str(o["classnames"]) if o["classnames"] else None,
        templates=_read_templates(o["templates_file"]) if o["templates_file"] else list(o["template"]),
        loss=loss,
        num_workers=o["workers"],
    )


def _read_templates(path: Path) -> list[str]:
    from common.artifact import check_templates
    from common.errors import UserError
    from common.files import read_text_file

    if not path.is_file():
        raise UserError(f"no such templates file: {path}")
    text = read_text_file(path, "templates file")
    lines = [t.strip() for t in text.splitlines() if t.strip() and not t.startswith("#")]
    check_templates(lines, f"templates file {path}")
    return lines


def print_table(report: dict) -> None:
    from serve.report import table_header, table_rows

    table = Table(title=f"{report['backend']} ({report['precision']}): {report['artifact']}")
    for head in table_header(report):
        table.add_column(head, justify="right" if head not in ("dataset", "role") else "left")
    for row in table_rows(report):
        table.add_row(*row)
    Console().print(table)


@app.command("eval")
def eval_cmd(
    checkpoint: str | None = typer.Option(None, help="Run directory, or builtin for the zero-shot built-in model."),
    onnx: Path | None = typer.Option(None, help="Exported ONNX model."),
    engine: Path | None = typer.Option(None, help="TensorRT engine (.plan)."),
    data: list[str] = typer.Option(
        [], help="builtin | builtin:SPLIT | [id:|ood:]PATH (repeatable); default: the built-in ID and OOD sets."
    ),
    reference: str | None = typer.Option(
        None, help="Compare with this run directory, builtin, .onnx or .plan (agreement, logit drift, drop)."
    ),
    max_drop: float | None = typer.Option(None, help="With --reference: fail if any set's top-1 drops more (pp)."),
    batch_size: int = typer.Option(64),
    workers: int = typer.Option(0, help="DataLoader worker processes."),
    out: Path = typer.Option(Path("report.json"), help="report.json path; report.md and report.png go beside it."),
    allow_overlap: bool = typer.Option(
        False, help="Evaluate on images the model was trained on (a warning instead of an error)."
    ),
) -> None:
    """Evaluate a model on ID and OOD sets in batches; write report.json, report.md and a chart."""
    from common.errors import OptionError
    from common.suites import resolve_eval_sets
    from serve.backends import open_runner
    from serve.evaluate import evaluate, evaluate_against
    from serve.metrics import check_max_drop
    from serve.report import check_report_path, write_report
    from workflows import check_not_trained_on

    with one_line_errors():
        named = {"torch": checkpoint, "onnxruntime": onnx, "tensorrt": engine}
        chosen = [(backend, str(source)) for backend, source in named.items() if source]
        if len(chosen) != 1:
            raise OptionError("give exactly one of --checkpoint, --onnx, --engine")
        if max_drop is not None and not reference:
            raise OptionError("--max-drop needs --reference: the drop is measured against it")
        if max_drop is not None:
            check_max_drop(max_drop, "--max-drop")
        check_report_path(out)  # before any work: never over a file that is not a report of ours
        ((backend, source),) = chosen
        runner = open_runner(source, backend)
        ref_runner = open_runner(reference) if reference else None
        sets = resolve_eval_sets(data, classes=runner.spec.classes)
        check_not_trained_on(runner.spec, sets, allow=allow_overlap)
        with progress_bar() as bar:
            hook = progress_hook(bar, "eval ", runner.backend)
            if ref_runner:
                report = evaluate_against(runner, ref_runner, sets, max_drop, batch_size, workers, hook)
            else:
                report, _ = evaluate(runner, sets, batch_size, workers, hook)
        write_report(report, out)
    print_table(report)
    console.print(f"wrote {out}, {out.with_suffix('.md')}, {out.with_suffix('.png')}")
    if report.get("gate") and not report["gate"]["passed"]:
        console.print(f"[red]gate failed[/red]: worst drop {report['gate']['worst_drop_pp']:+.2f} pp > {max_drop} pp")
        raise typer.Exit(1)


@app.command("export")
def export_cmd(
    ctx: typer.Context,
    checkpoint: Path = typer.Option(RUNS_ROOT / LATEST, help="Run directory to export (its best checkpoint)."),
    fp16: bool = typer.Option(False, "--fp16", help="Also model.fp16.onnx: FP16 tower; norms, softmax, head FP32."),
    int8: bool = typer.Option(False, "--int8", help="Also model.int8.onnx: symmetric INT8 Q/DQ from calibration."),
    calib_data: str | None = typer.Option(
        None, help="INT8 calibration images: a dataset SPEC or a .npy [N,3,H,W]; default: the run's training data."
    ),
    calib_size: int = typer.Option(300, help="INT8: calibration images (class-stratified sample)."),
    calib_method: str = typer.Option("percentile", help="INT8: percentile | entropy | minmax."),
    int8_keep: str = typer.Option(
        ",".join(PARTS), help=f"INT8: graph parts kept in FP32 ({', '.join(PARTS)}; '' for none)."
    ),
    out: Path | None = typer.Option(None, help="Output directory; default: the run directory."),
    parity_data: str | None = typer.Option(
        None, help="Images for the parity check; default: the run's validation data."
    ),
    min_batch: int = typer.Option(1, help="TensorRT profile: smallest batch."),
    opt_batch: int = typer.Option(32, help="TensorRT profile: batch to tune for."),
    max_batch: int = typer.Option(256, help="TensorRT profile: largest batch."),
    workspace_gib: float = typer.Option(4.0, help="TensorRT builder workspace limit (GiB)."),
    timing_cache: Path | None = typer.Option(None, help="TensorRT timing cache file, reused and updated."),
    version_compatible: bool = typer.Option(False, help="TensorRT engine that later TensorRT versions can run."),
) -> None:
    """Export image encoder + fixed text classifier as one ONNX graph (dynamic batch), verified against torch;
    optionally FP16 and INT8 copies; TensorRT engines from each when TensorRT and a GPU are present."""
    with one_line_errors():
        from calib.int8 import Int8Options
        from common.errors import OptionError
        from export.tensorrt_build import EngineOptions
        from workflows import export_run

        int8_only = ("calib_data", "calib_size", "calib_method", "int8_keep")
        typed = ["--" + name.replace("_", "-") for name in int8_only if _typed(ctx, name)]
        if typed and not int8:
            raise OptionError(f"{', '.join(typed)}: only with --int8, whose copy these options configure")
        engine = EngineOptions(min_batch, opt_batch, max_batch, workspace_gib, timing_cache, version_compatible)
        keep = tuple(part for part in int8_keep.split(",") if part)
        int8_options = Int8Options(calib_data, calib_size, calib_method, keep) if int8 else None
        result = export_run(
            checkpoint, out, fp16=fp16, engine=engine, parity_data=parity_data, int8=int8_options, log=_log
        )
    for precision, path in result.onnx.items():
        console.print(f"wrote {path} ({precision})")
    for precision, path in result.engines.items():
        console.print(f"wrote {path} ({precision}) and {path.name}.json")


def _log(message: str) -> None:
    console.print(message, highlight=False, soft_wrap=True, markup=False)  # paths may hold [brackets]


def _print_comparison(reports: dict) -> None:
    from serve.compare import comparison_rows

    header, rows = comparison_rows(reports)
    table = Table(title="built-in benchmark: top-1 %, drops against the fine-tuned torch model")
    for i, head in enumerate(header):
        table.add_column(head, justify="left" if i == 0 else "right")
    for row in rows:
        table.add_row(*row)
    Console(width=160).print(table)


@app.command("pipeline")
def pipeline_cmd(
    loss: str = typer.Option("proreg", help=" | ".join(LOSSES) + "."),
    epochs: int = typer.Option(10),
    max_steps: int | None = typer.Option(None, help="Stop training after this many steps (a quick smoke run)."),
    seed: int = typer.Option(0),
    max_drop: float = typer.Option(1.0, help="Accuracy-drop gate (pp) for FP32/FP16 artifacts against torch."),
    max_drop_int8: float = typer.Option(1.5, help="Accuracy-drop gate (pp) for INT8 artifacts (see BENCHMARKS.md)."),
) -> None:
    """The main job on the built-in default: fine-tune with ProReg; export FP32, FP16 and INT8 ONNX (and TensorRT
    engines where possible); evaluate zero-shot, torch and every artifact on the ID and OOD sets; print one table."""
    with one_line_errors():
        from calib.int8 import Int8Options
        from common.suites import resolve_eval_sets
        from serve.compare import compare_runners
        from serve.metrics import check_max_drop
        from train.config import TrainConfig
        from train.losses import LossConfig
        from workflows import export_run, pipeline_runners

        check_max_drop(max_drop, "--max-drop")
        check_max_drop(max_drop_int8, "--max-drop-int8")
        cfg = TrainConfig(loss=LossConfig(kind=loss), epochs=epochs, max_steps=max_steps, seed=seed)
        run = do_train(cfg, None, resume=False)
        exported = export_run(run, fp16=True, int8=Int8Options(), log=_log)
        runners, reference, limits = pipeline_runners(run, loss, exported, max_drop, max_drop_int8)
        sets = resolve_eval_sets([], runners[reference].spec.classes)
        with progress_bar() as bar:
            reports = compare_runners(runners, sets, reference, limits, run.path, progress=progress_hook(bar, "eval "))
    _print_comparison(reports)
    console.print(f"run directory and reports: {run.path}")
    failed = [
        f"{name} ({rep['gate']['worst_drop_pp']:+.2f} pp > {rep['gate']['max_drop_pp']} pp)"
        for name, rep in reports.items()
        if rep.get("gate") and not rep["gate"]["passed"]
    ]
    if failed:
        console.print(f"[red]accuracy gate failed[/red]: {', '.join(failed)}")
        raise typer.Exit(1)


@app.command("pretrain-builtin")
def pretrain_builtin_cmd(
    steps: int = typer.Option(700, help="Optimizer steps (batch 256); 700 makes zero-shot useful but beatable."),
    seed: int = typer.Option(0),
    out: Path = typer.Option(None, help="Output folder; default: the committed common/world/assets/builtin."),
) -> None:
    """Re-create the built-in model: contrastive pretraining from scratch on the procedural world (CPU, minutes)."""
    from common.world.model import BUILTIN_DIR
    from train.pretrain_builtin import PretrainConfig, pretrain_builtin

    with one_line_errors():
        cfg = PretrainConfig(steps=steps, seed=seed)
        with progress_bar() as bar:
            task = bar.add_task("pretrain builtin", total=steps, info="rendering corpus")
            info = pretrain_builtin(
                cfg,
                out or BUILTIN_DIR,
                on_step=lambda s, loss: bar.update(task, completed=s + 1, info=f"loss {loss:.3f}"),
            )
    console.print(f"wrote {out or BUILTIN_DIR} in {info['seconds']} s")


if __name__ == "__main__":
    sys.exit(app())
