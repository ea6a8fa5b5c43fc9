"""The registry of backends, and the one place that builds a runner from what the user named.

A backend is one runner module that declares itself (`BACKEND = serve.backend.Backend(...)`: its name, what selects
it, what one can ask of it, the exported files it runs) and one line in BACKENDS below. `open_runner` takes what
selects a backend (a run directory or `builtin`: torch; a `.onnx` file: ONNX Runtime; a `.plan` engine: TensorRT; a
Triton model `http://HOST:PORT/v2/models/NAME` or `grpc://...`), a Run already opened, or a zero-shot model; a
backend can also be named, for a file it can run (OpenVINO runs `.onnx` files).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from common.artifact import ExportedFiles
from common.errors import OptionError, check_choice
from common.progress import ProgressHook
from common.run import Run
from serve import onnxruntime_runner, openvino_runner, tensorrt_runner, torch_runner, triton_runner
from serve.backend import ArtifactRow, Backend, RunnerOptions, no_rows
from serve.runner import Runner

if TYPE_CHECKING:
    from data.specs import ZeroShotClasses

# In the order the pipeline's table lists their rows.
BACKENDS: dict[str, Backend] = {
    backend.name: backend
    for backend in (
        torch_runner.BACKEND,
        onnxruntime_runner.BACKEND,
        tensorrt_runner.BACKEND,
        triton_runner.BACKEND,
        openvino_runner.BACKEND,
    )
}


def backend_for(source: str) -> str:
    """The backend a name selects by its suffix or URL scheme; the default backend for anything else (a run
    directory, builtin)."""
    for name, backend in BACKENDS.items():
        if backend.selected_by(source):
            return name
    return default_backend()


def default_backend() -> str:
    """The backend of run directories, builtin, and anything no other backend claims (torch)."""
    return next(name for name, backend in BACKENDS.items() if backend.default)


def backends_running(suffix: str) -> list[str]:
    """The backends that can run files with `suffix` (.onnx), the one it selects by default first."""
    names = [name for name, b in BACKENDS.items() if b.runs(Path(f"x{suffix}"))]
    return sorted(names, key=lambda name: BACKENDS[name].suffix != suffix)


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
    inference_precision: str | None = None,
    progress: ProgressHook | None = None,
    provider: str | None = None,
    timeout: float | None = None,
) -> Runner:
    """A runner for `source`; `backend` overrides the choice by suffix; `device` places torch models and the GPU
    backends; `inference_precision` and `provider` are for a backend that offers a choice of them
    (Backend.inference_precisions, Backend.providers); `timeout` is how long a remote backend (Triton) waits for an
    answer; `progress` shows a zero-shot model's text classifier being built."""
    if isinstance(source, ZeroShotModel):
        return torch_runner.TorchRunner.zero_shot(source.model, source.pretrained, source.classes, device, progress)
    if isinstance(source, Run):
        return torch_runner.TorchRunner.from_run(source, device)
    name = backend or backend_for(str(source))
    check_choice("backend", name, BACKENDS)
    check_options(name, inference_precision, provider)
    return BACKENDS[name].open(str(source), RunnerOptions(device, inference_precision, provider, timeout))


def check_options(name: str, inference_precision: str | None, provider: str | None) -> None:
    """Refuses an inference precision or execution provider that the backend `name` does not offer."""
    for what, value, field in (
        ("inference precision", inference_precision, "inference_precisions"),
        ("execution provider", provider, "providers"),
    ):
        if value is None:
            continue
        offered = getattr(BACKENDS[name], field)
        if not offered:
            choosers = ", ".join(n for n, b in BACKENDS.items() if getattr(b, field))
            raise OptionError(f"the {name} backend offers no choice of {what} ({value}): a choice of {choosers} only")
        check_choice(f"{name} {what}", value, offered)


def artifact_rows(files: ExportedFiles, say: Callable[[str], None] = print) -> list[tuple[str, ArtifactRow]]:
    """(backend, row) for every way this machine can run the exported `files`, in the registry's order; `say` tells
    which backend cannot run here and why, where it would have had files to run."""
    rows = []
    for name, backend in BACKENDS.items():
        why = backend.unavailable(None)
        if why:
            runnable = [path for path in (*files.onnx.values(), *files.engines.values()) if backend.runs(path)]
            if runnable and backend.rows is not no_rows:
                say(f"not evaluated on {backend.label}: {', '.join(sorted({p.name for p in runnable}))} ({why})")
            continue
        rows += [(name, row) for row in backend.rows(files, None)]
    return rows


def open_row(backend: str, row: ArtifactRow) -> Runner:
    """The runner of one row of artifact_rows."""
    options = row.options
    return open_runner(row.path, backend, options.device, options.inference_precision, provider=options.provider)
