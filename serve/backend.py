"""What a backend declares about itself: `Backend`, which each runner module fills in once (`BACKEND = Backend(...)`)
and serve/backends.py registers with one line. Everything that picks, lists or runs backends (eval, the pipeline,
`bench`, `checks`, the speed benchmark) reads these declarations; none of them names a backend.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from common.artifact import ExportedFiles
from serve.runner import Runner


@dataclass(frozen=True)
class RunnerOptions:
    """How a runner runs its artifact, beyond the artifact itself."""

    device: str = "auto"  # auto, cpu, cuda, cuda:N (common.models.pick_device): torch models, GPU backends
    inference_precision: str | None = None  # for a backend that offers a choice (Backend.inference_precisions)
    provider: str | None = None  # an execution provider, for a backend that offers one (Backend.providers)
    timeout: float | None = None  # seconds a remote backend waits for an answer (None: its own default)


@dataclass(frozen=True)
class ArtifactRow:
    """One way a backend runs one exported file: a row of the pipeline's table and of `bench`."""

    name: str  # what the row shows after the backend's name: the artifact (fp32, int8-cpu) or the precision run (bf16)
    path: Path
    options: RunnerOptions = RunnerOptions()


def no_rows(files: ExportedFiles, variant: str | None) -> list[ArtifactRow]:
    return []


def _always(variant: str | None) -> str | None:
    return None


@dataclass(frozen=True)
class Backend:
    """A backend: how to open a runner, which names select it, what one can ask of it, and what it runs of an export.

    `rows(files, variant)`: the exported files it runs and how (the pipeline and `bench` take them with
    variant None; `checks` once per variant). `unavailable(variant)`: why it cannot run here, None when it can (it is
    asked before `rows`). `variants`: the ways `checks` proves it, each with the hardware it needs (cpu, gpu or
    tensorrt; the tests' markers)."""

    name: str
    label: str  # how messages name it: "ONNX Runtime"
    open: Callable[[str, RunnerOptions], Runner]  # (what the user named, how to run it) -> runner
    suffix: str | None = None  # the file suffix that selects it by default (".onnx")
    files: tuple[str, ...] = ()  # the file suffixes it can run when named (OpenVINO: .onnx, not by default)
    schemes: tuple[str, ...] = ()  # URL schemes that select it
    default: bool = False  # selected by anything no other backend claims (run directories, builtin)
    inference_precisions: tuple[str, ...] = ()  # those one can ask for; (): the artifact's own
    providers: tuple[str, ...] = ()  # execution providers one can ask for; (): no choice
    rows: Callable[[ExportedFiles, str | None], list[ArtifactRow]] = no_rows
    unavailable: Callable[[str | None], str | None] = _always
    variants: tuple[tuple[str, str], ...] = ()  # (variant, hardware) pairs `checks` runs

    def selected_by(self, source: str) -> bool:
        """Whether `source` (a file or URL) names this backend by its suffix or scheme."""
        lower = source.lower()
        return bool((self.suffix and lower.endswith(self.suffix)) or (self.schemes and lower.startswith(self.schemes)))

    def runs(self, path: Path) -> bool:
        """Whether it can run the file `path` (by its suffix)."""
        return path.suffix.lower() in (*self.files, *((self.suffix,) if self.suffix else ()))
