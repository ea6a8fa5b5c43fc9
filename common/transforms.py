"""Image preprocessing, built from the preprocessing config that travels with a model."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from open_clip.transform import PreprocessCfg, image_transform_v2
from PIL import Image
from torchvision import transforms as T

from common.errors import check_choice

AUGMENTATIONS = ("randaugment", "none")


def _cfg(preprocess: dict[str, Any]) -> PreprocessCfg:
    fields = PreprocessCfg.__dataclass_fields__
    return PreprocessCfg(**{k: (tuple(v) if isinstance(v, list) else v) for k, v in preprocess.items() if k in fields})


def eval_transform(preprocess: dict[str, Any]) -> Callable[[Image.Image], torch.Tensor]:
    """Exactly open_clip's evaluation preprocessing for this config."""
    return image_transform_v2(_cfg(preprocess), is_train=False)


def train_transform(preprocess: dict[str, Any], augment: str) -> Callable[[Image.Image], torch.Tensor]:
    """Evaluation preprocessing, preceded by RandAugment(2, 9) as in the ProReg recipe when `augment` asks."""
    check_choice("augmentation", augment, AUGMENTATIONS)
    base = eval_transform(preprocess)
    if augment == "none":
        return base
    return T.Compose([T.RandAugment(num_ops=2, magnitude=9), base])
