"""The one place that builds a runner from what the user named.

A backend registers under a name with the artifact suffix (or URL scheme) that selects it; adding one is one runner
module and one entry here. `open_runner` takes a run directory or `builtin` (torch), a `.onnx` file (ONNX Runtime),
a `.plan` engine (TensorRT), a Triton model `http://HOST:PORT/v2/models/NAME` or `grpc://...` (a Triton server,
serve.triton_runner.model_url), or a Run already opened; a backend can also be named explicitly.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from common.errors import check_choice
from common.run import Run, open_run
from common.world import BUILTIN
from serve.runner import Runner


def _torch(source: str, device: str) -> Runner:
    from serve.torch_runner import TorchRunner

    if source == BUILTIN:
        return TorchRunner.builtin_zero_shot(device)
    return TorchRunner.from_run(open_run(source), device)


def _onnxruntime(source: str, device: str) -> Runner:
    from serve.onnxruntime_runner import OnnxRuntimeRunner

    return OnnxRuntimeRunner(Path(source))  # ONNX Runtime picks its providers from the installed build


def _tensorrt(source: str, device: str) -> Runner:
    from serve.tensorrt_runner import TensorRTRunner  # TensorRT engines always run on the GPU

    return TensorRTRunner(Path(source))


def _triton(source: str, device: str) -> Runner:
    from serve.triton_runner import TritonRunner  # the server decides where the model runs

    return TritonRunner(source)


@dataclass(frozen=True)
class Backend:
    suffix: str | None  # the file suffix that selects this backend; None: run directories and builtin
    open: Callable[[str, str], Runner]  # (what the user named, torch device) -> runner
    schemes: tuple[str, ...] = ()  # URL schemes that select this backend


BACKENDS = {
    "torch": Backend(None, _torch),
    "onnxruntime": Backend(".onnx", _onnxruntime),
    "tensorrt": Backend(".plan", _tensorrt),
    "triton": Backend(None, _triton, schemes=("http://", "grpc://")),
}


def backend_for(source: str) -> str:
    """The backend a name selects by its suffix or URL scheme; torch for anything else (a run directory, builtin)."""
    lower = source.lower()
    for name, b in BACKENDS.items():
        if (b.suffix and lower.endswith(b.suffix)) or lower.startswith(b.schemes):
            return name
    return "torch"


def open_runner(source: str | Path | Run, backend: str | None = None, device: str = "auto") -> Runner:
    """A runner for `source`; `backend` overrides the choice by suffix; `device` places torch models."""
    if isinstance(source, Run):
        from serve.torch_runner import TorchRunner

        return TorchRunner.from_run(source, device)
    source = str(source)
    name = backend or backend_for(source)
    check_choice("backend", name, BACKENDS)
    return BACKENDS[name].open(source, device)
