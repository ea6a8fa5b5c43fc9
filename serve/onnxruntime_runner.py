"""The ONNX Runtime runner: an exported ONNX classifier, with classes and preprocessing from its metadata."""

from __future__ import annotations

import hashlib
import importlib.metadata
import logging
from pathlib import Path
from typing import Any

import numpy as np
import torch
from onnxruntime.capi import onnxruntime_pybind11_state as _ort_errors

from common.artifact import CPU_INT8, ArtifactError, ArtifactSpec, ExportedFiles, read_onnx_spec
from common.cpu import int8_dot_products
from common.errors import OptionError, check_choice
from common.files import cache_root
from common.models import cuda_missing_reason, pick_device
from common.provenance import file_sha256
from common.tensorrt_compat import tensorrt_missing_reason
from serve.backend import ArtifactRow, Backend, RunnerOptions
from serve.runner import Runner

# ONNX Runtime's own error types (pybind classes that derive from Exception directly), raised for a file it cannot
# load; anything else raised while setting up the session is a bug of ours and keeps its traceback.
ORT_LOAD_ERRORS = tuple(
    getattr(_ort_errors, name)
    for name in (
        "Fail",
        "InvalidArgument",
        "NoSuchFile",
        "NoModel",
        "InvalidProtobuf",
        "InvalidGraph",
        "RuntimeException",
        "NotImplemented",
        "EPFail",
        "ModelLoaded",
    )
    if hasattr(_ort_errors, name)
)
# The execution providers one can ask for by name; `auto` picks per artifact (providers_for).
ORT_PROVIDERS = {
    "cpu": "CPUExecutionProvider",
    "cuda": "CUDAExecutionProvider",
    "tensorrt": "TensorrtExecutionProvider",
}
EXECUTION_PROVIDERS = ("auto", *ORT_PROVIDERS)
Provider = tuple[str, dict[str, Any]]

log = logging.getLogger(__name__)


def is_cpu_int8(spec: ArtifactSpec) -> bool:
    """model.int8-cpu.onnx: u8 activations with non-zero zero points, which only CPU kernels are made for (the
    TensorRT EP takes symmetric quantization only: microsoft/onnxruntime#10743)."""
    return spec.calibration is not None and spec.calibration.scheme == "u8s8"


def providers_for(
    spec: ArtifactSpec, choice: str, available: list[str], gpu: int, tensorrt_cache: Path | None
) -> list[Provider]:
    """The execution providers, with their options, an artifact of `spec` runs on: `choice` is one of
    EXECUTION_PROVIDERS; `available` what this ONNX Runtime build offers; `gpu` the CUDA device index;
    `tensorrt_cache` where the TensorRT EP keeps its engines (None: not kept). `auto` is TensorRT, CUDA, then the
    CPU, as far as the build has them, except for the CPU INT8 form, which runs on the CPU. A named provider comes
    first, the CPU after it for the nodes it does not take."""
    check_choice("ONNX Runtime execution provider", choice, EXECUTION_PROVIDERS)
    if choice == "tensorrt" and is_cpu_int8(spec):
        raise OptionError(
            "the CPU INT8 form (u8 activations, asymmetric) cannot run on the TensorRT execution provider, which "
            "takes symmetric quantization only: use model.int8.onnx there"
        )
    if choice == "auto":
        wanted = ["cpu"] if is_cpu_int8(spec) else ["tensorrt", "cuda", "cpu"]
        names = [ORT_PROVIDERS[w] for w in wanted if ORT_PROVIDERS[w] in available]
    else:
        if ORT_PROVIDERS[choice] not in available:
            raise OptionError(
                f"this ONNX Runtime build has no {ORT_PROVIDERS[choice]} (it has {', '.join(available)}); on a GPU "
                "machine install onnxruntime-gpu instead of onnxruntime"
            )
        names = list(dict.fromkeys([ORT_PROVIDERS[choice], ORT_PROVIDERS["cpu"]]))
    return [(name, _provider_options(name, spec, gpu, tensorrt_cache)) for name in names]


