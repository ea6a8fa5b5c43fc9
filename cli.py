"""Command line: fine-tune with ProReg, export, evaluate. A thin layer: it parses options and calls the stages.

python cli.py train                   # ProReg on the built-in benchmark -> runs/<name>, runs/latest
python cli.py eval --checkpoint runs/latest
python cli.py pipeline                # the README's main job: train, then evaluate it and the zero-shot model
"""

from __future__ import annotations

import contextlib
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import typer
from rich.console import Console
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

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    help="ProReg fine-tuning of OpenCLIP classifiers, ONNX/TensorRT export and OOD evaluation.",
)
console = Console(stderr=True)
RUNS = Path("runs")


def _user_errors() -> tuple[type[BaseException], ...]:
    from common.checkpoint import CheckpointError
    from common.data import DataError
    from common.models import ModelError
    from common.tensorrt_compat import TensorRTUnavailable
    from export.onnx_export import ExportError
    from serve.tensorrt_runner import EngineMismatch

    return (
        DataError,
        ModelError,
        CheckpointError,
        ExportError,
        TensorRTUnavailable,
        EngineMismatch,
        FileNotFoundError,
        ValueError,
    )


@contextlib.contextmanager
def one_line_errors() -> Iterator[None]:
    """Bad input ends the command with one line on stderr and exit status 2, never a traceback."""
    try:
        yield
    except _user_errors() as err:
        console.print(f"[red]error:[/red] {err}", highlight=False, soft_wrap=True)
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
    )


def eval_progress(bar: Progress, info: str = "") -> Callable[[str, int, int], None]:
    """A progress hook for evaluation: one bar per dataset name, created on its first report."""
    tasks: dict[str, TaskID] = {}

    def hook(name: str, done: int, total: int) -> None:
        if name not in tasks:
            tasks[name] = bar.add_task(f"eval {name}", total=total, info=info)
        bar.update(tasks[name], completed=done)

    return hook


def _fresh_run_dir(loss: str, seed: int) -> Path:
    return RUNS / f"{time.strftime('%Y%m%d-%H%M%S')}-{loss}-s{seed}"


def _point_latest(run_dir: Path) -> None:
    latest = RUNS / "latest"
    if run_dir.resolve().parent != RUNS.resolve():
        return  # only runs under runs/ are tracked as latest
    tmp = RUNS / ".latest.tmp"
    tmp.unlink(missing_ok=True)
    tmp.symlink_to(run_dir.name)
    tmp.replace(latest)


def do_train(cfg, out: Path | None, resume: Path | None) -> Path:
    from train.config import TrainConfig
    from train.trainer import TrainingInterrupted, prepare, run_training

    if resume:
        from common.checkpoint import read_run

        cfg, out = TrainConfig.from_dict(read_run(resume)["train"]), resume
    else:
        out = out or _fresh_run_dir(cfg.loss.kind, cfg.seed)
        if (out / "run.json").exists():
            raise ValueError(f"run directory already holds a run: {out} (use --resume {out}, or another --out)")
    session = prepare(cfg, out, resume=resume is not None)  # bad input fails here, before any progress bar
    with progress_bar() as bar:
        task = bar.add_task(f"train {cfg.loss.kind}", total=session.total_steps, info="teacher logits")

        def on_step(step: int, terms: dict[str, float]) -> None:
            bar.update(task, completed=step, info=f"loss {terms.get('loss', float('nan')):.3f}")

        try:
            info_total = run_training(session, on_step=on_step)
        except TrainingInterrupted as stop:
            console.print(f"{stop}; saved. Resume with: python cli.py train --resume {out}")
            raise typer.Exit(130) from None
    _point_latest(out)
    best = info_total["best"]
    console.print(f"run directory {out}: best validation top-1 {100 * best['val_top1']:.1f}% at step {best['step']}")
    return out


