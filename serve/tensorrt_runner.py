"""The TensorRT runner: a serialized engine plus its sidecar, run through TensorRT's name-based tensor API.

Buffers are torch CUDA tensors, so no cuda-python dependency. The output shape is read from the context for every
batch (the batch is dynamic), and batches larger than the engine's profile are split.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch

from common.artifact import ArtifactError, EngineInfo, read_engine_sidecar
from common.errors import OptionError
from common.tensorrt_compat import TensorRTUnavailable, capturing_logger, gpu_identity, import_tensorrt
from serve.runner import Runner

if TYPE_CHECKING:  # TensorRT is optional: functions import it at runtime, after import_tensorrt()
    import tensorrt as trt


class EngineMismatch(ArtifactError):
    """The engine was built for another TensorRT version or GPU."""


def check_compatible(engine: EngineInfo, trt_version: str, here: dict[str, str], plan: Path) -> None:
    """Refuses an engine built elsewhere before TensorRT fails on it (it would only log and return None).

    A version-compatible engine runs on the TensorRT it was built with or a later one, never an earlier one; every
    engine stays tied to the GPU architecture it was built on.
    """
    built = engine.tensorrt_version
    # Version-compatible engines run on later releases of the same major version only.
    later = _version(trt_version) >= _version(built) and _version(trt_version)[:1] == _version(built)[:1]
    if built != trt_version and not (engine.version_compatible and later):
        raise EngineMismatch(
            f"{plan} was built with TensorRT {built}, this is {trt_version}: "
            "rebuild it here with `python cli.py export`"
        )
    if engine.compute_capability != here["compute_capability"]:
        raise EngineMismatch(
            f"{plan} was built for {engine.gpu} (sm {engine.compute_capability}), this is "
            f"{here['gpu']} (sm {here['compute_capability']}): rebuild it on this GPU"
        )


def _version(text: str) -> tuple[int, ...]:
    return tuple(int(part) for part in text.split(".") if part.isdigit())


class TensorRTRunner(Runner):
    backend = "tensorrt"

    def __init__(self, plan: Path):
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
        check_compatible(info, trt.__version__, gpu_identity(), plan)
        self.logger, self.errors = capturing_logger()  # the logger must outlive the engine
        runtime = trt.Runtime(self.logger)
        runtime.engine_host_code_allowed = info.version_compatible
        # Optional although the stubs say otherwise: an engine TensorRT cannot load gives None, with the reason logged.
        engine: trt.ICudaEngine | None = runtime.deserialize_cuda_engine(plan.read_bytes())
        if engine is None:
            raise EngineMismatch(f"TensorRT could not load {plan}: {'; '.join(self.errors) or 'unknown error'}")
        self.engine = engine
        self.context = self.engine.create_execution_context()
        names = [self.engine.get_tensor_name(i) for i in range(self.engine.num_io_tensors)]
        if sorted(names) != sorted([self.spec.input_name, self.spec.output_name]):
            raise EngineMismatch(
                f"{plan} has tensors {names}, its sidecar names {self.spec.input_name!r} and "
                f"{self.spec.output_name!r}: the sidecar belongs to another engine"
            )
        self.input_name, self.output_name = self.spec.input_name, self.spec.output_name

    def _run(self, images: torch.Tensor) -> torch.Tensor:
        x = images.to("cuda", torch.float32, non_blocking=True).contiguous()
        if not self.context.set_input_shape(self.input_name, tuple(x.shape)):
            raise OptionError(
                f"batch of {len(x)} is outside the engine's profile (batch {self.min_batch}..{self.max_batch}); "
                "rebuild with another --min-batch/--max-batch"
            )
        shape = self.context.get_tensor_shape(self.output_name)
        out = torch.empty(tuple(shape[i] for i in range(len(shape))), device="cuda", dtype=torch.float32)
        self.context.set_tensor_address(self.input_name, x.data_ptr())
        self.context.set_tensor_address(self.output_name, out.data_ptr())
        stream = torch.cuda.current_stream()
        if not self.context.execute_async_v3(stream.cuda_stream):
            raise RuntimeError(f"TensorRT execution failed: {'; '.join(self.errors)}")
        stream.synchronize()
        return out

    def _infer(self, images: torch.Tensor) -> np.ndarray:
        chunks = [self._run(images[i : i + self.max_batch]) for i in range(0, len(images), self.max_batch)]
        return torch.cat(chunks).cpu().numpy()
