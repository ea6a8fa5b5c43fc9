"""The command line's options, each declared once (typer's Annotated form) and shared by the commands that take it;
cli.py's commands list them with their defaults. Help texts only (and --version's answer): no option is checked here
(the objects and functions that take a value check it, before anything is read or written)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Annotated, Any

import typer
import typer.core

from common.artifact import HEAD_INITS, HEAD_KINDS, TRITON_DEFAULT_MODEL
from common.graph_scopes import PARTS
from data.transforms import AUGMENTATIONS
from trackers import TRACKERS
from train.config import AUTOCASTS, DECAYS
from train.methods import METHODS
from train.recipes import RECIPES, RECOMMENDED
from workflows.console import fill

Opt, Arg = typer.Option, typer.Argument


def choices(names: Iterable[str]) -> str:
    """The metavar of an option that takes one of `names`: [a|b|c]."""
    return f"[{'|'.join(names)}]"


# ---- how --help shows them -------------------------------------------------------------------------------------------
# Plain text as click writes it (it reads the same in a terminal, a log and a pipe), with three changes: nothing a user
# copies is broken (no line break inside a word or after a hyphen: hf-hub:ORG/REPO, proreg-official+wise stay whole),
# the command list gives each command's first paragraph whole rather than cut at 45 characters, and arguments show as
# ARTIFACT in the usage line (typer writes {artifact}).
_ClickFormatter: Any = typer.Context.formatter_class  # typer's click (bundled since 0.24, click itself before)


class HelpFormatter(_ClickFormatter):  # type: ignore[misc]
    def write_text(self, text: str) -> None:
        self.write(fill(text, self.width, " " * self.current_indent) + "\n")

    def write_dl(self, rows: Sequence[tuple[str, str]], col_max: int = 30, col_spacing: int = 2) -> None:
        first_col = min(max((len(first) for first, _ in rows), default=0), col_max) + col_spacing
        indent = " " * (self.current_indent + first_col)
        for first, second in rows:
            head = " " * self.current_indent + first
            if not second:
                self.write(head + "\n")
                continue
            body = fill(second, max(self.width, first_col + 30), indent)
            if len(first) <= first_col - col_spacing:
                self.write(head.ljust(len(indent)) + body[len(indent) :] + "\n")
            else:
                self.write(f"{head}\n{body}\n")


class Context(typer.Context):
    formatter_class = HelpFormatter


class Group(typer.core.TyperGroup):
    context_class = Context

    def format_commands(self, ctx: Any, formatter: Any) -> None:  # click's Context and HelpFormatter
        rows = [
            (name, command.short_help or (command.help or "").split("\n\n")[0])
            for name, command in self.commands.items()
            if not command.hidden
        ]
        with formatter.section("Commands"):
            formatter.write_dl(rows)


class Command(typer.core.TyperCommand):
    context_class = Context

    def collect_usage_pieces(self, ctx: Any) -> list[str]:
        return [self.options_metavar or "", *(usage for usage, _ in self.arguments(ctx))]

    def arguments(self, ctx: Any) -> list[tuple[str, str]]:
        """Each argument's (ARTIFACT or [FOLDER], help with its default)."""
        rows = []
        for param in self.get_params(ctx):
            record = param.get_help_record(ctx)
            if isinstance(param, typer.core.TyperArgument) and record:
                name = param.metavar or (param.name or "").upper()
                rows.append((name if param.required else f"[{name}]", record[1]))
        return rows

    def format_options(self, ctx: Any, formatter: Any) -> None:
        records = [p.get_help_record(ctx) for p in self.get_params(ctx) if isinstance(p, typer.core.TyperOption)]
        for heading, rows in (("Arguments", self.arguments(ctx)), ("Options", [r for r in records if r])):
            if rows:
                with formatter.section(heading):
                    formatter.write_dl(rows)


# The typer app's settings: plain help (Group, Command), -h as --help, a bug's traceback as Python prints it.
APP: dict[str, Any] = {
    "cls": Group,
    "no_args_is_help": True,
    "context_settings": {"help_option_names": ["-h", "--help"]},
    "pretty_exceptions_enable": False,
    "rich_markup_mode": None,
}


def show_version(shown: bool) -> None:
    """--version: the installed distribution's version, then exit."""
    if shown:
        from importlib.metadata import PackageNotFoundError, version

        try:
            typer.echo(f"proreg-clip {version('proreg-clip')}")
        except PackageNotFoundError:  # a checkout that was never installed
            typer.echo("proreg-clip (not installed: pip install -e .)")
        raise typer.Exit()


Version = Annotated[
    bool, Opt("--version", "-V", callback=show_version, is_eager=True, help="Print the version and exit.")
]