@app.command("train")
def train_cmd(
    model: str = typer.Option(
        "builtin",
        help="open_clip architecture (e.g. ViT-B-32), hf-hub:ORG/REPO, "
        "local-dir:PATH, or builtin (the tiny model shipped here).",
    ),
    pretrained: str | None = typer.Option(None, help="Pretrained tag (e.g. laion2b_s34b_b79k) or checkpoint file."),
    data: str = typer.Option(
        "builtin",
        help="Training data: builtin, an image folder (one sub-folder per class) or a CSV manifest path,label[,group].",
    ),
    val_data: str | None = typer.Option(None, help="Validation data; default: 10% held out of --data."),
    classnames: Path | None = typer.Option(None, help="Class-names file: 'label[,display name]' per line."),
    template: list[str] = typer.Option(["a photo of a {}"], help="Prompt template with {} (repeatable)."),
    templates_file: Path | None = typer.Option(None, help="File with one prompt template per line."),
    loss: str = typer.Option("proreg", help="proreg | kd | ce."),
    weight_form: str = typer.Option(
        "xerm", help="ProReg weight: xerm (paper formula, default) | official (authors code)."
    ),
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
    resume: Path | None = typer.Option(None, help="Continue the interrupted run in this directory."),
) -> None:
    """Fine-tune an OpenCLIP image encoder with ProReg (or kd / ce) against the fixed text classifier."""
    with one_line_errors():
        from train.config import TrainConfig
        from train.losses import LossConfig

        templates = _read_templates(templates_file) if templates_file else list(template)
        cfg = TrainConfig(
            model=model,
            pretrained=pretrained,
            data=data,
            val_data=val_data,
            classnames=str(classnames) if classnames else None,
            templates=templates,
            loss=LossConfig(
                kind=loss, weight_form=weight_form, alpha=alpha, gamma=gamma, temperature=temperature, kd_alpha=kd_alpha
            ),
            epochs=epochs,
            max_steps=max_steps,
            batch_size=batch_size,
            accum_steps=accum_steps,
            lr=lr,
            augment=augment,
            teacher_cache=teacher_cache,
            seed=seed,
            num_workers=workers,
            device=device,
            precision=precision,
            strict=strict,
        )
        do_train(cfg, out, resume)


def _read_templates(path: Path) -> list[str]:
    if not path.is_file():
        raise FileNotFoundError(f"no such templates file: {path}")
    lines = [t.strip() for t in path.read_text().splitlines() if t.strip() and not t.startswith("#")]
    bad = [t for t in lines if "{}" not in t]
    if not lines or bad:
        raise ValueError(f"every template in {path} needs a {{}} for the class name" + (f": {bad[0]!r}" if bad else ""))
    return lines


def open_runner(checkpoint: str | None, onnx: Path | None, engine: Path | None):
    from serve.runners import torch_runner

    chosen = [x for x in (checkpoint, onnx, engine) if x]
    if len(chosen) != 1:
        raise ValueError("give exactly one of --checkpoint, --onnx, --engine")
    if checkpoint:
        return torch_runner(checkpoint)
    if onnx:
        from serve.runners import OnnxRuntimeRunner

        return OnnxRuntimeRunner(onnx)
    from serve.tensorrt_runner import TensorRTRunner

    assert engine is not None  # exactly one of the three was given
    return TensorRTRunner(engine)


def open_artifact(spec: str):
    """A runner for any artifact named by path: .onnx, .plan, else a run directory (or builtin)."""
    if spec.endswith(".onnx"):
        return open_runner(None, Path(spec), None)
    if spec.endswith(".plan"):
        return open_runner(None, None, Path(spec))
    return open_runner(spec, None, None)


def print_table(report: dict) -> None:
    from serve.report import table_header, table_rows

    table = Table(title=f"{report['backend']} ({report['precision']}): {report['artifact']}")
    for head in table_header(report):
        table.add_column(head, justify="right" if head not in ("dataset", "role") else "left")
    for row in table_rows(report):
        table.add_row(*row)
    Console().print(table)


def do_eval(
    runner, data: list[str], reference: str | None, max_drop: float | None, batch_size: int, workers: int, out: Path
) -> dict:
    from common.suites import resolve_eval_sets
    from serve.evaluate import evaluate, with_reference
    from serve.report import write_report

    sets = resolve_eval_sets(data, classes=runner.meta.classes)
    with progress_bar() as bar:
        hook = eval_progress(bar, runner.backend)
        report, results = evaluate(runner, sets, batch_size, workers, hook)
        if reference:
            ref_runner = open_artifact(reference)
            if ref_runner.meta.classes != runner.meta.classes:
                raise ValueError(
                    f"the reference {reference} classifies other classes (or in another order) than "
                    f"{runner.artifact}: agreement would compare different logits"
                )
            _, ref_results = evaluate(ref_runner, sets, batch_size, workers, hook)
            report = with_reference(report, results, ref_results, ref_runner.artifact, max_drop)
    write_report(report, out)
    return report


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
) -> None:
    """Evaluate a model on ID and OOD sets in batches; write report.json, report.md and a chart."""
    with one_line_errors():
        if max_drop is not None and not reference:
            raise ValueError("--max-drop needs --reference: the drop is measured against it")
        runner = open_runner(checkpoint, onnx, engine)
        report = do_eval(runner, data, reference, max_drop, batch_size, workers, out)
    print_table(report)
    console.print(f"wrote {out}, {out.with_suffix('.md')}, {out.with_suffix('.png')}")
    if report.get("gate") and not report["gate"]["passed"]:
        console.print(f"[red]gate failed[/red]: worst drop {report['gate']['worst_drop_pp']:+.2f} pp > {max_drop} pp")
        raise typer.Exit(1)


