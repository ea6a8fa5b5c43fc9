"""Silencing libraries that log routine notes as warnings."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator


@contextlib.contextmanager
def quiet_logger(name: str | None = None) -> Iterator[None]:
    """Raises a logger to ERROR for a while: libraries we call log routine notes as warnings (open_clip: no weights
    loaded, on purpose; the ONNX optimizer: skipped folds; the quantizer: advice to pre-process)."""
    logger = logging.getLogger(name)
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        logger.setLevel(level)
