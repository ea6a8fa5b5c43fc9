"""The OpenVINO runner: an exported ONNX classifier run on the CPU by OpenVINO, in FP32 or BF16.

OpenVINO reads our ONNX files directly (FP32, the FP16 copy and the INT8 Q/DQ copy) and takes the classes and
preprocessing from their metadata, like the ONNX Runtime runner. The inference precision is a hint to OpenVINO's
CPU plugin: `bf16` runs matmuls and convolutions in BF16 (AVX-512 BF16 or AMX), `fp32` keeps everything FP32; an
INT8 file's quantized layers run INT8 (VNNI) under either hint, the rest of its graph in the hinted precision.

OpenVINO itself rather than ONNX Runtime's OpenVINO execution provider: the provider ships as onnxruntime-openvino,
a build that replaces the `onnxruntime` module (as onnxruntime-gpu does) and pins its own OpenVINO; the openvino
package installs beside ONNX Runtime, so both runtimes stay available in one environment and can be compared.
"""

from __future__ import annotations

import functools
import logging
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import torch

from common.artifact import ArtifactError, ExportedFiles, read_onnx_spec
from common.cpu import cpu_flags as read_cpu_flags
from common.cpu import int8_dot_products
from common.errors import UserError, check_choice, check_number
from serve.backend import ArtifactRow, Backend, RunnerOptions
from serve.runner import Runner

logger = logging.getLogger(__name__)
# Without VNNI, OpenVINO's CPU INT8 kernels add u8 x s8 products in pairs into 16 bits (AVX2), which saturates on the
# symmetric Q/DQ file's activations: logits off FP32's by up to 11.4 (the built-in model, logit scale 16.8) on an
# AVX2 AMD EPYC, where ONNX Runtime (which then runs the file as exact Q/DQ emulation) stays within 1.1. bench and
# pipeline leave that row out on such CPUs.
NO_VNNI_INT8 = "this CPU has no VNNI: OpenVINO's INT8 kernels saturate on the symmetric INT8 file"

OPENVINO_PRECISIONS = ("fp32", "bf16")  # the inference precision hints one can ask for
INSTALL_HINT = 'pip install "proreg-clip[openvino]"'


class OpenVinoUnavailable(UserError):
    """OpenVINO is not installed, or this CPU cannot run the precision asked for."""


def import_openvino() -> ModuleType:
    """The openvino module, or OpenVinoUnavailable saying how to get it. Every OpenVINO code path imports it so.

    `import openvino` imports its model converter, which sends a usage event to Google Analytics from a forked
    process unless the user has opted out (openvino-telemetry's `opt_in_out --opt_out`). With openvino_telemetry
    unimportable, OpenVINO falls back to its own no-op stub: no usage data leaves the machine (as ONNX Runtime's
    `disable_telemetry_events`), and the user's opt-in file is left as it is.
    """
    if "openvino" not in sys.modules:
        sys.modules.setdefault("openvino_telemetry", None)  # type: ignore[arg-type]  # None makes it unimportable
    try:
        import openvino
    except ImportError as err:
        raise OpenVinoUnavailable(f"OpenVINO is not installed: {INSTALL_HINT}") from err
    return openvino


@functools.cache
def openvino_core() -> Any:
    """The process's one OpenVINO Core, never released: every runner compiles with it.

    Each Core loads its own CPU plugin, and a CPU plugin, when made, replaces the calling thread's alternate signal
    stack (sigaltstack) with one it maps, and when destroyed unmaps it, restoring the stack it found only if its own
    is still the current one. Two Cores released in the order they were made (A then B) thus leave B restoring A's
    stack, already unmapped: the next signal whose handler runs on the alternate stack (Python's, for SIGINT; the
    faulthandler's, for SIGSEGV) cannot be delivered, and the kernel kills the process with SIGSEGV, silently (a
    Ctrl-C in a later training of the same process). One Core has one CPU plugin, and its stack stays mapped.
    """
    return import_openvino().Core()


def cpu_supports_bf16() -> bool:
    """Whether OpenVINO's CPU plugin takes a bf16 hint on this machine: native (AVX-512 BF16, AMX) or emulated (plain
    AVX-512; see check_bf16)."""
    return "BF16" in openvino_core().get_property("CPU", "OPTIMIZATION_CAPABILITIES")


