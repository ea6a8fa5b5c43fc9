"""Strongly typed TensorRT engines from exported ONNX files (TensorRT 10.x and 11.x).

Precision is already in the graph (FP32, FP16 mixed, or INT8 Q/DQ), so no FP16/INT8 builder flags and no calibrator:
TensorRT 11 removed them, and a strongly typed TensorRT 10 network ignores them. A .plan carries no metadata of
ours, so each engine gets a JSON sidecar: the ONNX file's artifact spec and what the engine is tied to (EngineInfo).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import torch

from common.artifact import ArtifactSpec, EngineInfo, engine_file, engine_sidecar, read_onnx_spec, sidecar_path
from common.errors import OptionError, check_number
from common.files import atomic_write_bytes, no_space_named, strict_json
from common.models import pick_device
from common.provenance import file_sha256
from common.tensorrt_compat import (
    TENSORRT_LOG,
    gpu_identity,
    import_tensorrt,
    tensorrt_logger,
    tensorrt_missing_reason,
)
from export.onnx_export import ExportError

if TYPE_CHECKING:  # TensorRT is optional: functions import it at runtime, after import_tensorrt()
    import tensorrt as trt


@dataclass(frozen=True)
class EngineOptions:
    min_batch: int = 1
    opt_batch: int = 32
    max_batch: int = 256
    workspace_gib: float = 4.0
    timing_cache: Path | None = None  # persisted across builds; keyed to TensorRT version and GPU by TensorRT
    version_compatible: bool = False  # engine runs on later TensorRT versions (embeds the lean runtime)

    def __post_init__(self) -> None:
        check_number("workspace_gib", self.workspace_gib, 0, above=True)
        if self.timing_cache is not None and self.timing_cache.exists() and not self.timing_cache.is_file():
            raise OptionError(f"--timing-cache {self.timing_cache} is not a file")
        if not 1 <= self.min_batch <= self.opt_batch <= self.max_batch:
            raise OptionError(
                "the TensorRT profile needs 1 <= --min-batch <= --opt-batch <= --max-batch, got "
                f"{self.min_batch}, {self.opt_batch}, {self.max_batch}"
            )


def _parse(builder: trt.Builder, onnx_path: Path) -> tuple[trt.INetworkDefinition, trt.OnnxParser]:
    import tensorrt as trt

    # STRONGLY_TYPED is required on 10.x and accepted (ignored, always on) on 11.x; never use EXPLICIT_BATCH.
    network = builder.create_network(1 << int(trt.NetworkDefinitionCreationFlag.STRONGLY_TYPED))
    parser = trt.OnnxParser(network, tensorrt_logger())
    # parse_from_file, not parse(bytes): it finds external weight files (model.onnx.data) beside the model.
    if not parser.parse_from_file(str(onnx_path)):
        errors = [str(parser.get_error(i)) for i in range(parser.num_errors)]
        raise ExportError(f"TensorRT could not parse {onnx_path}: {'; '.join(errors) or 'unknown error'}")
    return network, parser


def _config(
    builder: trt.Builder, network: trt.INetworkDefinition, options: EngineOptions, log: Callable[[str], None]
) -> trt.IBuilderConfig:
    import tensorrt as trt

    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, int(options.workspace_gib * (1 << 30)))
    image = network.get_input(0)
    _, channels, height, width = tuple(image.shape[i] for i in range(4))
    profile = builder.create_optimization_profile()
    profile.set_shape(
        image.name,
        trt.Dims([options.min_batch, channels, height, width]),
        trt.Dims([options.opt_batch, channels, height, width]),
        trt.Dims([options.max_batch, channels, height, width]),
    )
    config.add_optimization_profile(profile)
    if options.version_compatible:
        config.set_flag(trt.BuilderFlag.VERSION_COMPATIBLE)
    cached = options.timing_cache.read_bytes() if options.timing_cache and options.timing_cache.exists() else b""
    # A cache made on another GPU (or TensorRT) is refused, with False: build from an empty one, which replaces it.
    if not config.set_timing_cache(config.create_timing_cache(cached), False):
        log(f"timing cache {options.timing_cache} was made for another GPU or TensorRT: starting a new one")
        config.set_timing_cache(config.create_timing_cache(b""), False)
    return config


def build_engine(
    onnx_path: Path, plan_path: Path, options: EngineOptions, log: Callable[[str], None] = print
) -> EngineInfo:
    """Builds and writes `plan_path` and its sidecar (the ONNX file's spec and the engine facts), and the timing
    cache when one is named."""
    import_tensorrt()  # TensorRTUnavailable, saying what is missing, instead of an ImportError below
    import tensorrt as trt

    spec = read_onnx_spec(onnx_path)
    device = pick_device("cuda")  # cuda:0, or under torchrun the rank's GPU
    gpu = gpu_identity(device)
    with torch.cuda.device(device), TENSORRT_LOG.capture() as errors:  # TensorRT builds on the current GPU
        builder = trt.Builder(tensorrt_logger())
        network, _parser = _parse(builder, onnx_path)  # the parser owns weights the network uses: keep it
        config = _config(builder, network, options, log)
        # Optional although the stubs say otherwise: a failed build returns None, with the reasons in the log.
        plan: trt.IHostMemory | None = builder.build_serialized_network(network, config)
    if plan is None:
        raise ExportError(f"TensorRT engine build failed: {'; '.join(errors) or 'see TensorRT log'}")
    plan_bytes = bytes(plan)
    cache = bytes(config.get_timing_cache().serialize()) if options.timing_cache else None  # before any write
    info = EngineInfo(
        tensorrt_version=trt.__version__,
        gpu=gpu["gpu"],
        compute_capability=gpu["compute_capability"],
        min_batch=options.min_batch,
        opt_batch=options.opt_batch,
        max_batch=options.max_batch,
        version_compatible=options.version_compatible,
        source_onnx=str(onnx_path),
        source_onnx_sha256=file_sha256(onnx_path),
        options={k: str(v) if isinstance(v, Path) else v for k, v in asdict(options).items()},
        plan_sha256=hashlib.sha256(plan_bytes).hexdigest(),
    )
    write_engine_files(plan_path, plan_bytes, spec, info)
    if options.timing_cache and cache is not None:
        atomic_write_bytes(options.timing_cache, cache)
    return info


def write_engine_files(plan_path: Path, plan_bytes: bytes, spec: ArtifactSpec, info: EngineInfo) -> None:
    """The plan and its sidecar, so that neither is left without the other: both are written under temporary names
    and then moved into place (an earlier pair's sidecar removed first: it never describes the new plan); a failure
    removes what this call wrote. Only a kill between the two moves can leave a plan without its sidecar, which the
    runner refuses (and the sidecar's plan_sha256 catches a plan and sidecar of different builds)."""
    plan_tmp = plan_path.with_name(f".{plan_path.name}.tmp")
    side_tmp = plan_path.with_name(f".{sidecar_path(plan_path).name}.tmp")
    moved = False
    try:
        with no_space_named(plan_path):
            plan_tmp.write_bytes(plan_bytes)
            side_tmp.write_text(strict_json(engine_sidecar(spec, info)) + "\n")
        sidecar_path(plan_path).unlink(missing_ok=True)
        plan_tmp.replace(plan_path)
        moved = True
        side_tmp.replace(sidecar_path(plan_path))
    except BaseException:
        for path in (plan_tmp, side_tmp) + ((plan_path,) if moved else ()):
            path.unlink(missing_ok=True)
        raise


def build_engines(
    onnx_files: dict[str, Path], options: EngineOptions, log: Callable[[str], None]
) -> tuple[dict[str, Path], str | None]:
    """One engine (`<name>.plan` beside each ONNX file) per precision; returns them, and why none was built when
    TensorRT or a GPU is missing."""
    missing = tensorrt_missing_reason()
    if missing:
        log(f"no TensorRT engine: {missing}")
        return {}, missing
    engines = {}
    for precision, onnx_path in onnx_files.items():
        plan = engine_file(onnx_path)
        build_engine(onnx_path, plan, options, log)
        engines[precision] = plan
        log(f"built {plan}")
    return engines, None
