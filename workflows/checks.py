"""`cli.py checks`: what this machine can do, proven end to end on the built-in model and benchmark.

Each check is one path of the project on this machine: training on the CPU, on a GPU with autocast and under
torchrun; export to ONNX FP32, FP16 and INT8; ONNX Runtime on each execution provider; OpenVINO; TensorRT engines
built and run the way `eval --engine` runs them. Every artifact is compared with the torch model it came from by the
gates `pipeline` uses. A check first says whether it can run here (and if not, what would make it possible); then
it runs in a worker process under a time limit, so that a hung driver is reported and the worker replaced instead of
waited on. A check that needs another's output (the trained run, the ONNX files) is skipped when that one did not
pass.
"""

from __future__ import annotations

import functools
import math
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from common.artifact import engine_file, exported_files, onnx_file
from workflows.check_worker import Check, CheckFailed, Unavailable

# Training steps of the training checks: the exported run takes 30, enough to leave the few-step transient in which
# INT8 rounding flips the most close calls (the worst drop was 1.25 pp of the 1.5 pp gate after 4 steps, 0.83 after
# 30 or after 1); torchrun's runs only show that the processes train together.
STEPS, DDP_STEPS = 30, 4
RUN, EXPORT = "run", "export"  # the work folder's trained run and export folder


# ------------------------------------------------------------------------------------------------- what it needs


def needs_gpu() -> None:
    _needs_gpus(1)


def needs_two_gpus() -> None:
    _needs_gpus(2)


def needs_two_cores() -> None:
    if (os.cpu_count() or 1) < 2:
        raise Unavailable("needs 2 CPU cores")


def needs_tensorrt() -> None:
    from common.tensorrt_compat import tensorrt_missing_reason

    why = tensorrt_missing_reason()
    if why:  # its first clause; then how to get it
        raise Unavailable(f"{why.split(':')[0]}: on a machine with an NVIDIA GPU, pip install -e '.[tensorrt]'")


def _needs_gpus(count: int) -> None:
    import torch

    from common.models import cuda_missing_reason

    why = cuda_missing_reason()
    if why:
        raise Unavailable(why)
    if torch.cuda.device_count() < count:
        raise Unavailable(f"needs {count} GPUs, {torch.cuda.device_count()} visible")


# ---------------------------------------------------------------------------------------------------- training


def train_cpu(work: Path, quick: bool) -> str:
    steps = 1 if quick else STEPS
    detail = _train(work / RUN, "cpu", steps)
    return f"{detail} (--quick: a run to export, no training check)" if quick else detail


def train_cuda(work: Path, quick: bool) -> str:
    return _train(work / "run-cuda", "cuda", STEPS)


def _train(out: Path, device: str, steps: int) -> str:
    from common.models import pick_device
    from train.config import TrainConfig
    from train.session import training_dtype
    from train.trainer import train

    cfg = TrainConfig(max_steps=steps, batch_size=32, device=device, log_every=1, num_workers=0)
    run = train(cfg, out)
    losses = [row["loss"] for row in run.metrics() if "loss" in row]
    if len(losses) != steps or not all(math.isfinite(loss) for loss in losses):
        raise CheckFailed(f"expected {steps} finite losses, got {losses}")
    dtype = training_dtype(pick_device(device), cfg.autocast)
    precision = "fp32" if dtype is None else f"{str(dtype).removeprefix('torch.')} autocast"
    return f"{steps} steps on {device} ({precision}), loss {losses[0]:.3f} -> {losses[-1]:.3f}"


def torchrun_cpu(work: Path, quick: bool) -> str:
    return _torchrun(work / "run-ddp-cpu", "cpu")


def torchrun_gpus(work: Path, quick: bool) -> str:
    return _torchrun(work / "run-ddp-gpu", "cuda")


def _torchrun(out: Path, device: str) -> str:
    """`train` under torchrun with 2 processes (gloo on the CPU, NCCL between GPUs), the way README starts it."""
    from common.run import open_run

    cli = Path(__file__).resolve().parents[1] / "cli.py"
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2", str(cli)]
    command += ["train", "--max-steps", str(DDP_STEPS), "--batch-size", "16", "--log-every", "1"]
    command += ["--device", device, "--out", str(out)]
    done = subprocess.run(command, capture_output=True, text=True, timeout=600)
    if done.returncode != 0:
        lines = [line for line in (done.stderr + done.stdout).splitlines() if line.strip()]
        error = next((line for line in lines if line.startswith("error:")), lines[-1] if lines else "no output")
        raise CheckFailed(f"torchrun exited {done.returncode}: {error}")
    run = open_run(out)
    losses = [row["loss"] for row in run.metrics() if "loss" in row]
    if len(losses) != DDP_STEPS or not all(math.isfinite(loss) for loss in losses) or run.record.parallel is None:
        raise CheckFailed(f"expected {DDP_STEPS} finite losses from a 2-process run, got {losses}")
    backend = "nccl" if device == "cuda" else "gloo"
    return f"{DDP_STEPS} steps of global batch {run.record.parallel.global_batch} on 2 processes ({backend})"


# ------------------------------------------------------------------------------------------------------ export


