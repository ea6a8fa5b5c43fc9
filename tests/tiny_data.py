"""Tiny datasets copied from the built-in benchmark, for tests that train for real (conftest's tiny_folder, and
module-scoped fixtures that need the same data once)."""

import csv
import shutil
from pathlib import Path


def copy_tiny_folder(benchmark_root: Path, root: Path, per_class: int = 10) -> Path:
    """An image folder at `root` (one sub-folder per class) with `per_class` images per class of the train split."""
    counts: dict[str, int] = {}
    with open(benchmark_root / "train.csv") as f:
        for row in csv.DictReader(f):
            label = row["label"]
            if counts.get(label, 0) >= per_class:
                continue
            counts[label] = counts.get(label, 0) + 1
            (root / label).mkdir(parents=True, exist_ok=True)
            shutil.copy(benchmark_root / row["path"], root / label / Path(row["path"]).name)
    return root
