"""data.transforms.BatchedEvalTransform: open_clip's evaluation preprocessing split into a per-image uint8 half and
a per-batch normalization, equal bit for bit to the per-image transform."""

import numpy as np
import pytest
import torch
from PIL import Image
from torchvision import transforms as T

from data.transforms import _no_op_at_size, batched_eval_transform, eval_transform

MEAN, STD = [0.48145466, 0.4578275, 0.40821073], [0.26862954, 0.26130258, 0.27577711]


def preprocess(size, resize_mode: str) -> dict:
    return {"size": size, "mean": MEAN, "std": STD, "interpolation": "bicubic", "resize_mode": resize_mode}


def noise_images(sizes: list[tuple[int, int]]) -> list[Image.Image]:
    rng = np.random.default_rng(0)
    return [Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)) for w, h in sizes]


@pytest.mark.parametrize("resize_mode", ["shortest", "longest", "squash"])
@pytest.mark.parametrize("size", [64, (48, 64)])
def test_split_transform_equals_open_clips_bit_for_bit(resize_mode, size):
    config = preprocess(size, resize_mode)
    whole, batched = eval_transform(config), batched_eval_transform(config)
    assert batched is not None and batched.skip_at_output_size
    height, width = (size, size) if isinstance(size, int) else size
    images = noise_images([(width, height), (80, 50), (50, 80), (33, 33), (width, height)])
    expected = torch.stack([whole(im) for im in images])
    from_pictures = batched.normalize(torch.stack([batched.to_uint8(im) for im in images]))
    assert from_pictures.dtype == torch.float32 and torch.equal(from_pictures, expected)


def test_steps_are_skipped_only_when_they_change_nothing():
    size = (16, 16)
    assert _no_op_at_size(T.Compose([T.Resize(16), T.CenterCrop(16)]), size)
    assert not _no_op_at_size(T.Compose([T.Resize(12), T.CenterCrop(16)]), size)  # upsamples a 16 px image
    assert not _no_op_at_size(T.Compose([T.ColorJitter(0.5)]), size)  # not geometric: never skipped


def test_every_8_bit_value_of_every_channel_normalizes_to_the_same_float():
    config = preprocess(16, "shortest")
    values = np.arange(256, dtype=np.uint8)
    image = Image.fromarray(np.stack([values, values[::-1], np.roll(values, 7)], -1).reshape(16, 16, 3))
    batched = batched_eval_transform(config)
    assert torch.equal(batched.normalize(batched.to_uint8(image)[None])[0], eval_transform(config)(image))
