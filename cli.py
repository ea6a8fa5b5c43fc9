"""Command line: fine-tune (ProReg and the other recipes), export, evaluate, compare. A thin layer: it parses options
and calls the stages.

python cli.py train                   # the recommended recipe on the built-in benchmark -> runs/<name>, runs/latest
python cli.py eval --checkpoint runs/latest
python cli.py pipeline                # the README's main job: train, then evaluate it and the zero-shot model
"""

from __future__ import annotations

import atexit
import contextlib
import dataclasses
import functools
import logging
import os
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
from common.artifact import CPU_INT8, DEFAULT_TEMPLATES, TRITON_DEFAULT_MAX_BATCH, TRITON_DEFAULT_MODEL
from common.builtin import BUILTIN
from common.graph_scopes import PARTS
from common.progress import ProgressHook
from common.run import LATEST, RUNS_ROOT, Run
from serve.metrics import DEFAULT_MAX_DROP, DEFAULT_MAX_DROP_INT8
from train.methods import METHODS
from train.recipes import COMPARED, RECIPES, RECOMMENDED

if TYPE_CHECKING:
    from export.triton_repo import TritonRepoOptions
    from serve.runner import Runner
    from train.config import TrainConfig
    from workflows.compare import CompareSpec
    from workflows.wise import WiseSweep

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
    from common.distributed import shutdown

    atexit.register(shutdown)  # under torchrun: leave the process group once the command is done


def _main_rank() -> bool:
    """Whether this process prints results and writes files: always, but under torchrun only rank 0."""
    from common.distributed import from_environment

    return from_environment().is_main


@contextlib.contextmanager
def one_line_errors() -> Iterator[None]:
    """Bad input (a UserError) ends the command with one line on stderr and exit status 2; a bug keeps its
    traceback."""
    from common.errors import UserError

    try:
        yield
    except UserError as err:
        rank = "" if _main_rank() else f"(rank {os.environ.get('RANK')}) "  # under torchrun, each rank's own
        console.print(f"[red]error:[/red] {rank}{escape(str(err))}", highlight=False, soft_wrap=True)
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
        disable=not console.is_terminal or not _main_rank(),  # logs and pipes get results, not bar redraws
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
            if _main_rank():
                console.print(f"{stop}; saved. Resume with: python cli.py train --resume {session.out}")
            raise typer.Exit(130) from None
    if not _main_rank():
        return run
    best = run.record.best
    console.print(f"run directory {run.path}: best validation top-1 {100 * best.val_top1:.1f}% at step {best.step}")
    wise = run.record.wise
    if wise is not None and wise.val_top1 is not None:
        console.print(f"WiSE-FT at alpha {wise.alpha:g} (the run's model): validation top-1 {100 * wise.val_top1:.1f}%")
    return run


def method_options_help() -> str:
    """The methods' own options for train's --help, read from the registry (train/methods/)."""
    lines = ["Method options, after --loss NAME (or a recipe of that method):"]
    for name, method in METHODS.items():
        fields = method.option_fields().values()
        flags = [
            f"--{f.name.replace('_', '-')} (default {f.default}): {f.metadata['help'].rstrip('.')}" for f in fields
        ]
        lines.append(f"{name}: " + ("; ".join(flags) if flags else "none"))
    return "\n\n".join(lines)


@app.command(
    "train",
    context_settings={"allow_extra_args": True, "ignore_unknown_options": True},  # the methods' own options
    epilog=method_options_help(),
)
def train_cmd(
    ctx: typer.Context,
    model: str = typer.Option(
        BUILTIN, help="open_clip architecture (e.g. ViT-B-32), hf-hub:ORG/REPO, local-dir:PATH, or builtin."
    ),
    pretrained: str | None = typer.Option(None, help="Pretrained tag (e.g. laion2b_s34b_b79k) or checkpoint file."),
    data: str = typer.Option(
        BUILTIN,
        help="Training data: builtin, an image folder (a sub-folder per class), a CSV path,label[,group], or a suite"
        " SUITE:ROOT / SUITE/VARIANT:ROOT (cli.py datasets lists them).",
    ),
    val_data: str | None = typer.Option(None, help="Validation data; default: 10% held out of --data."),
    classnames: Path | None = typer.Option(None, help="Class-names file: 'label[,display name]' per line."),
    template: list[str] = typer.Option(list(DEFAULT_TEMPLATES), help="Prompt template with {} (repeatable)."),
    templates_file: Path | None = typer.Option(None, help="File with one prompt template per line."),
    recipe: str | None = typer.Option(
        None,
        help=f"A named recipe ({', '.join(RECIPES)}; NAME+wise[ALPHA] adds WiSE-FT). Default: {RECOMMENDED}, the "
        "recommended one (README), unless a method option (--loss, --head, ...) is given.",
    ),
    loss: str = typer.Option("proreg", help=" | ".join(f"{k}: {m.description}" for k, m in METHODS.items()) + "."),
    head: str | None = typer.Option(
        None,
        help="text (fixed text classifier) | trainable (initialised from it, renormalized, learned scale) | "
        "linear (free f A^T + b, TeS's head); default: text, linear for tes.",
    ),
    head_init: str = typer.Option("text", help="Linear head's start: text (zero-shot) | random."),
    head_lr_scale: float | None = typer.Option(
        None, help="Trainable head's learning rate over the encoder's; default: the head at 1e-3 (x100 at 1e-5)."
    ),
    lp_fraction: float = typer.Option(
        0.0, help="LP-FT: share of the steps that fit the head with the encoder frozen before fine-tuning all."
    ),
    epochs: int = typer.Option(10, help="Epochs (the paper's recipe uses 10)."),
    max_steps: int | None = typer.Option(None, help="Stop after this many optimizer steps (overrides --epochs)."),
    batch_size: int = typer.Option(
        64, help="Images per step; per process under torchrun (global batch = batch x processes x accumulation)."
    ),
    accum_steps: int = typer.Option(1, help="Gradient accumulation: micro-batches per optimizer step."),
    lr: float | None = typer.Option(None, help="Encoder learning rate; default 1e-5 (paper), 3e-4 for builtin."),
    augment: str = typer.Option("none", help="none | randaugment (RandAugment(2, 9) as in the paper)."),
    teacher_cache: bool = typer.Option(True, help="Without augmentation, compute teacher logits once and reuse them."),
    seed: int = typer.Option(0),
    workers: int = typer.Option(0, help="DataLoader worker processes."),
    device: str = typer.Option(
        "auto", help="auto | cpu | cuda | cuda:N (under torchrun: auto or cuda, each process on its LOCAL_RANK's GPU)."
    ),
    precision: str = typer.Option(
        "auto",
        help="auto (bf16 autocast on Ampere+ GPUs, fp16 on older ones, fp32 on CPU) | fp32 | bf16 (autocast, also on"
        " CPU) | fp16 (CUDA).",
    ),
    strict: bool = typer.Option(False, help="Fail on an unreadable image instead of skipping and counting it."),
    log_every: int = typer.Option(10, help="Write the loss terms to metrics.jsonl every N steps (and at step 1)."),
    val_per_epoch: int = typer.Option(1, help="Validations per epoch (ProReg's code: 2); each can be the best."),
    weight_decay: float = typer.Option(0.01, help="AdamW weight decay."),
    warmup_fraction: float = typer.Option(0.1, help="Share of the optimizer steps spent warming the rate up."),
    warmup_steps: int | None = typer.Option(None, help="Warmup in optimizer steps (WiSE-FT: 500), instead."),
    decay: str = typer.Option("cosine", help="The rate's decay after warmup: cosine | linear (ProReg's code)."),
    out: Path | None = typer.Option(None, help="Run directory; default runs/<time>-<loss>-s<seed>."),
    resume: Path | None = typer.Option(
        None,
        help="Continue the interrupted (or diverged) run in this directory, with its config; only --lr, "
        "--workers and --device may change.",
    ),
) -> None:
    """Fine-tune an OpenCLIP image encoder: a recipe (the recommended one by default) or a loss (ProReg, TeS, kd,
    ce) with a head (the fixed text classifier, a trainable one started from it, or a linear one)."""
    with one_line_errors():
        typed = {k for k in ctx.params if k != "resume" and _typed(ctx, k)}
        settings = _method_settings(ctx)
        if resume:  # the run's own config; only what the user typed is passed on, to be honoured or refused
            overrides = {CONFIG_NAMES.get(k, k): ctx.params[k] for k in typed} | settings
            do_train(None, resume, resume=True, overrides=overrides)
        else:
            do_train(_train_config(ctx.params, typed, settings), out, resume=False)


