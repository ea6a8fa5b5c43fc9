"""The TensorRT runner: a serialized engine plus its sidecar, run through TensorRT's name-based tensor API.

Buffers are torch CUDA tensors, so no cuda-python dependency. The output shape is read from the context for every
batch (the batch is dynamic), and batches larger than the engine's profile are split.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch

from common.artifact import ArtifactError, EngineInfo, ExportedFiles, read_engine_sidecar
from common.errors import OptionError
from common.models import pick_device
from common.tensorrt_compat import (
    TENSORRT_LOG,
    TensorRTUnavailable,
    gpu_identity,
    import_tensorrt,
    tensorrt_logger,
    tensorrt_missing_reason,
)
from serve.backend import ArtifactRow, Backend, RunnerOptions
from serve.runner import Runner

if TYPE_CHECKING:  # TensorRT is optional: functions import it at runtime, after import_tensorrt()
    import tensorrt as trt


class EngineMismatch(ArtifactError):
    """The engine was built for another TensorRT version or GPU."""


# Majors whose version-compatible engines a later major's runtime loads, as TensorRT documents it ("TensorRT 10
# version-compatible engines can run with a TensorRT 11 runtime, and TensorRT 8 version-compatible engines can run with
# a TensorRT 10 runtime", TensorRT 11 support matrix).
CROSS_MAJOR = {(8, 10), (10, 11)}


def runs_on(built: str, runtime: str, version_compatible: bool) -> bool:
    """Whether TensorRT `runtime` loads an engine built by TensorRT `built`: the same version always; a
    version-compatible engine also on any later release of its major, and on the next major where TensorRT says so
    (CROSS_MAJOR); never on an earlier release."""
    if built == runtime:
        return True
    b, r = _version(built), _version(runtime)
    return version_compatible and r > b and (r[0] == b[0] or (b[0], r[0]) in CROSS_MAJOR)


def check_compatible(engine: EngineInfo, trt_version: str, here: dict[str, str], plan: Path) -> None:
    """Refuses an engine built elsewhere before TensorRT fails on it (it would only log and return None): one built
    by a TensorRT this one cannot load (runs_on), or on another GPU architecture (every engine stays tied to it)."""
    built = engine.tensorrt_version
    if not runs_on(built, trt_version, engine.version_compatible):
        later = " (a version-compatible engine runs on later releases only)" if engine.version_compatible else ""
        raise EngineMismatch(
            f"{plan} was built with TensorRT {built}, this is {trt_version}{later}: "
            "rebuild it here with `python cli.py export`"
        )
    if engine.compute_capability != here["compute_capability"]:
        raise EngineMismatch(
            f"{plan} was built for {engine.gpu} (sm {engine.compute_capability}), this is "
            f"{here['gpu']} (sm {here['compute_capability']}): rebuild it on this GPU"
        )


def check_plan_bytes(engine: EngineInfo, data: bytes, plan: Path) -> None:
    """Refuses a plan that is not the one its sidecar describes (a build that stopped between writing the two)."""
    if engine.plan_sha256 and hashlib.sha256(data).hexdigest() != engine.plan_sha256:
        raise EngineMismatch(f"{plan} is not the engine its sidecar describes (another build's): rebuild it")


def _version(text: str) -> tuple[int, ...]:
    return tuple(int(part) for part in text.split(".") if part.isdigit())


class TensorRTRunner(Runner):
    backend = "tensorrt"

    def __init__(self, plan: Path, device: str = "auto"):
        plan = Path(plan)
        if not plan.is_file():
            raise ArtifactError(f"no such engine: {plan}")
        self.spec, info = read_engine_sidecar(plan)
        self.artifact = str(plan)
        self.max_batch, self.min_batch = info.max_batch, info.min_batch
        import_tensorrt()  # TensorRTUnavailable, saying what is missing, instead of an ImportError below
        import tensorrt as trt

        if not torch.cuda.is_available():
            raise TensorRTUnavailable("a TensorRT engine needs a CUDA GPU, and none is visible")
        self.device = pick_device(device)  # cuda:N, under torchrun this rank's GPU
        if self.device.type != "cuda":
            raise OptionError(f"a TensorRT engine runs on a GPU, not on {self.device}")
        self.runs_on = str(self.device)
        data = plan.read_bytes()
        check_plan_bytes(info, data, plan)
        check_compatible(info, trt.__version__, gpu_identity(self.device), plan)
        with torch.cuda.device(self.device), TENSORRT_LOG.capture() as errors:  # the engine lives on self.device
            self.runtime = trt.Runtime(tensorrt_logger())
            self.runtime.engine_host_code_allowed = info.version_compatible
            # Optional although the stubs say otherwise: an engine TensorRT cannot load gives None, reason logged.
            engine: trt.ICudaEngine | None = self.runtime.deserialize_cuda_engine(data)
            if engine is None:
                raise EngineMismatch(f"TensorRT could not load {plan}: {'; '.join(errors) or 'unknown error'}")
            self.engine = engine
            self.context = self.engine.create_execution_context()
        # A stream of its own: enqueueV3 on the legacy default stream makes TensorRT add synchronizations.
        self.stream = torch.cuda.Stream(self.device)
        names = [self.engine.get_tensor_name(i) for i in range(self.engine.num_io_tensors)]
        if sorted(names) != sorted([self.spec.input_name, self.spec.output_name]):
            raise EngineMismatch(
                f"{plan} has tensors {names}, its sidecar names {self.spec.input_name!r} and "
                f"{self.spec.output_name!r}: the sidecar belongs to another engine"
            )
        self.input_name, self.output_name = self.spec.input_name, self.spec.output_name

    def _run(self, images: torch.Tensor) -> torch.Tensor:
        with torch.cuda.device(self.device), torch.cuda.stream(self.stream):
            x = images.to(self.device, torch.float32, non_blocking=True).contiguous()
            if not self.context.set_input_shape(self.input_name, tuple(x.shape)):
                raise OptionError(
                    f"batch of {len(x)} is outside the engine's profile (batch {self.min_batch}..{self.max_batch}); "
                    "rebuild with another --min-batch/--max-batch"
                )
            shape = self.context.get_tensor_shape(self.output_name)
            out = torch.empty(tuple(shape[i] for i in range(len(shape))), device=self.device, dtype=torch.float32)
            self.context.set_tensor_address(self.input_name, x.data_ptr())
            self.context.set_tensor_address(self.output_name, out.data_ptr())
            with TENSORRT_LOG.capture() as errors:
                if not self.context.execute_async_v3(self.stream.cuda_stream):
                    raise RuntimeError(f"TensorRT execution failed: {'; '.join(errors) or 'unknown error'}")
            self.stream.synchronize()
        return out

    def _infer(self, images: torch.Tensor) -> np.ndarray:
        chunks = [self._run(images[i : i + self.max_batch]) for i in range(0, len(images), self.max_batch)]
        return torch.cat(chunks).cpu().numpy()


def _open(source: str, options: RunnerOptions) -> Runner:
    return TensorRTRunner(Path(source), options.device)  # always on a GPU


def _rows(files: ExportedFiles, variant: str | None) -> list[ArtifactRow]:
    return [ArtifactRow(name, plan) for name, plan in files.engines.items()]


def _unavailable(variant: str | None) -> str | None:
    return tensorrt_missing_reason()


# Its `checks` rows are export's (an engine is built there first): workflows/checks.py.
BACKEND = Backend("tensorrt", "TensorRT", _open, suffix=".plan", rows=_rows, unavailable=_unavailable)