# ---- shared ----------------------------------------------------------------------------------------------------------
Data = Annotated[
    list[str],
    Opt(
        metavar="SPEC",
        help="builtin | builtin:SPLIT | [id:|ood:][NAME=]PATH | SUITE:ROOT | SUITE/VARIANT:ROOT (repeatable; cli.py"
        " datasets lists the suites). A folder or CSV is an ID set unless ood:, named as its folder or file unless"
        " NAME= (ood:sketch=/data/test). Default: the built-in ID and OOD sets.",
    ),
]
BatchSize = Annotated[int, Opt(metavar="INT", help="Images per batch.")]
Workers = Annotated[int, Opt(metavar="INT", help="DataLoader worker processes.")]
Seed = Annotated[int, Opt(metavar="INT", help="Random seed: data order, augmentation, initialization.")]
Epochs = Annotated[int, Opt(metavar="INT", help="Epochs (the paper's recipe uses 10).")]
MaxSteps = Annotated[int | None, Opt(metavar="INT", help="Stop after this many optimizer steps (overrides --epochs).")]
ReportOut = Annotated[Path, Opt(metavar="FILE", help="report.json path; report.md and report.png go beside it.")]
AllowOverlap = Annotated[bool, Opt(help="Evaluate on images the model was trained on (a warning instead of an error).")]
MaxDrop = Annotated[float, Opt(metavar="PP", help="Accuracy-drop gate (pp) for FP32/FP16 artifacts against torch.")]
MaxDropInt8 = Annotated[
    float, Opt(metavar="PP", help="Accuracy-drop gate (pp) for INT8 artifacts (see BENCHMARKS.md).")
]
Checkpoint = Annotated[Path, Opt(metavar="RUN", help="Run directory.")]
Log = Annotated[
    list[str],
    Opt(
        metavar=choices(TRACKERS),
        help=f"Log to an experiment tracker too (repeatable): {', '.join(TRACKERS)}. TensorBoard: event files in the"
        " run directory; MLflow: the MLFLOW_TRACKING_URI store, else mlflow.db here; W&B: offline in the run"
        " directory unless logged in. Each is an optional extra: pip install -e '.[NAME]'.",
    ),
]