def _method_settings(ctx: typer.Context) -> dict[str, Any]:
    """The method options typed after the train command's own (`--kd-alpha 0.7`), checked against the method they
    set: --loss's, else the recipe's (--recipe, else the recommended one)."""
    from train.recipes import resolve_recipe

    if not ctx.args:
        return {}
    if _typed(ctx, "loss") or ctx.params["resume"]:
        kind = ctx.params["loss"]
    else:
        kind = resolve_recipe(ctx.params["recipe"] or RECOMMENDED).loss.get("kind", "proreg")
    return METHODS[kind].settings_from_flags(ctx.args)


CONFIG_NAMES = {"workers": "num_workers"}  # train options named otherwise in TrainConfig


def _typed(ctx: typer.Context, name: str) -> bool:
    """Whether the user gave option `name` (rather than its default). Compared by name: typer bundles its own copy
    of click, whose ParameterSource is not click's."""
    source = ctx.get_parameter_source(name)
    return source is not None and source.name in ("COMMANDLINE", "ENVIRONMENT")


METHOD_OPTIONS = ("loss", "head", "head_init", "head_lr_scale", "lp_fraction")  # with the methods' own: a method


def _train_config(options: dict[str, Any], typed: set[str], own: dict[str, Any]) -> TrainConfig:
    """The TrainConfig the train command's options describe (`options`: typer's parsed values, by name; `typed`:
    the names the user gave; `own`: the method's own options typed). A recipe (--recipe, else the recommended
    one when no method option was typed) sets the method; method options typed beside it change its settings."""
    from train.config import TrainConfig
    from train.losses import LossConfig
    from train.recipes import RECOMMENDED, recipe_config, resolve_recipe

    o = options
    same_name: tuple[str, ...] = ("model", "pretrained", "data", "val_data", "epochs", "max_steps", "batch_size")
    same_name += ("accum_steps", "lr", "augment", "teacher_cache", "seed", "device", "precision", "strict")
    same_name += ("log_every", "val_per_epoch", "weight_decay", "warmup_fraction", "warmup_steps", "decay")
    shared = {
        **{k: o[k] for k in same_name},
        "classnames": str(o["classnames"]) if o["classnames"] else None,
        "templates": _templates(o, typed),
        "num_workers": o["workers"],
    }
    recipe = o["recipe"] or (None if typed & set(METHOD_OPTIONS) or own else RECOMMENDED)
    if recipe:
        loss = {**({"kind": o["loss"]} if "loss" in typed else {}), **own}
        method = {k: o[k] for k in ("head", "head_init", "head_lr_scale", "lp_fraction") if k in typed}
        # A recipe's own settings (ProReg's batch 32 x 8, RandAugment, lr 1e-5) give way only to options typed.
        recipe_fields = set(resolve_recipe(recipe).train)
        settings = {k: v for k, v in shared.items() if k in typed or k not in recipe_fields}
        cfg = recipe_config(recipe, loss, **settings, **method)
        # Options typed beside a recipe make another method: run.json and the folder name say so by naming none.
        return dataclasses.replace(cfg, recipe=None) if loss or method else cfg
    loss_config = LossConfig(o["loss"], own)
    method = {k: o[k] for k in ("head", "head_init", "head_lr_scale", "lp_fraction")}
    return TrainConfig(**shared, **method, loss=loss_config)


def _templates(options: dict[str, Any], typed: set[str]) -> list[str]:
    """The prompt templates: --templates-file, else --template as typed, else [] (TrainConfig resolves it: the data
    suite's own, such as ImageNet's 80, else the default)."""
    if options["templates_file"]:
        return _read_templates(options["templates_file"])
    return list(options["template"]) if "template" in typed else []


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


