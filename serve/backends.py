"""The one place that builds a runner from what the user named.

A backend registers under a name with the artifact suffix (or URL scheme) that selects it; adding one is one runner
module and one entry here. `open_runner` takes a run directory or `builtin` (torch), a `.onnx` file (ONNX Runtime),
a `.plan` engine (TensorRT), a Triton model `http://HOST:PORT/v2/models/NAME` or `grpc://...` (a Triton server,
serve.triton_runner.model_url), or a Run already opened; a backend can also be named explicitly: `openvino` runs a
`.onnx` file in OpenVINO, the one backend with an inference precision to choose (fp32 or bf16).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from common.errors import OptionError, check_choice
from common.progress import ProgressHook
from common.run import Run, open_run
from common.world import BUILTIN
from serve.openvino_runner import OPENVINO_PRECISIONS
from serve.runner import Runner

if TYPE_CHECKING:
    from common.suites import ZeroShotClasses


def _torch(source: str, device: str, precision: str | None) -> Runner:
    from serve.torch_runner import TorchRunner

    if source == BUILTIN:
        return TorchRunner.builtin_zero_shot(device)
    return TorchRunner.from_run(open_run(source), device)


def _onnxruntime(source: str, device: str, precision: str | None) -> Runner:
    from serve.onnxruntime_runner import OnnxRuntimeRunner

    return OnnxRuntimeRunner(Path(source))  # ONNX Runtime picks its providers from the installed build


def _tensorrt(source: str, device: str, precision: str | None) -> Runner:
    from serve.tensorrt_runner import TensorRTRunner  # TensorRT engines always run on the GPU

    return TensorRTRunner(Path(source))


def _triton(source: str, device: str, precision: str | None) -> Runner:
    from serve.triton_runner import TritonRunner  # the server decides where the model runs

    return TritonRunner(source)


def _openvino(source: str, device: str, precision: str | None) -> Runner:
    from serve.openvino_runner import OpenVinoRunner  # always on the CPU

    return OpenVinoRunner(Path(source), precision or "fp32")


@dataclass(frozen=True)
class Backend:
    suffix: str | None  # the file suffix that selects this backend; None: run directories and builtin
    open: Callable[[str, str, str | None], Runner]  # (what the user named, torch device, precision) -> runner
    schemes: tuple[str, ...] = ()  # URL schemes that select this backend
    precisions: tuple[str, ...] = ()  # inference precisions one can ask for; () : the artifact's own, no choice


BACKENDS = {
    "torch": Backend(None, _torch),
    "onnxruntime": Backend(".onnx", _onnxruntime),
    "tensorrt": Backend(".plan", _tensorrt),
    "triton": Backend(None, _triton, schemes=("http://", "grpc://")),
    "openvino": Backend(None, _openvino, precisions=OPENVINO_PRECISIONS),  # .onnx files, when named
}


def backend_for(source: str) -> str:
    """The backend a name selects by its suffix or URL scheme; torch for anything else (a run directory, builtin)."""
    lower = source.lower()
    for name, b in BACKENDS.items():
        if (b.suffix and lower.endswith(b.suffix)) or lower.startswith(b.schemes):
            return name
    return "torch"


@dataclass(frozen=True)
class ZeroShotModel:
    """A pretrained open_clip model (a name open_clip knows, hf-hub:ORG/REPO, local-dir:PATH, builtin) and its
    weights (a tag or a file; None for builtin and local-dir), used zero-shot over `classes`."""

    model: str
    pretrained: str | None
    classes: ZeroShotClasses


def open_runner(
    source: str | Path | Run | ZeroShotModel,
    backend: str | None = None,
    device: str = "auto",
    precision: str | None = None,
    progress: ProgressHook | None = None,
) -> Runner:
    """A runner for `source`; `backend` overrides the choice by suffix; `device` places torch models; `precision`
    is the inference precision for a backend that offers one (openvino: fp32, the default, or bf16); `progress`
    shows a zero-shot model's text classifier being built."""
    if isinstance(source, ZeroShotModel):
        from serve.torch_runner import TorchRunner

        return TorchRunner.zero_shot(source.model, source.pretrained, source.classes, device, progress)
    name = "torch" if isinstance(source, Run) else backend or backend_for(str(source))
    check_choice("backend", name, BACKENDS)
    if precision is not None:
        offered = BACKENDS[name].precisions
        if not offered:
            raise OptionError(
                f"the {name} backend runs an artifact in its own precision; an inference precision ({precision}) "
                f"is a choice of {', '.join(n for n, b in BACKENDS.items() if b.precisions)} only"
            )
        check_choice(f"{name} inference precision", precision, offered)
    if isinstance(source, Run):
        from serve.torch_runner import TorchRunner

        return TorchRunner.from_run(source, device)
    return BACKENDS[name].open(str(source), device, precision)
