"""Image preprocessing, built from the preprocessing config that travels with a model."""

from __future__ import annotations

import functools
import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from open_clip.transform import CenterCropOrPad, MaybeConvertMode, PreprocessCfg, ResizeKeepRatio, image_transform_v2
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


# open_clip's evaluation steps before ToTensor whose effect depends on the image's size alone (not on chance): one
# that leaves a probe image at the output size unchanged leaves every RGB image of that size unchanged.
_GEOMETRIC_STEPS = (T.Resize, T.CenterCrop, CenterCropOrPad, ResizeKeepRatio, MaybeConvertMode)


@dataclass(frozen=True)
class BatchedEvalTransform:
    """open_clip's evaluation preprocessing in two halves whose composition is the same function, bit for bit.

    `to_uint8` runs per image: the PIL steps (resize, crop, RGB), skipped for an RGB image already at the output
    size when they provably change nothing there, then the 8-bit pixels as they lie in memory, [H, W, 3] (stacking
    those is one copy). `normalize` runs once per stacked [N, H, W, 3] uint8 batch: ToTensor's division by 255,
    then Normalize's subtraction and division, the same float32 operations per element as the per-image transform,
    into [N, 3, H, W]; a quarter of the bytes travel through DataLoader workers until then.
    """

    pil_steps: T.Compose
    output_size: tuple[int, int]  # PIL's (width, height)
    skip_at_output_size: bool
    mean: tuple[float, ...]
    std: tuple[float, ...]

    def to_uint8(self, image: Image.Image) -> torch.Tensor:
        """[H, W, 3] uint8 pixels at the output size, from an RGB picture."""
        if not (self.skip_at_output_size and image.size == self.output_size and image.mode == "RGB"):
            image = self.pil_steps(image)
        return torch.from_numpy(np.array(image))  # a writable copy, as ToTensor makes

    def normalize(self, images: torch.Tensor) -> torch.Tensor:
        """[N, 3, H, W] float32 from [N, H, W, 3] uint8."""
        # In numpy, on one thread: torch splits a whole batch over OpenMP threads, which on a few cores fight the
        # runtime's own (measured on 2 shared cores: 25 ms a 64-image batch at 64 px, numpy under 1 ms). float32
        # and the same IEEE operations in the same order as ToTensor and Normalize: the same floats, bit for bit.
        pixels = images.numpy().transpose(0, 3, 1, 2)
        out = np.empty(pixels.shape, dtype=np.float32)
        np.divide(pixels, np.float32(255), out=out)  # uint8 -> float32, then the division, in one pass
        np.subtract(out, np.array(self.mean, dtype=np.float32).reshape(1, -1, 1, 1), out=out)
        np.divide(out, np.array(self.std, dtype=np.float32).reshape(1, -1, 1, 1), out=out)
        return torch.from_numpy(out)


def batched_eval_transform(preprocess: dict[str, Any]) -> BatchedEvalTransform | None:
    """`eval_transform(preprocess)` split at ToTensor (BatchedEvalTransform); None when open_clip built it in
    another shape than [PIL steps ending in an RGB conversion, ToTensor, Normalize], which then runs whole. Built
    once per preprocessing (each set and runner of an evaluation asks again; the split is stateless)."""
    return _batched_eval_transform(json.dumps(preprocess, sort_keys=True))


@functools.lru_cache(maxsize=16)
def _batched_eval_transform(preprocess_json: str) -> BatchedEvalTransform | None:
    preprocess = json.loads(preprocess_json)
    steps = list(eval_transform(preprocess).transforms)  # type: ignore[attr-defined]  # a torchvision Compose
    if len(steps) < 3 or not isinstance(steps[-2], T.ToTensor) or not isinstance(steps[-1], T.Normalize):
        return None
    if not isinstance(steps[-3], MaybeConvertMode) or steps[-3].mode != "RGB":
        return None
    size = _cfg(preprocess).size
    height, width = (size, size) if isinstance(size, int) else size
    pil_steps = T.Compose(steps[:-2])
    return BatchedEvalTransform(
        pil_steps=pil_steps,
        output_size=(width, height),
        skip_at_output_size=_no_op_at_size(pil_steps, (width, height)),
        mean=tuple(float(m) for m in steps[-1].mean),
        std=tuple(float(s) for s in steps[-1].std),
    )


def _no_op_at_size(pil_steps: T.Compose, size: tuple[int, int]) -> bool:
    """Whether the steps return an RGB image of `size` unchanged: each is geometric and none random, and a noise probe
    of that size comes back the same."""
    for step in pil_steps.transforms:
        if not isinstance(step, _GEOMETRIC_STEPS):
            return False
        if isinstance(step, ResizeKeepRatio) and (step.random_scale_prob or step.random_aspect_prob):
            return False
    probe = np.random.default_rng(0).integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)
    out = pil_steps(Image.fromarray(probe))
    return out.mode == "RGB" and out.size == size and np.array_equal(np.asarray(out), probe)