class OpenVinoRunner(Runner):
    backend = "openvino"
    runs_on = "CPU"

    def __init__(self, path: Path, precision: str = "fp32", threads: int | None = None):
        """`precision`: the inference precision hint (fp32 or bf16); `threads`: OpenVINO's inference threads
        (default: OpenVINO's choice, one per physical core, as ONNX Runtime)."""
        check_choice("OpenVINO inference precision", precision, OPENVINO_PRECISIONS)
        if threads is not None:
            check_number("OpenVINO threads", threads, 1)
        import_openvino()  # OpenVinoUnavailable first, where it is not installed
        self.artifact = str(path)
        self.spec = read_onnx_spec(Path(path))
        if self.spec.precision == "int8" and not int8_dot_products():
            logger.warning(NO_VNNI_INT8 + ": expect a larger accuracy drop than on a CPU with VNNI")
        core = openvino_core()
        config: dict[str, Any] = {
            # One synchronous request at a time (the evaluator's calls): LATENCY gives that request every core;
            # THROUGHPUT would split the cores into streams that only parallel requests fill.
            "PERFORMANCE_HINT": "LATENCY",
            # Always explicit: OpenVINO's own default on a BF16-capable CPU is bf16, not what the file says.
            "INFERENCE_PRECISION_HINT": "bf16" if precision == "bf16" else "f32",
        }
        if threads is not None:
            config["INFERENCE_NUM_THREADS"] = threads
        try:
            model = core.read_model(str(path))
        except RuntimeError as err:  # OpenVINO's error for a graph or weights it cannot read
            raise ArtifactError(f"OpenVINO cannot load {path}: {_cause(err)}") from err
        # The graph as read (compiling may rename tensors: a folded input Cast in the FP16 copy), one name each.
        graph_io = ([sorted(i.get_names()) for i in model.inputs], [sorted(o.get_names()) for o in model.outputs])
        if graph_io != ([[self.spec.input_name]], [[self.spec.output_name]]):
            raise ArtifactError(
                f"{path}: its graph has inputs {graph_io[0]} and outputs {graph_io[1]}, its metadata says "
                f"{self.spec.input_name!r} -> {self.spec.output_name!r}"
            )
        try:
            self.compiled = core.compile_model(model, "CPU", config)
        except RuntimeError as err:  # an operation the CPU plugin cannot compile
            raise ArtifactError(f"OpenVINO cannot compile {path}: {_cause(err)}") from err
        # What the CPU plugin really runs, as it reports it after compiling (f32 or bf16).
        self.inference_precision = self.compiled.get_property("INFERENCE_PRECISION_HINT").to_string()
        check_bf16(precision, self.inference_precision, core.get_property("CPU", "FULL_DEVICE_NAME"))
        self.request = self.compiled.create_infer_request()
        self._precision = effective_precision(self.spec.precision, precision)

    @property
    def precision(self) -> str:
        return self._precision

    def _infer(self, images: torch.Tensor) -> np.ndarray:
        feed = images.detach().cpu().numpy()
        outputs = self.request.infer({0: feed})  # by position: the one input and output checked at load
        return np.asarray(outputs[0], dtype=np.float32)  # a copy (share_outputs=False), not the request's buffer


def check_bf16(asked: str, compiled: str, cpu: str, cpu_flags: set[str] | None = None) -> None:
    """Says in one line when BF16 was asked for and this CPU will not really give it.

    OpenVINO's CPU plugin takes a bf16 hint where it has a BF16 path (AVX-512, AVX2-VNNI-2 or AMX) and otherwise
    ignores it quietly and runs FP32: refused here rather than reported as BF16. Without native BF16 instructions
    (AVX-512 BF16, AMX) but with AVX-512, OpenVINO emulates BF16 by conversions: BF16 results, usually no faster than
    FP32, which a warning says. `cpu_flags`: the CPU's feature flags (default: /proc/cpuinfo's, where there is one).
    """
    if asked != "bf16":
        return
    if compiled != "bf16":
        raise OpenVinoUnavailable(
            f"OpenVINO has no BF16 path on this CPU ({cpu}) and would run FP32 instead: ask for fp32"
        )
    flags = read_cpu_flags() if cpu_flags is None else cpu_flags
    if flags and not flags & {"avx512_bf16", "amx_bf16"}:
        logger.warning(
            "this CPU (%s) has no BF16 instructions (avx512_bf16, amx_bf16): OpenVINO emulates BF16, which gives "
            "BF16 results but is usually no faster than FP32",
            cpu,
        )


def effective_precision(artifact_precision: str, hint: str) -> str:
    """The precision a report names: int8 for an INT8 file (its quantized layers); bf16 under the bf16 hint, which
    rounds an FP32 or FP16 file's weights and activations to BF16; else the file's own (fp32, fp16)."""
    if artifact_precision == "int8":
        return "int8"
    return "bf16" if hint == "bf16" else artifact_precision


def _cause(err: Exception) -> str:
    """OpenVINO's message on one line: its C++ source locations ("Exception from src/...cpp:N:", "Check 'x' failed
    at ...") dropped, the lines saying what went wrong kept."""
    lines = [line.strip() for line in str(err).splitlines() if line.strip()]
    causes = [line for line in lines if not line.startswith(("Exception from", "Check '"))]
    return ": ".join(causes or lines) or type(err).__name__


def _open(source: str, options: RunnerOptions) -> Runner:
    return OpenVinoRunner(Path(source), options.inference_precision or "fp32")  # always on the CPU


def _rows(files: ExportedFiles, variant: str | None) -> list[ArtifactRow]:
    """The FP32 file at FP32 and, where the CPU has a BF16 path, BF16; the INT8 Q/DQ file (OpenVINO's own INT8
    kernels read the symmetric form) where the CPU has VNNI (see NO_VNNI_INT8)."""
    rows = []
    if "fp32" in files.onnx:
        rows.append(ArtifactRow("fp32", files.onnx["fp32"], RunnerOptions(inference_precision="fp32")))
        if cpu_supports_bf16():
            rows.append(ArtifactRow("bf16", files.onnx["fp32"], RunnerOptions(inference_precision="bf16")))
    if "int8" in files.onnx and int8_dot_products():
        rows.append(ArtifactRow("int8", files.onnx["int8"]))
    return rows


def _unavailable(variant: str | None) -> str | None:
    try:
        import_openvino()
    except OpenVinoUnavailable as why:
        return str(why)
    return None


BACKEND = Backend(
    "openvino",
    "OpenVINO",
    _open,
    files=(".onnx",),  # when named: ONNX Runtime runs .onnx files by default
    inference_precisions=OPENVINO_PRECISIONS,
    rows=_rows,
    unavailable=_unavailable,
    variants=(("cpu", "cpu"),),
)
