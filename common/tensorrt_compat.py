"""The one import guard for TensorRT, and a logger that keeps its errors for our messages.

TensorRT is optional: it needs an NVIDIA GPU and wheels from NVIDIA's index. Every TensorRT code path starts with
`import_tensorrt()`, which says in one line what is missing and how to get it.
"""

from __future__ import annotations

from types import ModuleType
from typing import TYPE_CHECKING

from common.errors import UserError

if TYPE_CHECKING:
    import tensorrt as trt  # tensorrt-stubs, made usable for mypy by scripts/trt_stubs.py

INSTALL_HINT = (
    "build engines on a machine with an NVIDIA GPU after `pip install tensorrt` (10.x or 11.x), e.g. "
    "`python cli.py export --checkpoint RUN --fp16`; the ONNX files made here are what it builds from"
)


class TensorRTUnavailable(UserError):
    """TensorRT or a CUDA GPU is missing."""


def import_tensorrt() -> ModuleType:
    """The tensorrt module, or TensorRTUnavailable saying how to get it.

    mypy cannot type a module that a function returns, so type-checked code calls this as a guard and then imports
    tensorrt itself: `import_tensorrt()` then `import tensorrt as trt`.
    """
    try:
        import tensorrt as trt
    except ImportError as err:
        raise TensorRTUnavailable(f"TensorRT is not installed: {INSTALL_HINT}") from err
    # tensorrt-stubs alone leaves a `tensorrt` folder of .pyi files, which imports as an empty namespace package.
    if not hasattr(trt, "Builder"):
        raise TensorRTUnavailable(f"TensorRT is not installed (only its type stubs are): {INSTALL_HINT}")
    return trt


def tensorrt_missing_reason() -> str | None:
    """Why an engine cannot be built or run here, or None when it can."""
    try:
        import_tensorrt()
    except TensorRTUnavailable as err:
        return str(err)
    import torch

    if not torch.cuda.is_available():
        return f"no CUDA GPU is visible: {INSTALL_HINT}"
    return None


def capturing_logger() -> tuple[trt.ILogger, list[str]]:
    """A trt.ILogger and the error messages it records (call after `import_tensorrt()`): TensorRT reports failures
    (a foreign engine, a bad graph) there, while the Python call just returns None. The logger must outlive what it
    is given to."""
    import tensorrt as trt

    errors: list[str] = []

    class CapturingLogger(trt.ILogger):
        def __init__(self) -> None:
            trt.ILogger.__init__(self)

        def log(self, severity: trt.ILogger.Severity, msg: str) -> None:
            if severity in (trt.ILogger.ERROR, trt.ILogger.INTERNAL_ERROR):
                errors.append(msg)

    return CapturingLogger(), errors


def gpu_identity() -> dict[str, str]:
    """Name and compute capability of the current GPU, which an engine is tied to."""
    import torch

    major, minor = torch.cuda.get_device_capability()
    return {"gpu": torch.cuda.get_device_name(), "compute_capability": f"{major}.{minor}"}