def _file_backend(option: str, name: str | None, source: str | None, what: str) -> str | None:
    """The backend `option` (--runtime, --reference-runtime) names for the model file `source` (given with `what`),
    one of those that can run a file of its kind; None: not named."""
    from common.errors import OptionError, check_choice
    from serve.backends import backends_running

    if name is None:
        return None
    suffix = Path(source).suffix.lower() if source else ""
    offered = backends_running(suffix) if suffix else []
    if len(offered) < 2:
        raise OptionError(f"{option} chooses how a model file runs, where several backends can: only with {what}")
    check_choice(option, name, offered)
    return name


@app.command("eval")
def eval_cmd(
    checkpoint: str | None = typer.Option(
        None,
        help="Run directory, or builtin: the zero-shot built-in model, made for the classes of --data (a suite's own"
        " classes and templates).",
    ),
    zero_shot: str | None = typer.Option(
        None,
        "--zero-shot",
        help="A pretrained open_clip model used zero-shot over the classes of --data (a suite's own classes and"
        " templates): ViT-B-32, hf-hub:ORG/REPO, local-dir:PATH or builtin; its weights with --pretrained.",
    ),
    pretrained: str | None = typer.Option(
        None, help="With --zero-shot: the model's pretrained weights (a tag such as openai, or a file)."
    ),
    onnx: Path | None = typer.Option(None, help="Exported ONNX model."),
    engine: Path | None = typer.Option(None, help="TensorRT engine (.plan)."),
    triton: str | None = typer.Option(
        None, help="A Triton Inference Server: http://HOST:PORT, grpc://HOST:PORT or HOST:PORT (HTTP)."
    ),
    model: str | None = typer.Option(
        None, help=f"With --triton: the model's name there (default {TRITON_DEFAULT_MODEL})."
    ),
    artifacts: Path | None = typer.Option(
        None,
        help="An export folder (a run directory after export): every model*.onnx and .plan in it, on every runtime"
        " here (ONNX Runtime, OpenVINO FP32/BF16/INT8, TensorRT), compared with --reference (default: the folder's"
        " run) and gated; prints which passed and is fastest on this machine. Reports: <out>-<row>.json.",
    ),
    data: list[str] = typer.Option(
        [],
        help="builtin | builtin:SPLIT | \\[id:|ood:]PATH | SUITE:ROOT | SUITE/VARIANT:ROOT (repeatable; cli.py datasets"
        " lists the suites); default: the built-in ID and OOD sets.",
    ),
    reference: str | None = typer.Option(
        None,
        help="Compare with this run directory, builtin, .onnx, .plan or Triton model (http://HOST:PORT/v2/models/NAME)"
        " (agreement, logit drift, drop).",
    ),
    max_drop: float | None = typer.Option(
        None,
        help="With --reference: fail if any set's top-1 drops more (pp). With --artifacts: default"
        f" {DEFAULT_MAX_DROP}.",
    ),
    max_drop_int8: float | None = typer.Option(
        None,
        help=f"With --artifacts: the gate for INT8 artifacts (pp, default {DEFAULT_MAX_DROP_INT8}; see BENCHMARKS.md).",
    ),
    runtime: str | None = typer.Option(None, help="With --onnx: the CPU runtime, onnxruntime (default) or openvino."),
    precision: str | None = typer.Option(
        None, help="With --runtime openvino: the inference precision, fp32 (default) or bf16 (AVX-512 BF16, AMX)."
    ),
    reference_runtime: str | None = typer.Option(
        None, help="With a --reference .onnx file: its runtime, onnxruntime (default) or openvino (FP32)."
    ),
    provider: str | None = typer.Option(
        None,
        help="With --onnx: the execution provider, for a runtime that offers a choice. ONNX Runtime: auto (default:"
        " TensorRT, CUDA, then the CPU, as the installed build has them; model.int8-cpu.onnx on the CPU) | cpu | cuda"
        " | tensorrt.",
    ),
    batch_size: int = typer.Option(64),
    workers: int = typer.Option(0, help="DataLoader worker processes."),
    out: Path = typer.Option(Path("report.json"), help="report.json path; report.md and report.png go beside it."),
    allow_overlap: bool = typer.Option(
        False, help="Evaluate on images the model was trained on (a warning instead of an error)."
    ),
) -> None:
    """Evaluate a model on ID and OOD sets in batches; write report.json, report.md and a chart."""
    from common.distributed import current
    from common.errors import OptionError
    from data.specs import resolve_eval_sets
    from serve.backends import backend_for, check_options
    from serve.evaluate import evaluate, evaluate_against
    from serve.metrics import check_max_drop
    from serve.report import check_report_path, write_report
    from workflows.overlap import check_not_trained_on

    with one_line_errors():
        backend, source = _eval_source(checkpoint, zero_shot, onnx, engine, triton, model, artifacts)
        if pretrained is not None and not zero_shot:
            raise OptionError("--pretrained names the weights of the --zero-shot model: only with --zero-shot")
        if artifacts:
            if runtime or precision or reference_runtime or provider:
                raise OptionError(
                    "--artifacts evaluates every runtime: --runtime, --precision, --provider and the reference's"
                )
            return _eval_artifacts(artifacts, reference, data, max_drop, max_drop_int8, batch_size, out, allow_overlap)
        if max_drop_int8 is not None:
            raise OptionError("--max-drop-int8 is the INT8 gate of --artifacts: only with --artifacts DIR")
        if max_drop is not None and not reference:
            raise OptionError("--max-drop needs --reference: the drop is measured against it")
        if max_drop is not None:
            check_max_drop(max_drop, "--max-drop")
        check_report_path(out)  # before any work: never over a file that is not a report of ours
        backend = _file_backend("--runtime", runtime, source if onnx else None, "--onnx FILE.onnx") or backend
        ref_backend = _file_backend("--reference-runtime", reference_runtime, reference, "--reference FILE.onnx")
        check_options(backend_for(BUILTIN) if backend == ZERO_SHOT else backend, precision, provider)
        current()  # under torchrun: join the group (each rank on its GPU) before any runner is put on a device
        with progress_bar() as bar:
            hook = progress_hook(bar, "text classifier ")
            runner, ref_runner = _eval_runners(
                backend, source, pretrained, reference, ref_backend, (precision, provider), data, hook
            )
        sets = resolve_eval_sets(data, classes=runner.spec.classes)
        check_not_trained_on(runner.spec, sets, allow=allow_overlap)
        with progress_bar() as bar:
            hook = progress_hook(bar, "eval ", runner.backend)
            if ref_runner:
                report = evaluate_against(runner, ref_runner, sets, max_drop, batch_size, workers, hook)
            else:
                report, _ = evaluate(runner, sets, batch_size, workers, hook)
        if not _main_rank():  # under torchrun every rank holds the whole report; rank 0 writes and prints it
            raise typer.Exit(1 if report.get("gate") and not report["gate"]["passed"] else 0)
        write_report(report, out)
    print_table(report)
    console.print(f"wrote {out}, {out.with_suffix('.md')}, {out.with_suffix('.png')}")
    if report.get("gate") and not report["gate"]["passed"]:
        console.print(f"[red]gate failed[/red]: worst drop {report['gate']['worst_drop_pp']:+.2f} pp > {max_drop} pp")
        raise typer.Exit(1)


