"""metrics.jsonl: one JSON object per line, each appended in one write (common.run reads it)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from common.files import append_json_line, atomic_write_text, strict_json
from common.run import read_metrics


class MetricsLog:
    """metrics.jsonl, and whoever else wants each record as it is written (`listeners`: the trackers)."""

    def __init__(self, path: Path, listeners: list[Callable[[dict[str, Any]], None]] | None = None):
        self.path = Path(path)
        self.listeners = listeners or []

    def write(self, record: dict[str, Any]) -> None:
        append_json_line(self.path, record)
        for listener in self.listeners:
            listener(record)

    def truncate_after(self, step: int) -> None:
        """Drops records past `step` (and a torn last line); run on resume, since those steps are taken again."""
        kept = [r for r in read_metrics(self.path) if r.get("step", 0) <= step]
        atomic_write_text(self.path, "".join(strict_json(r, indent=None) + "\n" for r in kept))