def export_onnx(work: Path, quick: bool) -> str:
    """export --fp16 --int8 of the trained run, each file verified against torch on task images."""
    from calib.int8 import Int8Options
    from workflows.export import export_run

    result = export_run(work / RUN, work / EXPORT, fp16=True, int8=Int8Options(), engines=False, log=lambda m: None)
    worst = max(result.parity.values(), key=lambda p: p.max_abs_logit_diff)
    return (
        f"{', '.join(result.onnx)}: parity with torch on {worst.n} images, max |logit diff| up to "
        f"{worst.max_abs_logit_diff:.3g} ({worst.precision}), top-1 agreement >= "
        f"{min(p.top1_agreement for p in result.parity.values()):.1%}"
    )


# -------------------------------------------------------------------------------------------- runtimes, engines


def needs_backend(backend: str, variant: str) -> None:
    """A registered backend's own word on whether `variant` of it can run here."""
    from serve.backends import BACKENDS

    why = BACKENDS[backend].unavailable(variant)
    if why:
        raise Unavailable(why)


def backend_rows(backend: str, variant: str, work: Path, quick: bool) -> str:
    """The exported files the way a registered backend runs them in `variant` (ONNX Runtime: one execution
    provider), each gated against the torch model."""
    from serve.backends import BACKENDS, open_row

    rows = BACKENDS[backend].rows(exported_files(work / EXPORT), variant)
    if not rows:
        raise CheckFailed(f"{backend} ({variant}) runs none of the exported files")
    return _gated(work, {f"{backend} {variant} {row.name}": open_row(backend, row) for row in rows})


def backend_checks() -> list[Check]:
    """One check per registered backend variant (serve.backends.BACKENDS): nothing here names a backend."""
    from serve.backends import BACKENDS

    return [
        Check(
            f"{name} ({variant})",
            functools.partial(backend_rows, name, variant),
            functools.partial(needs_backend, name, variant),
            (EXPORTED,),
            900 if hardware == "tensorrt" else 300,
            hardware=hardware,
        )
        for name, backend in BACKENDS.items()
        for variant, hardware in backend.variants
    ]


def tensorrt_fp16(work: Path, quick: bool) -> str:
    return _tensorrt(work, "fp16")


def tensorrt_int8(work: Path, quick: bool) -> str:
    return _tensorrt(work, "int8")


def _tensorrt(work: Path, name: str) -> str:
    """A TensorRT engine built from an exported file the way `export` builds it, run the way `eval --engine` runs
    it."""
    from export.tensorrt_build import EngineOptions, build_engine
    from serve.backends import open_runner

    source = onnx_file(work / EXPORT, name)
    start = time.perf_counter()
    build_engine(source, engine_file(source), EngineOptions(opt_batch=64, max_batch=256), log=lambda m: None)
    built = time.perf_counter() - start
    return f"built in {built:.0f} s; " + _gated(work, {f"tensorrt {name}": open_runner(engine_file(source))})


def _gated(work: Path, rows: dict[str, Any]) -> str:
    """Each runner of `rows` against the torch model on the built-in ID and OOD sets, gated as `pipeline` gates it
    (INT8 rows at the INT8 limit); CheckFailed naming each row over its gate."""
    from data.specs import resolve_eval_sets
    from serve.backends import open_runner
    from serve.metrics import drop_limit
    from serve.side_by_side import evaluate_side_by_side

    reference = "torch"
    runners = {reference: open_runner(work / RUN), **rows}
    limits: dict[str, float | None] = {row: drop_limit(runner.precision) for row, runner in rows.items()}
    sets = resolve_eval_sets([], runners[reference].spec.classes)
    reports = evaluate_side_by_side(runners, sets, reference, limits)
    gates = {row: gate for row in rows if (gate := reports[row].gate)}  # every row has its limit
    failed = [f"{row} drops {g.worst_drop_pp:+.2f} pp > {g.max_drop_pp} pp" for row, g in gates.items() if not g.passed]
    if failed:
        raise CheckFailed("; ".join(failed))
    worst = max(gates, key=lambda row: gates[row].worst_drop_pp)
    images = sum(entry.n for entry in reports[reference].datasets.values())
    where = ", ".join(sorted({runner.runs_on for runner in rows.values()}))
    return (
        f"{len(rows)} within the pipeline's gates on {images} images (worst drop "
        f"{gates[worst].worst_drop_pp:+.2f} pp, {worst.split()[-1]}; ran on {where})"
    )


EXPORTED = "export onnx (fp32, fp16, int8)"


CHECKS = [
    Check("train (cpu)", train_cpu),
    Check("train (cuda, autocast)", train_cuda, needs_gpu, trains=True, hardware="gpu"),
    Check("train (torchrun, 2 cpu processes)", torchrun_cpu, needs_two_cores, trains=True),
    Check("train (torchrun, 2 gpus)", torchrun_gpus, needs_two_gpus, trains=True, hardware="gpu"),
    Check(EXPORTED, export_onnx, uses=("train (cpu)",)),
    *backend_checks(),
    Check("tensorrt engine (fp16)", tensorrt_fp16, needs_tensorrt, (EXPORTED,), 900, hardware="tensorrt"),
    Check("tensorrt engine (int8)", tensorrt_int8, needs_tensorrt, (EXPORTED,), 900, hardware="tensorrt"),
]


def prerequisites(names: list[str]) -> list[Check]:
    """The checks named and every check they use, in CHECKS order."""
    by_name = {check.name: check for check in CHECKS}
    wanted: set[str] = set()
    todo = list(names)
    while todo:
        name = todo.pop()
        if name not in wanted:
            wanted.add(name)
            todo += by_name[name].uses
    return [check for check in CHECKS if check.name in wanted]