def _provider_options(name: str, spec: ArtifactSpec, gpu: int, tensorrt_cache: Path | None) -> dict[str, Any]:
    if name == ORT_PROVIDERS["cuda"]:
        return {"device_id": gpu}
    if name != ORT_PROVIDERS["tensorrt"]:
        return {}
    # Precision is in the graph. No trt_fp16_enable: it would let TensorRT run in FP16 the parts the FP16 copy keeps
    # in FP32 (norms, softmax, head). trt_int8_enable for the Q/DQ copy: without it TensorRT refuses its INT8 layers
    # (microsoft/onnxruntime#13381, EP_FAIL).
    options: dict[str, Any] = {"device_id": gpu, "trt_int8_enable": spec.precision == "int8"}
    if tensorrt_cache is not None:  # engines kept across sessions instead of rebuilt in each (minutes for a ViT)
        options |= {
            "trt_engine_cache_enable": True,
            "trt_engine_cache_path": str(tensorrt_cache),
            "trt_timing_cache_enable": True,
            "trt_timing_cache_path": str(tensorrt_cache),
        }
    return options


def tensorrt_cache_dir(onnx: Path, gpu: int) -> Path | None:
    """Where the TensorRT EP keeps the engines built from `onnx`: one folder per file content, ONNX Runtime and
    TensorRT version and GPU, since the EP reuses an engine by the model's name alone and its documentation says to
    clear the cache whenever one of those changes. None when the folder cannot be made."""
    import onnxruntime as ort

    try:
        tensorrt = importlib.metadata.version("tensorrt")
    except importlib.metadata.PackageNotFoundError:
        tensorrt = ""
    name, (major, minor) = torch.cuda.get_device_name(gpu), torch.cuda.get_device_capability(gpu)
    key = f"{file_sha256(onnx)} {ort.__version__} {tensorrt} {name} {major}.{minor}"
    folder = cache_root() / "onnxruntime-tensorrt" / f"{onnx.stem}-{hashlib.sha256(key.encode()).hexdigest()[:16]}"
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        log.warning("ONNX Runtime's TensorRT engines are not kept (%s): each session builds them again", err)
        return None
    return folder


