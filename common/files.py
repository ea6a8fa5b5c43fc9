"""Where the project keeps generated files, and writes that readers never see half done."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any


def cache_root() -> Path:
    """Where generated data lives (the built-in benchmark, calibration tensors): $PROREG_CACHE, else
    ~/.cache/proreg-clip."""
    return Path(os.environ.get("PROREG_CACHE", Path.home() / ".cache" / "proreg-clip"))


def atomic_write_text(path: Path, text: str) -> None:
    """Writes `text` so that readers see the old file or the new one, never half of it."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_json(path: Path, data: Any) -> None:
    atomic_write_text(path, json.dumps(data, indent=2) + "\n")
