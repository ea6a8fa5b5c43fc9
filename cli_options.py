"""The command line's options, each declared once (typer's Annotated form) and shared by the commands that take it;
cli.py's commands list them with their defaults. Help texts only (and --version's answer): no option is checked here
(the objects and functions that take a value check it, before anything is read or written)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from common.artifact import TRITON_DEFAULT_MODEL
from common.graph_scopes import PARTS
from trackers import TRACKERS
from train.methods import METHODS
from train.recipes import RECIPES, RECOMMENDED

Opt, Arg = typer.Option, typer.Argument


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
        help="builtin | builtin:SPLIT | \\[id:|ood:]PATH | SUITE:ROOT | SUITE/VARIANT:ROOT (repeatable; cli.py"
        " datasets lists the suites); default: the built-in ID and OOD sets."
    ),
]
BatchSize = Annotated[int, Opt(help="Images per batch.")]
Workers = Annotated[int, Opt(help="DataLoader worker processes.")]
Seed = Annotated[int, Opt(help="Random seed: data order, augmentation, initialization.")]
Epochs = Annotated[int, Opt(help="Epochs (the paper's recipe uses 10).")]
MaxSteps = Annotated[int | None, Opt(help="Stop after this many optimizer steps (overrides --epochs).")]
ReportOut = Annotated[Path, Opt(help="report.json path; report.md and report.png go beside it.")]
AllowOverlap = Annotated[bool, Opt(help="Evaluate on images the model was trained on (a warning instead of an error).")]
MaxDrop = Annotated[float, Opt(help="Accuracy-drop gate (pp) for FP32/FP16 artifacts against torch.")]
MaxDropInt8 = Annotated[float, Opt(help="Accuracy-drop gate (pp) for INT8 artifacts (see BENCHMARKS.md).")]
Checkpoint = Annotated[Path, Opt(help="Run directory.")]
Log = Annotated[
    list[str],
    Opt(
        help=f"Log to an experiment tracker too (repeatable): {', '.join(TRACKERS)}. TensorBoard: event files in the"
        " run directory; MLflow: the MLFLOW_TRACKING_URI store, else mlflow.db here; W&B: offline in the run"
        " directory unless logged in. Each is an optional extra: pip install -e '.[NAME]'.",
    ),
]

# ---- train -----------------------------------------------------------------------------------------------------------
Model = Annotated[str, Opt(help="open_clip architecture (e.g. ViT-B-32), hf-hub:ORG/REPO, local-dir:PATH, or builtin.")]
Pretrained = Annotated[str | None, Opt(help="Pretrained tag (e.g. laion2b_s34b_b79k) or checkpoint file.")]
TrainData = Annotated[
    str,
    Opt(
        help="Training data: builtin, an image folder (a sub-folder per class), a CSV path,label[,group], or a suite"
        " SUITE:ROOT / SUITE/VARIANT:ROOT (cli.py datasets lists them)."
    ),
]
ValData = Annotated[str | None, Opt(help="Validation data; default: a suite's own split, else 10% held out of --data.")]
Classnames = Annotated[Path | None, Opt(help="Class-names file: 'label[,display name]' per line.")]
Template = Annotated[list[str], Opt(help="Prompt template with {} (repeatable).")]
TemplatesFile = Annotated[Path | None, Opt(help="File with one prompt template per line.")]
Recipe = Annotated[
    str | None,
    Opt(
        help=f"A named recipe ({', '.join(RECIPES)}; NAME+wise[ALPHA] adds WiSE-FT). Default: {RECOMMENDED}, the "
        "recommended one (README), unless a method option (--loss, --head, ...) is given."
    ),
]
Loss = Annotated[str, Opt(help=" | ".join(f"{k}: {m.description}" for k, m in METHODS.items()) + ".")]
Head = Annotated[
    str | None,
    Opt(
        help="text (fixed text classifier) | trainable (initialised from it, renormalized, learned scale) | linear"
        " (free f A^T + b, TeS's head); default: the loss's first (text, linear for tes)."
    ),
]
HeadInit = Annotated[str, Opt(help="Linear head's start: text (zero-shot) | random.")]
HeadLrScale = Annotated[
    float | None,
    Opt(help="Trainable head's learning rate over the encoder's; default: the head at 1e-3 (x100 at 1e-5)."),
]
LpFraction = Annotated[
    float, Opt(help="LP-FT: share of the steps that fit the head with the encoder frozen before fine-tuning all.")
]
TrainBatch = Annotated[
    int, Opt(help="Images per step; per process under torchrun (global batch = batch x processes x accumulation).")
]
AccumSteps = Annotated[int, Opt(help="Gradient accumulation: micro-batches per optimizer step.")]
Lr = Annotated[float | None, Opt(help="Encoder learning rate; default 1e-5 (paper), 3e-4 for builtin.")]
Augment = Annotated[str, Opt(help="none | randaugment (RandAugment(2, 9) as in the paper).")]
TeacherCache = Annotated[bool, Opt(help="Without augmentation, compute teacher logits once and reuse them.")]
Device = Annotated[
    str, Opt(help="auto | cpu | cuda | cuda:N (under torchrun: auto or cuda, each process on its LOCAL_RANK's GPU).")
]
Autocast = Annotated[
    str,
    Opt(
        help="auto (bf16 autocast on Ampere+ GPUs, fp16 on older ones, fp32 on CPU) | fp32 | bf16 (autocast, also on"
        " CPU) | fp16 (CUDA)."
    ),
]
Strict = Annotated[bool, Opt(help="Fail on an unreadable image instead of skipping and counting it.")]
LogEvery = Annotated[int, Opt(help="Write the loss terms to metrics.jsonl every N steps (and at step 1).")]
ValPerEpoch = Annotated[int, Opt(help="Validations per epoch (ProReg's code: 2); each can be the best.")]
WeightDecay = Annotated[float, Opt(help="AdamW weight decay.")]
WarmupFraction = Annotated[float, Opt(help="Share of the optimizer steps spent warming the rate up.")]
WarmupSteps = Annotated[int | None, Opt(help="Warmup in optimizer steps (WiSE-FT: 500), instead.")]
Decay = Annotated[str, Opt(help="The rate's decay after warmup: cosine | linear (ProReg's code).")]
RunOut = Annotated[Path | None, Opt(help="Run directory; default runs/<time>-<recipe or loss>-s<seed>.")]
Resume = Annotated[
    Path | None,
    Opt(
        help="Continue the interrupted (or diverged) run in this directory, with its config; only --lr, --workers"
        " and --device may change."
    ),
]

# ---- eval ------------------------------------------------------------------------------------------------------------
EvalCheckpoint = Annotated[
    str | None,
    Opt(
        help="Run directory, or builtin: the zero-shot built-in model, made for the classes of --data (a suite's own"
        " classes and templates)."
    ),
]
ZeroShot = Annotated[
    str | None,
    Opt(
        "--zero-shot",
        help="A pretrained open_clip model used zero-shot over the classes of --data (a suite's own classes and"
        " templates): ViT-B-32, hf-hub:ORG/REPO, local-dir:PATH or builtin; its weights with --pretrained.",
    ),
]
ZeroShotWeights = Annotated[
    str | None, Opt(help="With --zero-shot: the model's pretrained weights (a tag such as openai, or a file).")
]
Onnx = Annotated[Path | None, Opt(help="Exported ONNX model.")]
Engine = Annotated[Path | None, Opt(help="TensorRT engine (.plan).")]
Triton = Annotated[
    str | None, Opt(help="A Triton Inference Server: http://HOST:PORT, grpc://HOST:PORT or HOST:PORT (HTTP).")
]
TritonModel = Annotated[
    str | None, Opt(help=f"With --triton: the model's name there (default {TRITON_DEFAULT_MODEL}).")
]
Reference = Annotated[
    str | None,
    Opt(
        help="Compare with this run directory, builtin, .onnx, .plan or Triton model (http://HOST:PORT/v2/models/NAME)"
        " (agreement, logit drift, drop)."
    ),
]
EvalMaxDrop = Annotated[
    float | None, Opt("--max-drop", help="With --reference: fail if any set's top-1 drops more (pp).")
]
Runtime = Annotated[
    str | None, Opt(help="With --onnx: the runtime that runs it, of those that run ONNX files (onnxruntime, openvino).")
]
InferencePrecision = Annotated[
    str | None,
    Opt(help="The inference precision, for a runtime that offers one (openvino: fp32, the default, or bf16)."),
]
ReferenceRuntime = Annotated[str | None, Opt(help="With a --reference .onnx file: its runtime (as --runtime).")]
Provider = Annotated[
    str | None,
    Opt(
        help="With --onnx: the execution provider, for a runtime that offers a choice. ONNX Runtime: auto (default:"
        " TensorRT, CUDA, then the CPU, as the installed build has them; model.int8-cpu.onnx on the CPU) | cpu | cuda"
        " | tensorrt."
    ),
]

# ---- bench -----------------------------------------------------------------------------------------------------------
ExportFolder = Annotated[Path, Arg(help="An export folder: a run directory after export.")]
BenchReference = Annotated[
    str | None, Opt("--reference", help="The model the artifacts came from; default: the folder's run.")
]
BenchOut = Annotated[Path, Opt("--out", help="Where the reports go: beside it, as <stem>-<row>.json (.md, .png).")]

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
    Opt(help="INT8 calibration images: a dataset SPEC or a .npy [N,3,H,W]; default: the run's training data."),
]
CalibSize = Annotated[int, Opt(help="INT8: calibration images (class-stratified sample).")]
CalibMethod = Annotated[str, Opt(help="INT8: percentile | entropy | minmax.")]
Int8Keep = Annotated[str, Opt(help=f"INT8: graph parts kept in FP32 ({', '.join(PARTS)}; '' for none).")]
ExportOut = Annotated[Path | None, Opt("--out", help="Output directory; default: the run directory.")]
ParityData = Annotated[str | None, Opt(help="Images for the parity check; default: the run's validation data.")]
MinBatch = Annotated[int, Opt(help="TensorRT profile: smallest batch.")]
OptBatch = Annotated[int, Opt(help="TensorRT profile: batch to tune for.")]
MaxBatch = Annotated[int, Opt(help="TensorRT profile: largest batch.")]
WorkspaceGib = Annotated[float, Opt(help="TensorRT builder workspace limit (GiB).")]
TimingCache = Annotated[Path | None, Opt(help="TensorRT timing cache file, reused and updated.")]
VersionCompatible = Annotated[bool, Opt(help="TensorRT engine that later TensorRT versions can run.")]
TritonRepo = Annotated[
    Path | None,
    Opt(help="Also a Triton model repository here: <name>/config.pbtxt, <name>/1/model.onnx, one per artifact."),
]
TritonName = Annotated[str, Opt(help="Triton: the FP32 model's name (others add _fp16...).")]
TritonMaxBatch = Annotated[int, Opt(help="Triton: ONNX models' max_batch_size.")]
TritonGpu = Annotated[bool, Opt("--triton-gpu", help="Triton: ONNX models on the GPU (default KIND_CPU).")]

# ---- serve -----------------------------------------------------------------------------------------------------------
Artifact = Annotated[str, Arg(help="An exported .onnx, a .plan engine, a run directory, or builtin.")]
ServeName = Annotated[str, Opt("--name", help="The model's name on the server.")]
Host = Annotated[str, Opt(help="Address to listen on (0.0.0.0: every interface).")]
HttpPort = Annotated[int, Opt(help="HTTP port (0: any free port, as the other two).")]
GrpcPort = Annotated[int, Opt(help="gRPC port.")]
MetricsPort = Annotated[int, Opt(help="Prometheus metrics port.")]
ServeMaxBatch = Annotated[int, Opt("--max-batch-size", help="Largest batch the dynamic batcher forms.")]

# ---- pipeline, wise, compare -----------------------------------------------------------------------------------------
PipelineRecipe = Annotated[
    str | None,
    Opt("--recipe", help=f"Training recipe ({', '.join(RECIPES)}, NAME+wise[ALPHA]); default: {RECOMMENDED} (README)."),
]
PipelineLoss = Annotated[
    str | None, Opt("--loss", help=" | ".join(METHODS) + ": that loss alone, instead of a recipe.")
]
Alpha = Annotated[
    str,
    Opt(
        help="Weight of the fine-tuned model, in [0, 1]; several (comma-separated) sweep: each is evaluated and the "
        "best on validation is written, with a table and an ID-vs-OOD plot."
    ),
]
Base = Annotated[
    Path | None,
    Opt(help="Interpolate towards this run (same architecture and classes) instead of the zero-shot model."),
]
SweepData = Annotated[
    list[str],
    Opt(
        "--data",
        help="Sets the sweep reports (as eval --data); default: the built-in ID and OOD sets for built-in runs.",
    ),
]
WiseOut = Annotated[Path | None, Opt("--out", help="New run directory; default: CHECKPOINT-wise[ALPHA] beside it.")]
Recipes = Annotated[str, Opt(help=f"Recipes to train, comma-separated (any of {', '.join(RECIPES)}).")]
Seeds = Annotated[str, Opt(help="Seeds, comma-separated: every recipe is trained once per seed.")]
CompareData = Annotated[str, Opt("--data", help="Training data (as train --data).")]
EvalData = Annotated[
    list[str],
    Opt(help="ID and OOD sets the recipes are chosen on (as eval --data); default: the built-in ones."),
]
Holdout = Annotated[
    list[str],
    Opt(help="Shifts reported apart, tuned for by nobody; default for built-in data: builtin-holdout."),
]
SweptAlphas = Annotated[str, Opt("--alpha", help="WiSE-FT alphas evaluated per run (besides 0 and 1).")]
WiseAlpha = Annotated[float, Opt(help="The leaderboard's fixed-alpha WiSE-FT row.")]
CompareOut = Annotated[Path, Opt("--out", help="Folder for the runs (cells/) and the leaderboard.")]

# ---- pretrain-builtin, checks ----------------------------------------------------------------------------------------
PretrainSteps = Annotated[int, Opt(help="Optimizer steps (batch 256); 700 makes zero-shot useful but beatable.")]
PretrainOut = Annotated[Path | None, Opt("--out", help="Output folder; default: the committed common/assets/builtin.")]
Quick = Annotated[bool, Opt("--quick", help="Skip the training checks; the exports then come from a one-step CPU run.")]
ChecksJson = Annotated[Path | None, Opt("--json", help="Also write the environment and every row to this JSON file.")]
Timeout = Annotated[
    float | None,
    Opt(help="Seconds each check may take before it is reported as hung (default: the check's own, 300-900)."),
]
Keep = Annotated[
    Path | None,
    Opt(help="Keep the checks' runs, artifacts and log (checks.log) in this folder; default: a temporary one."),
]
