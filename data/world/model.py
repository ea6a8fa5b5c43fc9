"""What the built-in model is: an open_clip ModifiedResNet CLIP small enough for a CPU, at the world's image size.

`python cli.py pretrain-builtin` (train/pretrain_builtin.py) writes it from scratch into common.builtin.BUILTIN_DIR.
"""

from __future__ import annotations

from typing import Any

import open_clip

from data.world.benchmark import IMAGE_SIZE

BUILTIN_MODEL_CFG: dict[str, Any] = {
    "embed_dim": 64,
    "vision_cfg": {"image_size": IMAGE_SIZE, "layers": [1, 1, 1, 1], "width": 16, "head_width": 32},
    "text_cfg": {"context_length": 16, "vocab_size": 49408, "width": 64, "heads": 2, "layers": 2},
}
BUILTIN_PREPROCESS_CFG: dict[str, Any] = {
    "size": IMAGE_SIZE,
    "mean": list(open_clip.OPENAI_DATASET_MEAN),
    "std": list(open_clip.OPENAI_DATASET_STD),
    "interpolation": "bicubic",
    "resize_mode": "shortest",
}