# ---- train -----------------------------------------------------------------------------------------------------------
Model = Annotated[
    str,
    Opt(metavar="MODEL", help="open_clip architecture (e.g. ViT-B-32), hf-hub:ORG/REPO, local-dir:PATH, or builtin."),
]
Pretrained = Annotated[
    str | None, Opt(metavar="TAG|FILE", help="Pretrained tag (e.g. laion2b_s34b_b79k) or checkpoint file.")
]
TrainData = Annotated[
    str,
    Opt(
        metavar="SPEC",
        help="Training data: builtin, an image folder (a sub-folder per class), a CSV path,label[,group], or a suite"
        " SUITE:ROOT / SUITE/VARIANT:ROOT (cli.py datasets lists them).",
    ),
]
ValData = Annotated[
    str | None, Opt(metavar="SPEC", help="Validation data; default: a suite's own split, else 10% held out of --data.")
]
Classnames = Annotated[Path | None, Opt(metavar="FILE", help="Class-names file: 'label[,display name]' per line.")]
Template = Annotated[list[str], Opt(metavar="TEXT", help="Prompt template with {} (repeatable).")]
TemplatesFile = Annotated[Path | None, Opt(metavar="FILE", help="File with one prompt template per line.")]
Recipe = Annotated[
    str | None,
    Opt(
        metavar="NAME",
        help=f"A named recipe ({', '.join(RECIPES)}; NAME+wise[ALPHA] adds WiSE-FT). Default: {RECOMMENDED}, the "
        "recommended one (README), unless a method option (--loss, --head, ...) is given.",
    ),
]
Loss = Annotated[
    str, Opt(metavar=choices(METHODS), help=" | ".join(f"{k}: {m.description}" for k, m in METHODS.items()) + ".")
]
Head = Annotated[
    str | None,
    Opt(
        metavar=choices(HEAD_KINDS),
        help="text (fixed text classifier) | trainable (initialised from it, renormalized, learned scale) | linear"
        " (free f A^T + b, TeS's head); default: the loss's first (text, linear for tes).",
    ),
]
HeadInit = Annotated[str, Opt(metavar=choices(HEAD_INITS), help="Linear head's start: text (zero-shot) | random.")]
HeadLrScale = Annotated[
    float | None,
    Opt(
        metavar="X", help="Trainable head's learning rate over the encoder's; default: the head at 1e-3 (x100 at 1e-5)."
    ),
]
LpFraction = Annotated[
    float,
    Opt(
        metavar="0..1",
        help="LP-FT: share of the steps that fit the head with the encoder frozen before fine-tuning all.",
    ),
]
TrainBatch = Annotated[
    int,
    Opt(
        metavar="INT",
        help="Images per step; per process under torchrun (global batch = batch x processes x accumulation).",
    ),
]
AccumSteps = Annotated[int, Opt(metavar="INT", help="Gradient accumulation: micro-batches per optimizer step.")]
Lr = Annotated[float | None, Opt(metavar="LR", help="Encoder learning rate; default 1e-5 (paper), 3e-4 for builtin.")]
Augment = Annotated[
    str, Opt(metavar=choices(AUGMENTATIONS), help="none | randaugment (RandAugment(2, 9) as in the paper).")
]
TeacherCache = Annotated[bool, Opt(help="Without augmentation, compute teacher logits once and reuse them.")]
Device = Annotated[
    str,
    Opt(
        metavar="[auto|cpu|cuda|cuda:N]",
        help="auto | cpu | cuda | cuda:N (under torchrun: auto or cuda, each process on its LOCAL_RANK's GPU).",
    ),
]
Autocast = Annotated[
    str,
    Opt(
        metavar=choices(AUTOCASTS),
        help="auto (bf16 autocast on Ampere+ GPUs, fp16 on older ones, fp32 on CPU) | fp32 | bf16 (autocast, also on"
        " CPU) | fp16 (CUDA).",
    ),
]
Strict = Annotated[bool, Opt(help="Fail on an unreadable image instead of skipping and counting it.")]
LogEvery = Annotated[int, Opt(metavar="N", help="Write the loss terms to metrics.jsonl every N steps (and at step 1).")]
ValPerEpoch = Annotated[int, Opt(metavar="N", help="Validations per epoch (ProReg's code: 2); each can be the best.")]
WeightDecay = Annotated[float, Opt(metavar="FLOAT", help="AdamW weight decay.")]
WarmupFraction = Annotated[float, Opt(metavar="0..1", help="Share of the optimizer steps spent warming the rate up.")]
WarmupSteps = Annotated[int | None, Opt(metavar="INT", help="Warmup in optimizer steps (WiSE-FT: 500), instead.")]
Decay = Annotated[
    str, Opt(metavar=choices(DECAYS), help="The rate's decay after warmup: cosine | linear (ProReg's code).")
]
RunOut = Annotated[Path | None, Opt(metavar="DIR", help="Run directory; default runs/<time>-<recipe or loss>-s<seed>.")]
Resume = Annotated[
    Path | None,
    Opt(
        metavar="RUN",
        help="Continue the interrupted (or diverged) run in this directory, with its config; only --lr, --workers"
        " and --device may change.",
    ),
]

# ---- eval ------------------------------------------------------------------------------------------------------------
EvalCheckpoint = Annotated[
    str | None,
    Opt(
        metavar="RUN|builtin",
        help="Run directory, or builtin: the zero-shot built-in model, made for the classes of --data (a suite's own"
        " classes and templates).",
    ),
]
ZeroShot = Annotated[
    str | None,
    Opt(
        "--zero-shot",
        metavar="MODEL",
        help="A pretrained open_clip model used zero-shot over the classes of --data (a suite's own classes and"
        " templates): ViT-B-32, hf-hub:ORG/REPO, local-dir:PATH or builtin; its weights with --pretrained.",
    ),
]
ZeroShotWeights = Annotated[
    str | None,
    Opt(metavar="TAG|FILE", help="With --zero-shot: the model's pretrained weights (a tag such as openai, or a file)."),
]
Onnx = Annotated[Path | None, Opt(metavar="FILE", help="Exported ONNX model.")]
Engine = Annotated[Path | None, Opt(metavar="FILE", help="TensorRT engine (.plan).")]
Triton = Annotated[
    str | None,
    Opt(metavar="URL", help="A Triton Inference Server: http://HOST:PORT, grpc://HOST:PORT or HOST:PORT (HTTP)."),
]
TritonTimeout = Annotated[
    float | None,
    Opt(
        "--timeout",
        metavar="SECONDS",
        help="With --triton: how long to wait for each answer (default 300: a first request may wait for the "
        "model to warm up).",
    ),
]
TritonModel = Annotated[
    str | None, Opt(metavar="NAME", help=f"With --triton: the model's name there (default {TRITON_DEFAULT_MODEL}).")
]
Reference = Annotated[
    str | None,
    Opt(
        metavar="MODEL",
        help="Compare with this run directory, builtin, .onnx, .plan or Triton model (http://HOST:PORT/v2/models/NAME)"
        " (agreement, logit drift, drop).",
    ),
]
EvalMaxDrop = Annotated[
    float | None, Opt("--max-drop", metavar="PP", help="With --reference: fail if any set's top-1 drops more (pp).")
]
Runtime = Annotated[
    str | None,
    Opt(
        metavar="NAME",
        help="With --onnx: the runtime that runs it, of those that run ONNX files (onnxruntime, openvino).",
    ),
]
InferencePrecision = Annotated[
    str | None,
    Opt(
        metavar="NAME",
        help="The inference precision, for a runtime that offers one (openvino: fp32, the default, or bf16).",
    ),
]
ReferenceRuntime = Annotated[
    str | None, Opt(metavar="NAME", help="With a --reference .onnx file: its runtime (as --runtime).")
]
Provider = Annotated[
    str | None,
    Opt(
        metavar="NAME",
        help="With --onnx: the execution provider, for a runtime that offers a choice. ONNX Runtime: auto (default:"
        " TensorRT, CUDA, then the CPU, as the installed build has them; model.int8-cpu.onnx on the CPU) | cpu | cuda"
        " | tensorrt.",
    ),
]

