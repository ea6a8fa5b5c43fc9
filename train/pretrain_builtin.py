"""Contrastive pretraining of the built-in model on the procedural world's captioned images.

This is how `common/assets/builtin` was made (`python cli.py pretrain-builtin`). The corpus draws every attribute
independently (no background bias), so the zero-shot model it yields does not share the task's shortcut.
Identical captions in a batch are positives of each other, not negatives: with short captions such as
"a photo of a star" many images share one, and treating them as negatives would punish the right answer.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import open_clip
import torch
import torch.nn.functional as F
from safetensors.torch import save_file

from common.builtin import BUILTIN_DIR
from common.errors import OptionError, check_number
from common.files import atomic_write_text, check_creatable, staged_file, writable_dir
from common.provenance import git_commit
from common.run import RUNS_ROOT
from data.world.benchmark import IMAGE_SIZE
from data.world.model import BUILTIN_MODEL_CFG, BUILTIN_PREPROCESS_CFG
from data.world.scenes import caption, random_scene, render
from train.config import MAX_SEED


@dataclass(frozen=True)
class PretrainConfig:
    steps: int = 700
    batch_size: int = 256
    corpus_size: int = 16000
    sketch_fraction: float = 0.3
    corrupt_fraction: float = 0.2
    lr: float = 2e-3
    weight_decay: float = 0.1
    seed: int = 0

    def __post_init__(self) -> None:
        check_number("--steps", self.steps, 1)
        check_number("--seed", self.seed, 0, MAX_SEED)


def render_corpus(cfg: PretrainConfig) -> tuple[torch.Tensor, list]:
    """The pretraining images as a normalized float tensor, with their scenes (captions are drawn per step)."""
    rng = np.random.default_rng(cfg.seed)
    scenes = [random_scene(rng, cfg.sketch_fraction, cfg.corrupt_fraction) for _ in range(cfg.corpus_size)]
    pixels = np.stack([np.asarray(render(s, IMAGE_SIZE, rng)) for s in scenes])
    images = torch.from_numpy(pixels).permute(0, 3, 1, 2).float().div_(255)
    mean = torch.tensor(BUILTIN_PREPROCESS_CFG["mean"]).view(1, 3, 1, 1)
    std = torch.tensor(BUILTIN_PREPROCESS_CFG["std"]).view(1, 3, 1, 1)
    return (images - mean) / std, scenes


def caption_aware_clip_loss(image_features, text_features, logit_scale, captions: list[str]) -> torch.Tensor:
    """Symmetric InfoNCE whose targets spread evenly over all items that share a caption."""
    logits = logit_scale * image_features @ text_features.t()
    ids = {c: i for i, c in enumerate(dict.fromkeys(captions))}
    key = torch.tensor([ids[c] for c in captions])
    same = (key[:, None] == key[None, :]).float()
    targets = same / same.sum(dim=1, keepdim=True)
    return 0.5 * (F.cross_entropy(logits, targets) + F.cross_entropy(logits.t(), targets))


DEFAULT_OUT = RUNS_ROOT / "pretrain-builtin"  # beside the runs: the packaged model changes only when asked


def pretrain_out(out: Path | None, replace_builtin: bool) -> Path:
    """Where `pretrain-builtin` writes: `out`, DEFAULT_OUT, or the packaged built-in model's folder with
    `replace_builtin` (alone); an `out` that is that folder needs `replace_builtin` too."""
    if replace_builtin and out is not None:
        raise OptionError("give --out or --replace-builtin, not both (--replace-builtin writes the packaged model)")
    if replace_builtin:
        return BUILTIN_DIR
    if out is not None and Path(out).resolve() == BUILTIN_DIR.resolve():
        raise OptionError(f"{out} holds the packaged built-in model: add --replace-builtin (alone) to replace it")
    folder = out or DEFAULT_OUT
    check_creatable(folder, "output folder")
    return folder


def pretrain_builtin(
    cfg: PretrainConfig = PretrainConfig(),
    out_dir: Path = DEFAULT_OUT,
    on_step: Callable[[int, float], None] | None = None,
) -> dict:
    """Pretrains the built-in model from scratch and writes it as an open_clip local folder."""
    torch.manual_seed(cfg.seed)
    images, scenes = render_corpus(cfg)
    model = open_clip.CLIP(**BUILTIN_MODEL_CFG)
    tokenizer = open_clip.SimpleTokenizer(context_length=BUILTIN_MODEL_CFG["text_cfg"]["context_length"])
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay, betas=(0.9, 0.98))
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=cfg.lr, total_steps=cfg.steps, pct_start=0.1)
    rng = np.random.default_rng(cfg.seed + 1)
    start = time.time()
    model.train()
    for step in range(cfg.steps):
        idx = rng.choice(len(scenes), cfg.batch_size, replace=False)
        captions = [caption(scenes[i], rng) for i in idx]
        img_f, txt_f, scale = model(images[idx], tokenizer(captions))
        loss = caption_aware_clip_loss(img_f, txt_f, scale, captions)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        with torch.no_grad():
            model.logit_scale.clamp_(0, np.log(100))
        if on_step:
            on_step(step, loss.item())
    model.eval()
    info = {"config": asdict(cfg), "seconds": round(time.time() - start, 1), "git_commit": git_commit()}
    save_builtin(model, out_dir, info)
    return info


def save_builtin(model: torch.nn.Module, out_dir: Path, info: dict) -> None:
    writable_dir(out_dir, "output folder")
    state = {k: v.detach().contiguous() for k, v in model.state_dict().items()}
    with staged_file(out_dir / "open_clip_model.safetensors") as tmp:
        save_file(state, str(tmp))
    cfg = {"model_cfg": BUILTIN_MODEL_CFG, "preprocess_cfg": BUILTIN_PREPROCESS_CFG}
    atomic_write_text(out_dir / "open_clip_config.json", json.dumps(cfg, indent=2))
    atomic_write_text(out_dir / "pretrain.json", json.dumps(info, indent=2))
