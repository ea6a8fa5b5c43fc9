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

from common.builtin import BUILTIN
from common.errors import OptionError, check_choice
from common.progress import ProgressHook
from common.run import Run, open_run
from serve.onnxruntime_runner import EXECUTION_PROVIDERS
from serve.openvino_runner import OPENVINO_PRECISIONS
from serve.runner import Runner

if TYPE_CHECKING:
    from data.specs import ZeroShotClasses


@dataclass(frozen=True)
class RunnerOptions:
    """How a runner runs its artifact, beyond the artifact itself."""

    device: str = "auto"  # auto, cpu, cuda, cuda:N (common.models.pick_device): torch models, GPU backends
    precision: str | None = None  # an inference precision, for a backend that offers one (Backend.precisions)
    provider: str | None = None  # an execution provider, for a backend that offers one (Backend.providers)


def _torch(source: str, options: RunnerOptions) -> Runner:
    from serve.torch_runner import TorchRunner

    if source == BUILTIN:
        return TorchRunner.builtin_zero_shot(options.device)
    return TorchRunner.from_run(open_run(source), options.device)


def _onnxruntime(source: str, options: RunnerOptions) -> Runner:
    from serve.onnxruntime_runner import OnnxRuntimeRunner  # providers chosen per artifact unless one is named

    return OnnxRuntimeRunner(Path(source), options.provider or "auto", options.device)


def _tensorrt(source: str, options: RunnerOptions) -> Runner:
    from serve.tensorrt_runner import TensorRTRunner  # TensorRT engines always run on a GPU

    return TensorRTRunner(Path(source), options.device)


def _triton(source: str, options: RunnerOptions) -> Runner:
    from serve.triton_runner import TritonRunner  # the server decides where the model runs

    return TritonRunner(source)


def _openvino(source: str, options: RunnerOptions) -> Runner:
    from serve.openvino_runner import OpenVinoRunner  # always on the CPU

    return OpenVinoRunner(Path(source), options.precision or "fp32")


@dataclass(frozen=True)
class Backend:
    suffix: str | None  # the file suffix that selects this backend; None: run directories and builtin
    open: Callable[[str, RunnerOptions], Runner]  # (what the user named, how to run it) -> runner
    schemes: tuple[str, ...] = ()  # URL schemes that select this backend
    precisions: tuple[str, ...] = ()  # inference precisions one can ask for; () : the artifact's own, no choice
    providers: tuple[str, ...] = ()  # execution providers one can ask for; () : no choice


BACKENDS = {
    "torch": Backend(None, _torch),
    "onnxruntime": Backend(".onnx", _onnxruntime, providers=EXECUTION_PROVIDERS),
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
    provider: str | None = None,
) -> Runner:
    """A runner for `source`; `backend` overrides the choice by suffix; `device` places torch models and the GPU
    backends; `precision` is the inference precision for a backend that offers one (openvino: fp32, the default, or
    bf16), `provider` the execution provider for one that offers a choice (onnxruntime: auto, cpu, cuda, tensorrt);
    `progress` shows a zero-shot model's text classifier being built."""
    if isinstance(source, ZeroShotModel):
        from serve.torch_runner import TorchRunner

        return TorchRunner.zero_shot(source.model, source.pretrained, source.classes, device, progress)
    name = "torch" if isinstance(source, Run) else backend or backend_for(str(source))
    check_choice("backend", name, BACKENDS)
    for what, value, offered in (
        ("inference precision", precision, BACKENDS[name].precisions),
        ("execution provider", provider, BACKENDS[name].providers),
    ):
        if value is None:
            continue
        if not offered:
            field = "precisions" if what == "inference precision" else "providers"
            choosers = ", ".join(n for n, b in BACKENDS.items() if getattr(b, field))
            raise OptionError(f"the {name} backend offers no choice of {what} ({value}): a choice of {choosers} only")
        check_choice(f"{name} {what}", value, offered)
    if isinstance(source, Run):
        from serve.torch_runner import TorchRunner

        return TorchRunner.from_run(source, device)
    return BACKENDS[name].open(str(source), RunnerOptions(device, precision, provider))