# ---- bench -----------------------------------------------------------------------------------------------------------
ExportFolder = Annotated[Path, Arg(metavar="FOLDER", help="An export folder: a run directory after export.")]
BenchReference = Annotated[
    str | None,
    Opt("--reference", metavar="MODEL", help="The model the artifacts came from; default: the folder's run."),
]
BenchOut = Annotated[
    Path, Opt("--out", metavar="FILE", help="Where the reports go: beside it, as <stem>-<row>.json (.md, .png).")
]

# ---- export ----------------------------------------------------------------------------------------------------------
Fp16 = Annotated[bool, Opt("--fp16", help="Also model.fp16.onnx: FP16 tower; norms, softmax, head FP32.")]
Int8 = Annotated[
    bool,
    Opt(
        "--int8",
        help="Also the INT8 copies from calibration: model.int8.onnx (symmetric Q/DQ, for TensorRT) and "
        "model.int8-cpu.onnx (u8 activations, s8 weights: ONNX Runtime's fast form on x86 CPUs).",
    ),
]
CalibData = Annotated[
    str | None,
    Opt(
        metavar="SPEC|FILE",
        help="INT8 calibration images: a dataset SPEC or a .npy [N,3,H,W]; default: the run's training data.",
    ),
]
CalibSize = Annotated[int, Opt(metavar="INT", help="INT8: calibration images (class-stratified sample).")]
CalibMethod = Annotated[str, Opt(metavar="[percentile|entropy|minmax]", help="INT8: percentile | entropy | minmax.")]
Int8Keep = Annotated[
    str, Opt(metavar="PARTS", help=f"INT8: graph parts kept in FP32 ({', '.join(PARTS)}; '' for none).")
]
ExportOut = Annotated[Path | None, Opt("--out", metavar="DIR", help="Output directory; default: the run directory.")]
ParityData = Annotated[
    str | None, Opt(metavar="SPEC", help="Images for the parity check; default: the run's validation data.")
]
MinBatch = Annotated[int, Opt(metavar="INT", help="TensorRT profile: smallest batch.")]
OptBatch = Annotated[int, Opt(metavar="INT", help="TensorRT profile: batch to tune for.")]
MaxBatch = Annotated[int, Opt(metavar="INT", help="TensorRT profile: largest batch.")]
WorkspaceGib = Annotated[float, Opt(metavar="GIB", help="TensorRT builder workspace limit (GiB).")]
TimingCache = Annotated[Path | None, Opt(metavar="FILE", help="TensorRT timing cache file, reused and updated.")]
VersionCompatible = Annotated[bool, Opt(help="TensorRT engine that later TensorRT versions can run.")]
TritonRepo = Annotated[
    Path | None,
    Opt(
        metavar="DIR",
        help="Also a Triton model repository here: <name>/config.pbtxt, <name>/1/model.onnx, one per artifact.",
    ),
]
TritonName = Annotated[str, Opt(metavar="NAME", help="Triton: the FP32 model's name (others add _fp16...).")]
TritonMaxBatch = Annotated[int, Opt(metavar="INT", help="Triton: ONNX models' max_batch_size.")]
TritonGpu = Annotated[bool, Opt("--triton-gpu", help="Triton: ONNX models on the GPU (default KIND_CPU).")]

