"""Pictures the project writes: matplotlib without a display (Agg), and a figure saved atomically (written under a
temporary name, then moved), so a reader never sees half a PNG."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from common.files import staged_file


def pyplot() -> Any:
    """matplotlib.pyplot on the Agg backend, imported on first use (not at the CLI's start-up)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save_figure(fig: Any, path: Path, dpi: int = 100, tight: bool = False) -> None:
    """Writes `fig` to `path` atomically and closes it; `tight` crops to what is drawn (a legend outside the axes)."""
    try:
        with staged_file(path, ".png") as tmp:
            fig.savefig(tmp, dpi=dpi, **({"bbox_inches": "tight"} if tight else {}))
    finally:
        pyplot().close(fig)
