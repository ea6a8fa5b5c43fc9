"""BAR as alinlab/BAR ships it: flat train/ and test/ folders of '<action>_<n>.jpg' ('pole vaulting_<n>.jpg'), the
test numbers continuing the train ones, and metadata.json keyed by the file stem ({"cls": .., "train": ..});
2 train and 1 test image per action."""

from __future__ import annotations

import json
from pathlib import Path

from data.suites.bar import ACTIONS
from tests.suite_layouts.images import tiny_image

TRAIN, TEST = 2, 1  # images per action


def make(root: Path) -> Path:
    metadata = {}
    for a, action in enumerate(ACTIONS.values()):
        for n in range(TRAIN + TEST):
            split = "train" if n < TRAIN else "test"
            tiny_image(root / split / f"{action}_{n}.jpg", seed=10 * a + n)
            metadata[f"{action}_{n}"] = {"cls": action, "source": "imSitu", "train": split == "train"}
    (root / "metadata.json").write_text(json.dumps(metadata, indent=4, sort_keys=True))
    return root
