"""Tiny open_clip models made here, for tests that need an architecture the built-in model does not have (a ViT:
no BatchNorm, so its training step does not depend on how a batch is split over processes)."""

import json
from pathlib import Path

import open_clip
import torch
from safetensors.torch import save_file

from common.builtin import BUILTIN_DIR

TINY_VIT = {
    "embed_dim": 32,
    "vision_cfg": {"image_size": 64, "layers": 2, "width": 32, "head_width": 16, "patch_size": 16},
    "text_cfg": {"context_length": 16, "vocab_size": 49408, "width": 32, "heads": 2, "layers": 1},
}


def make_tiny_vit(root: Path, seed: int = 0) -> Path:
    """An open_clip model folder (local-dir:ROOT) with a 2-layer ViT and random weights; the built-in model's
    preprocessing, so it reads the built-in benchmark's 64 px images."""
    builtin = json.loads((BUILTIN_DIR / "open_clip_config.json").read_text())
    config = {"model_cfg": TINY_VIT, "preprocess_cfg": builtin["preprocess_cfg"]}
    root.mkdir(parents=True, exist_ok=True)
    (root / "open_clip_config.json").write_text(json.dumps(config, indent=2))
    torch.manual_seed(seed)
    model = open_clip.CLIP(**TINY_VIT)
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(root / "open_clip_model.safetensors"))
    return root
