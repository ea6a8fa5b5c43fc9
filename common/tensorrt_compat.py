"""The one import guard for TensorRT, and the one logger, which routes its errors to the call that caused them.

TensorRT is optional: it needs an NVIDIA GPU and wheels from NVIDIA's index. Every TensorRT code path starts with
`import_tensorrt()`, which says in one line what is missing and how to get it.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import threading
from collections.abc import Iterator
from types import ModuleType
from typing import TYPE_CHECKING

from common.errors import UserError

if TYPE_CHECKING:
    import tensorrt as trt  # tensorrt-stubs, made usable for mypy by scripts/trt_stubs.py
    import torch

log = logging.getLogger(__name__)

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


class LogRouter:
    """Routes TensorRT's error messages to whoever asked for the call that raised them.

    A TensorRT Python call that fails mostly returns None or False and says why only to its logger; and one logger
    must serve the whole process (TensorRT 8.x kept a single logger pointer: objects made later with another logger
    logged to the first). So every builder and runtime gets the one `tensorrt_logger()`, and each call whose failure
    we report runs inside `capture()`, which collects the messages logged meanwhile by this thread. Messages nobody
    captures go to Python's logging."""

    def __init__(self) -> None:
        self._local = threading.local()

    def _stack(self) -> list[list[str]]:
        if not hasattr(self._local, "stack"):
            self._local.stack = []
        stack: list[list[str]] = self._local.stack
        return stack

    @contextlib.contextmanager
    def capture(self) -> Iterator[list[str]]:
        """The error messages logged by this thread until the block ends (nested blocks take their own)."""
        errors: list[str] = []
        self._stack().append(errors)
        try:
            yield errors
        finally:
            self._stack().pop()

    def error(self, message: str) -> None:
        stack = self._stack()
        if stack:
            stack[-1].append(message)
        else:
            log.error("TensorRT: %s", message)


TENSORRT_LOG = LogRouter()


@functools.cache
def tensorrt_logger() -> trt.ILogger:
    """The process's one trt.ILogger (call after `import_tensorrt()`); its errors go to TENSORRT_LOG. Cached for the
    life of the process, so it outlives every builder, runtime and engine given it."""
    import tensorrt as trt

    class RoutingLogger(trt.ILogger):
        def __init__(self) -> None:
            trt.ILogger.__init__(self)

        def log(self, severity: trt.ILogger.Severity, msg: str) -> None:
            if severity in (trt.ILogger.ERROR, trt.ILogger.INTERNAL_ERROR):
                TENSORRT_LOG.error(msg)

    return RoutingLogger()


def gpu_identity(device: torch.device) -> dict[str, str]:
    """Name and compute capability of the GPU `device`, which an engine is tied to."""
    import torch

    major, minor = torch.cuda.get_device_capability(device)
    return {"gpu": torch.cuda.get_device_name(device), "compute_capability": f"{major}.{minor}"}