ZERO_SHOT = "zero-shot"  # eval's mode for --zero-shot (a pretrained model, not a backend)


def _eval_source(
    checkpoint: str | None,
    zero_shot: str | None,
    onnx: Path | None,
    engine: Path | None,
    triton: str | None,
    model: str | None,
    artifacts: Path | None,
) -> tuple[str, str]:
    """(backend, source) of the one model eval was given ("" for --artifacts); a Triton source as its model's URL."""
    from common.errors import OptionError
    from serve.backends import backend_for, backends_running

    given = {"--checkpoint": checkpoint, "--zero-shot": zero_shot, "--onnx": onnx, "--engine": engine}
    chosen = [(flag, str(source)) for flag, source in {**given, "--triton": triton, "": artifacts}.items() if source]
    if len(chosen) != 1:
        raise OptionError("give exactly one of --checkpoint, --zero-shot, --onnx, --engine, --triton, --artifacts")
    if model is not None and not triton:
        raise OptionError("--model names a model on a Triton server: only with --triton")
    flag, source = chosen[0]
    if triton:
        from serve.triton_runner import model_url

        source = model_url(triton, model or TRITON_DEFAULT_MODEL)
    # A file given as ONNX or as an engine runs on the backend that runs its kind by default, whatever its name.
    by_kind = {"--onnx": ".onnx", "--engine": ".plan"}
    backend = backends_running(by_kind[flag])[0] if flag in by_kind else backend_for(source)
    return {"--zero-shot": ZERO_SHOT, "": ""}.get(flag, backend), source


def _eval_runners(
    backend: str,
    source: str,
    pretrained: str | None,
    reference: str | None,
    ref_backend: str | None,
    how: tuple[str | None, str | None],
    data: list[str],
    progress: ProgressHook | None = None,
) -> tuple[Runner, Runner | None]:
    """The model eval scores and its reference (None: none). A zero-shot model (--zero-shot; builtin for --checkpoint
    or --reference) is made for the classes of the model it is compared with, else for those of the data (a suite's
    own classes and templates); `how`: the inference precision and execution provider asked for; `progress` shows
    its text classifier being built."""
    from data.specs import ZeroShotClasses, zero_shot_classes
    from serve.backends import ZeroShotModel, backend_for, open_runner

    def classes_of(other: Runner) -> ZeroShotClasses:
        meta = other.spec.classifier
        return ZeroShotClasses(list(meta.classes), list(meta.prompts), list(meta.templates))

    if not (backend == ZERO_SHOT or (source == BUILTIN and backend == backend_for(BUILTIN))):
        runner = open_runner(source, backend, precision=how[0], provider=how[1])
        if reference == BUILTIN:
            return runner, open_runner(ZeroShotModel(BUILTIN, None, classes_of(runner)), progress=progress)
        return runner, open_runner(reference, ref_backend) if reference else None
    fixed = open_runner(reference, ref_backend) if reference and reference != BUILTIN else None
    classes = classes_of(fixed) if fixed else zero_shot_classes(data)
    runner = open_runner(ZeroShotModel(source, pretrained, classes), progress=progress)
    if reference == BUILTIN:
        return runner, open_runner(ZeroShotModel(BUILTIN, None, classes), progress=progress)
    return runner, fixed


def _eval_artifacts(
    folder: Path,
    reference: str | None,
    data: list[str],
    max_drop: float | None,
    max_drop_int8: float | None,
    batch_size: int,
    out: Path,
    allow_overlap: bool,
) -> None:
    """eval --artifacts: every artifact in `folder` on every runtime here against its model; the table, each row's
    report beside `out`, and the recommendation. Exit 1 when an artifact failed its gate."""
    from common.distributed import current
    from data.specs import resolve_eval_sets
    from serve.compare import compare_runners, report_paths, write_reports
    from serve.metrics import check_max_drop
    from serve.report import check_report_path
    from workflows.overlap import check_not_trained_on
    from workflows.pipeline import exported_runners

    max_drop = DEFAULT_MAX_DROP if max_drop is None else max_drop
    max_drop_int8 = DEFAULT_MAX_DROP_INT8 if max_drop_int8 is None else max_drop_int8
    check_max_drop(max_drop, "--max-drop")
    check_max_drop(max_drop_int8, "--max-drop-int8")
    check_report_path(out)
    current()  # under torchrun: join the group (each rank on its GPU) before any runner is put on a device
    runners, reference_row, limits = exported_runners(folder, reference, max_drop, max_drop_int8, log=_log)
    for path in report_paths(list(runners), out).values():
        check_report_path(path)
    sets = resolve_eval_sets(data, classes=runners[reference_row].spec.classes)
    check_not_trained_on(runners[reference_row].spec, sets, allow=allow_overlap)
    with progress_bar() as bar:
        reports = compare_runners(runners, sets, reference_row, limits, batch_size, progress_hook(bar, "eval "))
    if not _main_rank():
        raise typer.Exit(_gate_status(reports))
    written = write_reports(reports, out)
    _print_comparison(reports, f"{folder}: top-1 %, drops against {reference or folder}")
    _print_recommendation(reports)
    console.print(f"wrote {len(written)} reports: {written[0].parent / (out.stem + '-*.json')}")
    raise typer.Exit(_gate_status(reports, say=True))


