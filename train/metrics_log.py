"""metrics.jsonl: one JSON object per line, appended and flushed as written (common.run reads it)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from common.run import read_metrics


class MetricsLog:
    def __init__(self, path: Path):
        self.path = Path(path)

    def write(self, record: dict[str, Any]) -> None:
        with open(self.path, "a") as f:
            f.write(json.dumps(record) + "\n")

    def truncate_after(self, step: int) -> None:
        """Drops records past `step`; run on resume, since those steps are about to be taken again."""
        kept = [r for r in read_metrics(self.path) if r.get("step", 0) <= step]
        self.path.write_text("".join(json.dumps(r) + "\n" for r in kept))
