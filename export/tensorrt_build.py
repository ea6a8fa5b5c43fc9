"""Strongly typed TensorRT engines from exported ONNX files (TensorRT 10.x and 11.x).

Precision is already in the graph (FP32, FP16 mixed, or INT8 Q/DQ), so no FP16/INT8 builder flags and no calibrator:
TensorRT 11 removed them, and a strongly typed TensorRT 10 network ignores them. A .plan carries no metadata of
ours, so each engine gets a JSON sidecar: the ONNX file's artifact spec and what the engine is tied to (EngineInfo).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from common.artifact import EngineInfo, engine_file, read_onnx_spec, write_engine_sidecar
from common.errors import OptionError, check_number
from common.provenance import file_sha256
from common.tensorrt_compat import capturing_logger, gpu_identity, import_tensorrt, tensorrt_missing_reason
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


def _parse(builder: trt.Builder, logger: trt.ILogger, onnx_path: Path) -> tuple[trt.INetworkDefinition, trt.OnnxParser]:
    import tensorrt as trt

    # STRONGLY_TYPED is required on 10.x and accepted (ignored, always on) on 11.x; never use EXPLICIT_BATCH.
    network = builder.create_network(1 << int(trt.NetworkDefinitionCreationFlag.STRONGLY_TYPED))
    parser = trt.OnnxParser(network, logger)
    # parse_from_file, not parse(bytes): it finds external weight files (model.onnx.data) beside the model.
    if not parser.parse_from_file(str(onnx_path)):
        errors = [str(parser.get_error(i)) for i in range(parser.num_errors)]
        raise ExportError(f"TensorRT could not parse {onnx_path}: {'; '.join(errors) or 'unknown error'}")
    return network, parser


def _config(builder: trt.Builder, network: trt.INetworkDefinition, options: EngineOptions) -> trt.IBuilderConfig:
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
    config.set_timing_cache(config.create_timing_cache(cached), False)
    return config


def build_engine(onnx_path: Path, plan_path: Path, options: EngineOptions) -> EngineInfo:
    """Builds and writes `plan_path` and its sidecar (the ONNX file's spec and the engine facts)."""
    import_tensorrt()  # TensorRTUnavailable, saying what is missing, instead of an ImportError below
    import tensorrt as trt

    spec = read_onnx_spec(onnx_path)
    logger, errors = capturing_logger()
    builder = trt.Builder(logger)
    network, _parser = _parse(builder, logger, onnx_path)  # the parser owns weights the network uses: keep it
    config = _config(builder, network, options)
    # Optional although the stubs say otherwise: a failed build returns None, with the reasons in the log.
    plan: trt.IHostMemory | None = builder.build_serialized_network(network, config)
    if plan is None:
        raise ExportError(f"TensorRT engine build failed: {'; '.join(errors) or 'see TensorRT log'}")
    tmp = plan_path.with_name(plan_path.name + ".tmp")
    tmp.write_bytes(bytes(plan))
    tmp.replace(plan_path)
    if options.timing_cache:
        options.timing_cache.write_bytes(bytes(config.get_timing_cache().serialize()))
    gpu = gpu_identity()
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
    )
    write_engine_sidecar(plan_path, spec, info)
    return info


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
        build_engine(onnx_path, plan, options)
        engines[precision] = plan
        log(f"built {plan}")
    return engines, None