def _gate_status(reports: dict, say: bool = False) -> int:
    """1 when a gated row failed (named on the console with `say`), else 0."""
    failed = [
        f"{name} ({rep['gate']['worst_drop_pp']:+.2f} pp > {rep['gate']['max_drop_pp']} pp)"
        for name, rep in reports.items()
        if rep.get("gate") and not rep["gate"]["passed"]
    ]
    if failed and say:
        console.print(f"[red]accuracy gate failed[/red]: {', '.join(failed)}")
    return 1 if failed else 0


@app.command("export")
def export_cmd(
    ctx: typer.Context,
    checkpoint: Path = typer.Option(RUNS_ROOT / LATEST, help="Run directory to export (its best checkpoint)."),
    fp16: bool = typer.Option(False, "--fp16", help="Also model.fp16.onnx: FP16 tower; norms, softmax, head FP32."),
    int8: bool = typer.Option(
        False,
        "--int8",
        help="Also the INT8 copies from calibration: model.int8.onnx (symmetric Q/DQ, for TensorRT) and "
        "model.int8-cpu.onnx (u8 activations, s8 weights: ONNX Runtime's fast form on x86 CPUs).",
    ),
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
    triton_repo: Path | None = typer.Option(
        None, help="Also a Triton model repository here: <name>/config.pbtxt, <name>/1/model.onnx, one per artifact."
    ),
    triton_name: str = typer.Option(TRITON_DEFAULT_MODEL, help="Triton: the FP32 model's name (others add _fp16...)."),
    triton_max_batch: int = typer.Option(TRITON_DEFAULT_MAX_BATCH, help="Triton: ONNX models' max_batch_size."),
    triton_gpu: bool = typer.Option(False, "--triton-gpu", help="Triton: ONNX models on the GPU (default KIND_CPU)."),
) -> None:
    """Export image encoder + head as one ONNX graph (dynamic batch), verified against torch;
    optionally FP16 and INT8 copies; TensorRT engines from each when TensorRT and a GPU are present; optionally a
    Triton Inference Server model repository of them."""
    with one_line_errors():
        from calib.int8 import Int8Options
        from common.errors import OptionError
        from export.tensorrt_build import EngineOptions
        from workflows.export import export_run

        int8_only = ("calib_data", "calib_size", "calib_method", "int8_keep")
        typed = ["--" + name.replace("_", "-") for name in int8_only if _typed(ctx, name)]
        if typed and not int8:
            raise OptionError(f"{', '.join(typed)}: only with --int8, whose copy these options configure")
        engine = EngineOptions(min_batch, opt_batch, max_batch, workspace_gib, timing_cache, version_compatible)
        keep = tuple(part for part in int8_keep.split(",") if part)
        int8_options = Int8Options(calib_data, calib_size, calib_method, keep) if int8 else None
        triton = _triton_repo_options(ctx, triton_repo, triton_name, triton_max_batch, triton_gpu)
        if triton_repo and triton:  # refused before anything is exported
            from common.run import open_run
            from export.onnx_export import fp32_spec
            from export.triton_repo import check_triton_repo

            precisions = ["fp32", *(["fp16"] if fp16 else []), *(["int8", CPU_INT8] if int8 else [])]
            check_triton_repo(triton_repo, triton, fp32_spec(open_run(checkpoint)), precisions, min_batch)
        result = export_run(
            checkpoint, out, fp16=fp16, engine=engine, parity_data=parity_data, int8=int8_options, log=_log
        )
        models = {}
        if triton_repo and triton:
            from export.triton_repo import write_triton_repo

            models = write_triton_repo(triton_repo, triton, result.onnx, result.engines)
    for precision, path in result.onnx.items():
        console.print(f"wrote {path} ({precision})")
    for precision, path in result.engines.items():
        console.print(f"wrote {path} ({precision}) and {path.name}.json")
    if models and triton_repo:
        from export.triton_repo import server_command

        _log(f"wrote Triton models {', '.join(models)} ({server_command(triton_repo, result.engines)})")


def _triton_repo_options(
    ctx: typer.Context, repo: Path | None, name: str, max_batch: int, gpu: bool
) -> TritonRepoOptions | None:
    """export's Triton repository options; the --triton-* options refused without --triton-repo."""
    from common.errors import OptionError
    from export.triton_repo import TritonRepoOptions

    typed = ["--" + n.replace("_", "-") for n in ("triton_name", "triton_max_batch", "triton_gpu") if _typed(ctx, n)]
    if typed and not repo:
        raise OptionError(f"{', '.join(typed)}: only with --triton-repo, whose models these options configure")
    return TritonRepoOptions(name, max_batch, gpu) if repo else None


@app.command("serve")
def serve_cmd(
    artifact: str = typer.Argument(..., help="An exported .onnx, a .plan engine, a run directory, or builtin."),
    name: str = typer.Option(TRITON_DEFAULT_MODEL, help="The model's name on the server."),
    host: str = typer.Option("127.0.0.1", help="Address to listen on (0.0.0.0: every interface)."),
    http_port: int = typer.Option(8000, help="HTTP port (0: any free port, as the other two)."),
    grpc_port: int = typer.Option(8001, help="gRPC port."),
    metrics_port: int = typer.Option(8002, help="Prometheus metrics port."),
    max_batch_size: int = typer.Option(TRITON_DEFAULT_MAX_BATCH, help="Largest batch the dynamic batcher forms."),
) -> None:
    """Host an artifact in a Triton Inference Server (PyTriton) with dynamic batching, through the same runner as
    eval, until Ctrl-C (exit 130) or SIGTERM (exit 0). `eval --triton URL --model NAME` measures it."""
    import signal

    with one_line_errors():
        from serve.backends import open_runner
        from serve.triton_server import Endpoints, ServeOptions, serve_until_stopped

        options = ServeOptions(name, host, http_port, grpc_port, metrics_port, max_batch_size)
        runner = open_runner(artifact)

        def ready(at: Endpoints) -> None:
            _log(
                f"serving {runner.artifact} ({runner.backend} {runner.precision}) as {name!r}: {at.http} (HTTP), "
                f"{at.grpc} (gRPC), {at.metrics}/metrics; eval --triton {at.http} --model {name}; Ctrl-C stops"
            )

        stopped_by = serve_until_stopped(runner, options, ready)
    _log("stopped")
    if stopped_by == signal.SIGINT:
        raise typer.Exit(130)


