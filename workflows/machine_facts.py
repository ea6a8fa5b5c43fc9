"""What this machine is, as `cli.py checks` prints it: Python, torch and its CUDA, the GPUs and their driver, ONNX
Runtime and its execution providers, OpenVINO, TensorRT, Triton's client and server packages, the CPU's features
and the free disk where runs are written. Every fact is read, never assumed; one that cannot be read says why."""

from __future__ import annotations

import importlib.metadata
import os
import platform
import shutil
import subprocess
from pathlib import Path

from common.cpu import cpu_flags, cpu_model

# The CPU features the CPU paths use: AVX2 and AVX-512 kernels, VNNI for INT8, BF16 and AMX for bf16.
CPU_FEATURES = ("avx2", "avx512f", "avx512_vnni", "avx512_bf16", "amx_bf16", "amx_int8")


def machine_facts(runs_root: Path) -> dict[str, str]:
    """Name -> one line, in the order they are printed."""
    return {
        "python": f"{platform.python_version()} ({platform.python_implementation()}, {platform.system()} "
        f"{platform.machine()})",
        "cpu": _cpu(),
        "torch": _torch(),
        "gpus": _gpus(),
        "nvidia driver": _driver(),
        "onnxruntime": _onnxruntime(),
        "openvino": _version("openvino"),
        "tensorrt": _tensorrt(),
        "triton": f"tritonclient {_version('tritonclient')}, pytriton {_version('nvidia-pytriton')}",
        "free disk": _free_disk(runs_root),
    }


def _version(distribution: str) -> str:
    try:
        return importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


def _cpu() -> str:
    flags = cpu_flags()
    features = [f for f in CPU_FEATURES if f in flags]
    return f"{cpu_model()}, {os.cpu_count()} cores; {' '.join(features) or 'none of ' + ', '.join(CPU_FEATURES)}"


def _torch() -> str:
    import torch

    build = f"CUDA {torch.version.cuda}" if torch.version.cuda else "CPU-only build"
    cudnn = torch.backends.cudnn.version() if torch.version.cuda else None
    return f"{torch.__version__} ({build}{f', cuDNN {cudnn}' if cudnn else ''})"


def _gpus() -> str:
    import torch

    if not torch.cuda.is_available():
        return "none visible"
    gpus = []
    for index in range(torch.cuda.device_count()):
        props = torch.cuda.get_device_properties(index)
        gpus.append(f"cuda:{index} {props.name} ({props.total_memory / 2**30:.0f} GiB, sm {props.major}.{props.minor})")
    return "; ".join(gpus)


def _driver() -> str:
    if shutil.which("nvidia-smi") is None:
        return "no nvidia-smi (no NVIDIA driver installed)"
    try:
        done = subprocess.run(
            ["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"],
            capture_output=True,
            text=True,
            timeout=20,
        )
    except subprocess.TimeoutExpired:
        return "nvidia-smi did not answer in 20 s"
    lines = done.stdout.split()
    return lines[0] if done.returncode == 0 and lines else f"nvidia-smi failed: {done.stderr.strip()[:120]}"


def _onnxruntime() -> str:
    import onnxruntime as ort

    providers = ", ".join(p.removesuffix("ExecutionProvider") for p in ort.get_available_providers())
    return f"{ort.__version__} (execution providers: {providers})"


def _tensorrt() -> str:
    from common.tensorrt_compat import TensorRTUnavailable, import_tensorrt, tensorrt_missing_reason

    try:
        version = str(import_tensorrt().__version__)
    except TensorRTUnavailable:
        return "not installed"
    return version if tensorrt_missing_reason() is None else f"{version} (no engine runs here: no CUDA GPU visible)"


def _free_disk(runs_root: Path) -> str:
    folder = runs_root.resolve()
    while not folder.exists():
        folder = folder.parent
    usage = shutil.disk_usage(folder)
    return f"{usage.free / 2**30:.1f} GiB free of {usage.total / 2**30:.0f} GiB at {runs_root}"