@app.command("export")
def export_cmd(
    checkpoint: Path = typer.Option(RUNS / "latest", help="Run directory to export (its best checkpoint)."),
    fp16: bool = typer.Option(False, "--fp16", help="Also model.fp16.onnx: FP16 tower; norms, softmax, head FP32."),
    int8: bool = typer.Option(False, "--int8", help="Also model.int8.onnx: symmetric INT8 Q/DQ from calibration."),
    calib_data: str | None = typer.Option(
        None, help="INT8 calibration images: a dataset SPEC or a .npy [N,3,H,W]; default: the run's training data."
    ),
    calib_size: int = typer.Option(300, help="INT8: calibration images (class-stratified sample)."),
    calib_method: str = typer.Option("percentile", help="INT8: percentile | entropy | minmax."),
    int8_keep: str = typer.Option(
        "patch_embed,pool,head", help="INT8: parts kept in FP32 (patch_embed, pool, head; '' for none)."
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
        from calib.calibration import Int8Options
        from export.stage import export_run
        from export.tensorrt_build import EngineOptions

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
    console.print(message, highlight=False, soft_wrap=True)


def _pipeline_runners(loss: str, run_dir: Path, exported, max_drop: float, max_drop_int8: float):
    """Zero-shot and torch rows, plus one row per exported artifact with its accuracy-drop limit."""
    from serve.runners import OnnxRuntimeRunner, Runner, torch_runner

    reference = f"{loss} (torch)"
    runners: dict[str, Runner] = {"zero-shot (torch)": torch_runner("builtin"), reference: torch_runner(str(run_dir))}
    limits: dict[str, float | None] = {}
    for precision, path in exported.onnx.items():
        runners[f"{loss} (onnxruntime {precision})"] = OnnxRuntimeRunner(path)
        limits[f"{loss} (onnxruntime {precision})"] = max_drop_int8 if precision == "int8" else max_drop
    if exported.engines:
        from serve.tensorrt_runner import TensorRTRunner

        for precision, plan in exported.engines.items():
            runners[f"{loss} (tensorrt {precision})"] = TensorRTRunner(plan)
            limits[f"{loss} (tensorrt {precision})"] = max_drop_int8 if precision == "int8" else max_drop
    return runners, reference, limits


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
    loss: str = typer.Option("proreg", help="proreg | kd | ce."),
    epochs: int = typer.Option(10),
    max_steps: int | None = typer.Option(None, help="Stop training after this many steps (a quick smoke run)."),
    seed: int = typer.Option(0),
    max_drop: float = typer.Option(1.0, help="Accuracy-drop gate (pp) for FP32/FP16 artifacts against torch."),
    max_drop_int8: float = typer.Option(1.5, help="Accuracy-drop gate (pp) for INT8 artifacts (see BENCHMARKS.md)."),
) -> None:
    """The main job on the built-in default: fine-tune with ProReg; export FP32, FP16 and INT8 ONNX (and TensorRT
    engines where possible); evaluate zero-shot, torch and every artifact on the ID and OOD sets; print one table."""
    with one_line_errors():
        from calib.calibration import Int8Options
        from common.suites import resolve_eval_sets
        from export.stage import export_run
        from serve.compare import compare_runners
        from train.config import TrainConfig
        from train.losses import LossConfig

        cfg = TrainConfig(loss=LossConfig(kind=loss), epochs=epochs, max_steps=max_steps, seed=seed)
        run_dir = do_train(cfg, None, None)
        exported = export_run(run_dir, fp16=True, int8=Int8Options(), log=_log)
        runners, reference, limits = _pipeline_runners(loss, run_dir, exported, max_drop, max_drop_int8)
        sets = resolve_eval_sets([], runners[reference].meta.classes)
        with progress_bar() as bar:
            reports = compare_runners(runners, sets, reference, limits, run_dir, progress=eval_progress(bar))
    _print_comparison(reports)
    console.print(f"run directory and reports: {run_dir}")
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
    out: Path = typer.Option(None, help="Output folder; default: the committed common/assets/builtin."),
) -> None:
    """Re-create the built-in model: contrastive pretraining from scratch on the procedural world (CPU, minutes)."""
    from common.models import BUILTIN_DIR
    from train.pretrain_builtin import PretrainConfig, pretrain_builtin

    cfg = PretrainConfig(steps=steps, seed=seed)
    with progress_bar() as bar:
        task = bar.add_task("pretrain builtin", total=steps, info="rendering corpus")
        info = pretrain_builtin(
            cfg, out or BUILTIN_DIR, on_step=lambda s, loss: bar.update(task, completed=s + 1, info=f"loss {loss:.3f}")
        )
    console.print(f"wrote {out or BUILTIN_DIR} in {info['seconds']} s")


if __name__ == "__main__":
    sys.exit(app())