def _log(message: str) -> None:
    console.print(message, highlight=False, soft_wrap=True, markup=False)  # paths may hold [brackets]


def _print_comparison(reports: dict, title: str) -> None:
    from serve.compare import comparison_rows

    header, rows = comparison_rows(reports)
    table = Table(title=title)
    for i, head in enumerate(header):
        table.add_column(head, justify="left" if i == 0 else "right")
    for row in rows:
        table.add_row(*row)
    Console(width=160).print(table)


def _print_recommendation(reports: dict) -> None:
    from serve.compare import recommended

    best = recommended(reports)
    if best is None:
        console.print("no artifact passed its gate: nothing to recommend for serving")
        return
    rep = reports[best]
    speed, fp32 = rep["throughput"]["model_images_per_s"], _fp32_onnxruntime_speed(reports)
    versus = f", {speed / fp32:.2f}x ONNX Runtime FP32" if fp32 else ""
    console.print(
        f"* recommended for this machine: {best}: {speed:.0f} images/s model-only{versus}, worst drop "
        f"{rep['gate']['worst_drop_pp']:+.2f} pp (gate {rep['gate']['max_drop_pp']} pp)"
    )


def _fp32_onnxruntime_speed(reports: dict) -> float | None:
    rows = [rep for name, rep in reports.items() if name.endswith("(onnxruntime fp32)")]
    return rows[0]["throughput"]["model_images_per_s"] if rows else None


@app.command("pipeline")
def pipeline_cmd(
    recipe: str | None = typer.Option(
        None, help=f"Training recipe ({', '.join(RECIPES)}, NAME+wise[ALPHA]); default: {RECOMMENDED} (README)."
    ),
    loss: str | None = typer.Option(None, help=" | ".join(METHODS) + ": that loss alone, instead of a recipe."),
    epochs: int = typer.Option(10),
    max_steps: int | None = typer.Option(None, help="Stop training after this many steps (a quick smoke run)."),
    seed: int = typer.Option(0),
    max_drop: float = typer.Option(
        DEFAULT_MAX_DROP, help="Accuracy-drop gate (pp) for FP32/FP16 artifacts against torch."
    ),
    max_drop_int8: float = typer.Option(
        DEFAULT_MAX_DROP_INT8, help="Accuracy-drop gate (pp) for INT8 artifacts (see BENCHMARKS.md)."
    ),
) -> None:
    """The main job on the built-in default: fine-tune with the recommended recipe; export FP32, FP16 and INT8
    ONNX (and TensorRT engines where possible); evaluate zero-shot, torch and every artifact on the ID and OOD sets;
    print one table."""
    with one_line_errors():
        from calib.int8 import Int8Options
        from common.errors import OptionError
        from data.specs import resolve_eval_sets
        from serve.compare import compare_runners, write_reports
        from serve.metrics import check_max_drop
        from train.config import TrainConfig
        from train.losses import LossConfig
        from train.recipes import recipe_config
        from workflows.export import export_run
        from workflows.pipeline import pipeline_runners

        check_max_drop(max_drop, "--max-drop")
        check_max_drop(max_drop_int8, "--max-drop-int8")
        if recipe and loss:
            raise OptionError("give --recipe or --loss, not both")
        if loss:
            label = loss
            cfg = TrainConfig(loss=LossConfig(kind=loss), epochs=epochs, max_steps=max_steps, seed=seed)
        else:
            label = recipe or RECOMMENDED
            cfg = recipe_config(label, epochs=epochs, max_steps=max_steps, seed=seed)
        run = do_train(cfg, None, resume=False)
        exported = export_run(run, fp16=True, int8=Int8Options(), log=_log)
        runners, reference, limits = pipeline_runners(run, label, exported, max_drop, max_drop_int8)
        sets = resolve_eval_sets([], runners[reference].spec.classes)
        with progress_bar() as bar:
            reports = compare_runners(runners, sets, reference, limits, progress=progress_hook(bar, "eval "))
        write_reports(reports, run.path / "report.json")
    _print_comparison(reports, "built-in benchmark: top-1 %, drops against the fine-tuned torch model")
    _print_recommendation(reports)
    console.print(f"run directory and reports: {run.path}")
    raise typer.Exit(_gate_status(reports, say=True))


def _alphas(text: str) -> list[float]:
    """'0.5' or '0,0.1,...,1' -> the alphas, each checked to lie in [0, 1]."""
    from common.errors import OptionError
    from train.wise import check_alpha

    try:
        alphas = [float(a) for a in text.split(",") if a.strip()]
    except ValueError:
        raise OptionError(f"--alpha {text!r}: give numbers in [0, 1], comma-separated") from None
    if not alphas:
        raise OptionError("--alpha: give at least one number in [0, 1]")
    for alpha in alphas:
        check_alpha(alpha, "--alpha")
    return sorted(set(alphas))


WISE_ALPHAS = ",".join(f"{a / 10:g}" for a in range(11))