class OnnxRuntimeRunner(Runner):
    backend = "onnxruntime"

    def __init__(self, path: Path, provider: str = "auto", device: str = "auto"):
        """`provider`: one of EXECUTION_PROVIDERS; `device`: cpu runs on the CPU provider alone, anything else places
        the GPU providers (under torchrun on the rank's GPU)."""
        import onnxruntime as ort

        self.artifact = str(path)
        self.spec = read_onnx_spec(Path(path))
        available = ort.get_available_providers()
        where = pick_device(device)  # cuda:N (under torchrun the rank's GPU) when a GPU is visible
        provider = "cpu" if where.type == "cpu" and provider == "auto" else provider
        gpu = where.index if where.index is not None else 0
        uses_tensorrt = where.type == "cuda" and ORT_PROVIDERS["tensorrt"] in available
        cache = tensorrt_cache_dir(Path(path), gpu) if uses_tensorrt else None
        wanted = providers_for(self.spec, provider, available, gpu, cache)
        self.session = self._session(path, wanted, fall_back=provider == "auto")
        self.providers = self.session.get_providers()  # what was really enabled (a missing EP only warns)
        if provider != "auto" and self.providers[0] != wanted[0][0]:
            raise ArtifactError(f"ONNX Runtime could not run {path} on {wanted[0][0]} (it took {self.providers[0]})")
        self.runs_on = self.providers[0].removesuffix("ExecutionProvider")
        self._check_io(path)

    def _check_io(self, path: Path) -> None:
        graph_io = ([i.name for i in self.session.get_inputs()], [o.name for o in self.session.get_outputs()])
        if graph_io != ([self.spec.input_name], [self.spec.output_name]):
            raise ArtifactError(
                f"{path}: its graph has inputs {graph_io[0]} and outputs {graph_io[1]}, its metadata says "
                f"{self.spec.input_name!r} -> {self.spec.output_name!r}"
            )

    def _session(self, path: Path, wanted: list[Provider], fall_back: bool) -> Any:
        """An InferenceSession on the first of `wanted` that works; with `fall_back`, a provider that fails to set up
        (a TensorRT EP that cannot build the engine raises EPFail, which ONNX Runtime's own fallback lets through) is
        dropped with a warning and the next tried."""
        import onnxruntime as ort

        options = ort.SessionOptions()
        if self.spec.precision == "fp16":
            # ORT 1.31's CPU layout optimizations (ORT_ENABLE_ALL) crash on mixed FP16/FP32 transformer graphs
            # (seen with ViT-B/32); the extended level keeps every fusion but the NCHWc layout rewrite.
            options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED
        elif self.spec.precision == "int8" and wanted[0][0] == "CPUExecutionProvider" and not int8_dot_products():
            # The TensorRT file's signed activations on a CPU without VNNI: ONNX Runtime's fused integer kernels
            # add u8 x s8 products in pairs into 16 bits (AVX2 VPMADDUBSW), which saturates (ORT documents it: use
            # U8S8 or 7-bit weights on non-VNNI machines). Measured on an AVX2 AMD EPYC: top-1 agreement with FP32
            # 86% fused against 97% here. The basic level keeps Q/DQ as exact float emulation, which is also what
            # TensorRT computes; model.int8-cpu.onnx (u8 activations) is unaffected and stays fused.
            options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_BASIC
        ort.disable_telemetry_events()  # no usage data leaves the machine
        while True:
            try:
                return ort.InferenceSession(str(path), sess_options=options, providers=wanted)
            except ORT_LOAD_ERRORS as err:  # e.g. NoSuchFile for stripped weights, InvalidGraph, InvalidProtobuf
                first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
                if not fall_back or len(wanted) == 1:
                    raise ArtifactError(f"ONNX Runtime cannot load {path}: {first}") from err
                log.warning("ONNX Runtime: %s failed for %s (%s); trying %s", wanted[0][0], path, first, wanted[1][0])
                wanted = wanted[1:]

    def _infer(self, images: torch.Tensor) -> np.ndarray:
        feed = images.detach().cpu().numpy()
        return self.session.run([self.spec.output_name], {self.spec.input_name: feed})[0].astype(np.float32, copy=False)


def _open(source: str, options: RunnerOptions) -> Runner:
    return OnnxRuntimeRunner(Path(source), options.provider or "auto", options.device)


def _rows(files: ExportedFiles, variant: str | None) -> list[ArtifactRow]:
    """Every ONNX file, on the providers chosen per artifact (variant None) or on the provider `variant` (the CPU
    INT8 form only on the CPU)."""
    return [
        ArtifactRow(name, path, RunnerOptions(provider=variant))
        for name, path in files.onnx.items()
        if variant in (None, "cpu") or name != CPU_INT8
    ]


def _unavailable(variant: str | None) -> str | None:
    """The CPU provider is always there; the GPU ones need a GPU, a build that has them, and TensorRT's TensorRT."""
    import onnxruntime as ort

    if variant in (None, "cpu"):
        return None
    if cuda_missing_reason():
        return cuda_missing_reason()
    if ORT_PROVIDERS[variant] not in ort.get_available_providers():
        return (
            f"this ONNX Runtime build ({ort.__version__}) has no {ORT_PROVIDERS[variant]}: on a GPU machine install "
            "onnxruntime-gpu instead of onnxruntime"
        )
    return tensorrt_missing_reason() if variant == "tensorrt" else None


BACKEND = Backend(
    "onnxruntime",
    "ONNX Runtime",
    _open,
    suffix=".onnx",
    providers=EXECUTION_PROVIDERS,
    rows=_rows,
    unavailable=_unavailable,
    variants=(("cpu", "cpu"), ("cuda", "gpu"), ("tensorrt", "tensorrt")),
)