# ---- serve -----------------------------------------------------------------------------------------------------------
Artifact = Annotated[
    str, Arg(metavar="ARTIFACT", help="An exported .onnx, a .plan engine, a run directory, or builtin.")
]
ServeName = Annotated[str, Opt("--name", metavar="NAME", help="The model's name on the server.")]
Host = Annotated[str, Opt(metavar="ADDRESS", help="Address to listen on (0.0.0.0: every interface).")]
HttpPort = Annotated[int, Opt(metavar="PORT", help="HTTP port (0: any free port, as the other two).")]
GrpcPort = Annotated[int, Opt(metavar="PORT", help="gRPC port.")]
MetricsPort = Annotated[int, Opt(metavar="PORT", help="Prometheus metrics port.")]
ServeMaxBatch = Annotated[int, Opt("--max-batch-size", metavar="INT", help="Largest batch the dynamic batcher forms.")]

# ---- pipeline, wise, compare -----------------------------------------------------------------------------------------
PipelineRecipe = Annotated[
    str | None,
    Opt(
        "--recipe",
        metavar="NAME",
        help=f"Training recipe ({', '.join(RECIPES)}, NAME+wise[ALPHA]); default: {RECOMMENDED} (README).",
    ),
]
PipelineLoss = Annotated[
    str | None,
    Opt("--loss", metavar=choices(METHODS), help=" | ".join(METHODS) + ": that loss alone, instead of a recipe."),
]
Alpha = Annotated[
    str,
    Opt(
        metavar="ALPHA[,ALPHA...]",
        help="Weight of the fine-tuned model, in [0, 1]; several (comma-separated) sweep: each is evaluated and the "
        "best on validation is written, with a table and an ID-vs-OOD plot.",
    ),
]
Base = Annotated[
    Path | None,
    Opt(
        metavar="RUN",
        help="Interpolate towards this run (same architecture and classes) instead of the zero-shot model.",
    ),
]
SweepData = Annotated[
    list[str],
    Opt(
        "--data",
        metavar="SPEC",
        help="Sets the sweep reports (as eval --data); default: the built-in ID and OOD sets for built-in runs.",
    ),
]
WiseOut = Annotated[
    Path | None, Opt("--out", metavar="DIR", help="New run directory; default: CHECKPOINT-wise[ALPHA] beside it.")
]
Recipes = Annotated[
    str, Opt(metavar="NAME[,NAME...]", help=f"Recipes to train, comma-separated (any of {', '.join(RECIPES)}).")
]
Seeds = Annotated[
    str, Opt(metavar="INT[,INT...]", help="Seeds, comma-separated: every recipe is trained once per seed.")
]
CompareData = Annotated[str, Opt("--data", metavar="SPEC", help="Training data (as train --data).")]
EvalData = Annotated[
    list[str],
    Opt(metavar="SPEC", help="ID and OOD sets the recipes are chosen on (as eval --data); default: the built-in ones."),
]
Holdout = Annotated[
    list[str],
    Opt(metavar="SPEC", help="Shifts reported apart, tuned for by nobody; default for built-in data: builtin-holdout."),
]
SweptAlphas = Annotated[
    str, Opt("--alpha", metavar="ALPHA[,ALPHA...]", help="WiSE-FT alphas evaluated per run (besides 0 and 1).")
]
WiseAlpha = Annotated[float, Opt(metavar="ALPHA", help="The leaderboard's fixed-alpha WiSE-FT row.")]
CompareOut = Annotated[Path, Opt("--out", metavar="DIR", help="Folder for the runs (cells/) and the leaderboard.")]

# ---- pretrain-builtin, checks ----------------------------------------------------------------------------------------
PretrainSteps = Annotated[
    int, Opt(metavar="INT", help="Optimizer steps (batch 256); 700 makes zero-shot useful but beatable.")
]
PretrainOut = Annotated[
    Path | None,
    Opt("--out", metavar="DIR", help="Output folder (an open_clip local-dir:), default runs/pretrain-builtin."),
]
ReplaceBuiltin = Annotated[
    bool, Opt("--replace-builtin", help="Write over the packaged built-in model (common/assets/builtin) instead.")
]
Quick = Annotated[bool, Opt("--quick", help="Skip the training checks; the exports then come from a one-step CPU run.")]
ChecksJson = Annotated[
    Path | None, Opt("--json", metavar="FILE", help="Also write the environment and every row to this JSON file.")
]
Timeout = Annotated[
    float | None,
    Opt(
        metavar="SECONDS",
        help="Seconds each check may take before it is reported as hung (default: the check's own, 300-900).",
    ),
]
Keep = Annotated[
    Path | None,
    Opt(
        metavar="DIR",
        help="Keep the checks' runs, artifacts and log (checks.log) in this folder; default: a temporary one.",
    ),
]