@app.command("wise")
def wise_cmd(
    ctx: typer.Context,
    checkpoint: Path = typer.Option(RUNS_ROOT / LATEST, help="Fine-tuned run directory."),
    alpha: str = typer.Option(
        WISE_ALPHAS,
        help="Weight of the fine-tuned model, in [0, 1]; several (comma-separated) sweep: each is evaluated and the "
        "best on validation is written, with a table and an ID-vs-OOD plot.",
    ),
    base: Path | None = typer.Option(
        None, help="Interpolate towards this run (same architecture and classes) instead of the zero-shot model."
    ),
    data: list[str] = typer.Option(
        [], help="Sets the sweep reports (as eval --data); default: the built-in ID and OOD sets for built-in runs."
    ),
    out: Path | None = typer.Option(None, help="New run directory; default: CHECKPOINT-wise[ALPHA] beside it."),
    batch_size: int = typer.Option(256),
) -> None:
    """WiSE-FT: interpolate a fine-tuned run with its zero-shot model, theta = (1 - a) theta_0 + a theta_ft, into a
    run directory that export, eval and pipeline take like any run (no inference cost)."""
    with one_line_errors():
        from common.artifact import ArtifactSpec
        from common.errors import OptionError, check_number
        from common.run import open_run
        from data.specs import resolve_eval_sets
        from train.wise import write_wise_run
        from workflows.overlap import check_not_trained_on
        from workflows.wise import wise_sweep

        alphas = _alphas(alpha)
        check_number("batch size", batch_size, 1)
        if len(alphas) == 1 and (data or _typed(ctx, "batch_size")):
            raise OptionError("--data and --batch-size configure a sweep; one --alpha evaluates nothing")
        run = open_run(checkpoint)
        base_run = open_run(base) if base else None
        target = out or run.path.resolve().with_name(
            run.path.resolve().name + (f"-wise{alphas[0]:g}" if len(alphas) == 1 else "-wise")
        )
        if len(alphas) == 1:
            written = write_wise_run(run, alphas[0], target, base_run)
            console.print(f"wrote {written.path} (alpha {alphas[0]:g})")
            return
        builtin_run = run.record.data.source.train == BUILTIN
        sets = resolve_eval_sets(data, run.classifier.classes) if data or builtin_run else []
        check_not_trained_on(ArtifactSpec(classifier=run.classifier, source_run=str(run.path)), sets, allow=False)
        with progress_bar() as bar:
            written, sweep = wise_sweep(run, alphas, target, sets, base_run, batch_size, progress_hook(bar, "wise "))
    _print_sweep(sweep)
    console.print(f"wrote {written.path} (alpha {sweep.chosen:g}: {sweep.rule}), wise-sweep.json/.md/.png in it")


def _print_sweep(sweep: WiseSweep) -> None:
    from workflows.wise import sweep_table

    header, rows = sweep_table(sweep)
    table = Table(title="WiSE-FT along alpha: top-1 %")
    for head in header:
        table.add_column(head, justify="right")
    for row in rows:
        table.add_row(*row)
    Console(width=160).print(table)


def _numbers(text: str, option: str, kind: type = float) -> list:
    """'0,1,2' -> the numbers of an option that takes a comma-separated list."""
    from common.errors import OptionError

    try:
        values = [kind(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise OptionError(f"{option} {text!r}: give comma-separated {kind.__name__}s") from None
    if not values:
        raise OptionError(f"{option}: give at least one value")
    return values


def _compare_spec(
    methods: str,
    seeds: str,
    data: str,
    eval_specs: list[str],
    holdout_specs: list[str],
    alphas: str,
    wise_alpha: float,
    train_options: dict[str, Any],
) -> CompareSpec:
    """The comparison the compare command's options describe, every option checked."""
    from common.errors import OptionError
    from common.run import DataSource
    from data.loading import check_some_readable
    from data.specs import resolve_eval_sets, resolve_train_data
    from data.world import BUILTIN_HOLDOUT
    from train.recipes import WISE_SUFFIX, resolve_recipe
    from train.wise import check_alpha
    from workflows.compare import CompareSpec

    names = [m.strip() for m in methods.split(",") if m.strip()]
    if not names:
        raise OptionError("--methods: give at least one recipe")
    for name in names:
        if WISE_SUFFIX in name:
            raise OptionError(f"--methods {name}: every method is measured with WiSE-FT already; name it alone")
        resolve_recipe(name)
    check_alpha(wise_alpha, "--wise-alpha")
    swept = _alphas(alphas)
    seed_list = sorted(set(_numbers(seeds, "--seeds", int)))
    if not eval_specs and data != BUILTIN:
        raise OptionError(
            "--eval-data: give the ID and OOD sets to compare on (the built-in ones are for builtin data)"
        )
    holdout_specs = holdout_specs or ([BUILTIN_HOLDOUT] if data == BUILTIN else [])
    train_data = resolve_train_data(DataSource(data))
    check_some_readable(train_data.train)  # before the comparison folder is made
    classes = train_data.classes  # every set in the label order the runs will have
    sets = resolve_eval_sets(eval_specs, classes)
    if {ev.role for ev in sets} != {"id", "ood"}:
        raise OptionError("--eval-data: give at least one ID set and one OOD set (id:SPEC, ood:SPEC)")
    held_out = resolve_eval_sets(holdout_specs, classes) if holdout_specs else []
    clash = sorted({ev.data.name for ev in sets} & {ev.data.name for ev in held_out})
    if clash:
        raise OptionError(f"a tuned and a held-out set are both called {clash[0]!r}: rename one (reports key by name)")
    return CompareSpec(
        methods=names,
        seeds=seed_list,
        data=data,
        sets=sets,
        holdout=held_out,
        alphas=sorted(set(swept + [wise_alpha])),
        fixed_alpha=wise_alpha,
        train_options=train_options,
    )


@app.command("compare")
def compare_cmd(
    methods: str = typer.Option(
        ",".join(COMPARED), help=f"Recipes to train, comma-separated (any of {', '.join(RECIPES)})."
    ),
    seeds: str = typer.Option("0,1,2", help="Seeds, comma-separated: every method is trained once per seed."),
    data: str = typer.Option(BUILTIN, help="Training data (as train --data)."),
    eval_data: list[str] = typer.Option(
        [], help="ID and OOD sets the methods are chosen on (as eval --data); default: the built-in ones."
    ),
    holdout: list[str] = typer.Option(
        [], help="Shifts reported apart, tuned for by nobody; default for built-in data: builtin-holdout."
    ),
    alpha: str = typer.Option("0.25,0.5,0.75", help="WiSE-FT alphas evaluated per run (besides 0 and 1)."),
    wise_alpha: float = typer.Option(0.5, help="The leaderboard's fixed-alpha WiSE-FT row."),
    epochs: int = typer.Option(10),
    max_steps: int | None = typer.Option(None, help="Stop each training after this many steps (a quick look)."),
    out: Path = typer.Option(RUNS_ROOT / "compare", help="Folder for the runs (cells/) and the leaderboard."),
) -> None:
    """Train each method over seeds on the same data (sweeping each method's main knob, chosen on validation),
    evaluate each with its WiSE-FT curve, and write leaderboard.md/.json and the ID-vs-OOD plot. Resumable: a
    finished (method, knob, seed) cell is not trained or evaluated again."""
    with one_line_errors():
        from train.trainer import TrainingInterrupted
        from workflows.compare import compare_methods

        options = {"epochs": epochs, "max_steps": max_steps}
        spec = _compare_spec(methods, seeds, data, eval_data, holdout, alpha, wise_alpha, options)
        with progress_bar() as bar:
            task = bar.add_task("compare", total=1, info="")

            def on_cell(done: int, total: int, name: str) -> None:
                bar.update(task, completed=done, total=total, info=name)
                if not console.is_terminal:
                    console.print(f"[{done + 1}/{total}] {name}" if done < total else "leaderboard", markup=False)

            try:
                rows = compare_methods(spec, out, on_cell)
            except TrainingInterrupted as stop:
                console.print(f"{stop}; saved. Run the same command again to go on where it stopped.")
                raise typer.Exit(130) from None
    typer.echo((out / "leaderboard.md").read_text())  # markdown, unwrapped
    console.print(f"wrote {out / 'leaderboard.md'}, leaderboard.json, leaderboard.png ({len(rows)} rows)")


@app.command("datasets")
def datasets_cmd() -> None:
    """The dataset suites a --data / --val-data spec can name (SUITE:ROOT, or SUITE/VARIANT:ROOT): each with its
    roles, the layout it is read from (as its authors distribute it), its class count and where to get it."""
    from data.suites.registry import suites

    table = Table(title=escape("dataset suites: --data SUITE[/VARIANT]:ROOT"), show_lines=True)
    for head in ("suite", "classes", "variants", "roles", "layout under ROOT", "published"):
        table.add_column(head, overflow="fold")
    for name, suite in suites().items():
        info = suite.info
        default = f" (default {info.default_variant})" if info.default_variant else ""
        variants = (", ".join(info.variants) + default) if info.variants else "-"
        roles = info.roles if info.trains else f"evaluation only: {info.roles}"
        cells = (f"{name}\n{info.title}", str(info.classes), variants, roles, info.layout, info.published)
        table.add_row(*(escape(cell) for cell in cells))
    Console(width=200).print(table)


@app.command("pretrain-builtin")
def pretrain_builtin_cmd(
    steps: int = typer.Option(700, help="Optimizer steps (batch 256); 700 makes zero-shot useful but beatable."),
    seed: int = typer.Option(0),
    out: Path = typer.Option(None, help="Output folder; default: the committed common/assets/builtin."),
) -> None:
    """Re-create the built-in model: contrastive pretraining from scratch on the procedural world (CPU, minutes)."""
    from common.builtin import BUILTIN_DIR
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


@app.command("checks", short_help="What this machine can do, proven end to end: the environment and a self-test.")
def checks_cmd(
    quick: bool = typer.Option(
        False, "--quick", help="Skip the training checks; the exports then come from a one-step run on the CPU."
    ),
    json_file: Path | None = typer.Option(
        None, "--json", help="Also write the environment and every row to this JSON file."
    ),
    timeout: float | None = typer.Option(
        None, help="Seconds each check may take before it is reported as hung (default: the check's own, 300-900)."
    ),
    keep: Path | None = typer.Option(
        None, help="Keep the checks' runs, artifacts and log (checks.log) in this folder; default: a temporary one."
    ),
) -> None:
    """What this machine can do, proven end to end in a few minutes: the environment, then a short self-test of
    every path it supports on the built-in model and benchmark (training on the CPU, on GPUs with autocast and under
    torchrun; ONNX export FP32/FP16/INT8; ONNX Runtime on each execution provider; OpenVINO; TensorRT engines run as
    `eval --engine` runs them), each artifact gated against the torch model as `pipeline` gates it. One line per
    check: passed, failed (why), or not available (why, and what would make it available). Exit 0 only when every
    check that could run here passed."""
    with one_line_errors():
        from common.errors import check_number
        from common.files import atomic_write_json
        from workflows.check_worker import (
            CheckSession,
            all_passed,
            check_outputs,
            checks_json,
            work_folder,
        )
        from workflows.checks import CHECKS
        from workflows.machine_facts import machine_facts

        if timeout is not None:
            check_number("--timeout", timeout, 0, above=True)
        check_outputs(json_file, keep)
        with work_folder(keep) as work, CheckSession(work) as session:
            facts = session.facts(functools.partial(machine_facts, RUNS_ROOT))
            _print_facts(facts)
            results = session.run(CHECKS, quick, timeout, _check_starting, _print_check)
        if json_file is not None:
            atomic_write_json(json_file, checks_json(facts, results))
    passed = all_passed(results)
    console.print("every check that can run here passed" if passed else "[red]a check failed[/red]", highlight=False)
    raise typer.Exit(0 if passed else 1)


def _print_facts(facts: dict[str, str]) -> None:
    width = max(map(len, facts))
    for name, value in facts.items():
        console.print(f"{name:<{width}}  {escape(value)}", highlight=False, soft_wrap=True)


def _check_starting(index: int, check: Any) -> None:
    if console.is_terminal:
        console.print(f"[dim]running {check.name} ...[/dim]", end="\r", highlight=False)


def _print_check(result: Any) -> None:
    from workflows.check_worker import PASSED

    colour = (
        "green" if result.status == PASSED else ("yellow" if result.status in ("not available", "skipped") else "red")
    )
    took = f" ({result.seconds:.0f} s)" if result.seconds >= 1 else ""
    console.print(
        f"[{colour}]{result.status:<13}[/{colour}] {result.name:<34} {escape(result.detail)}{took}",
        highlight=False,
        soft_wrap=True,
    )


if __name__ == "__main__":
    sys.exit(app())
