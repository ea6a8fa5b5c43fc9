"""Loading open_clip models and building image towers from a saved architecture config.

A model is named the open_clip way: an architecture name with a pretrained tag or a local checkpoint file
(`ViT-B-32` + `laion2b_s34b_b79k` or `/path/to/open_clip_model.safetensors`), a hub id (`hf-hub:org/repo`), a local
folder (`local-dir:/path`), or `builtin`, the tiny model this project ships (itself an open_clip local folder).
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import open_clip
import torch
from torch import nn

from common.builtin import BUILTIN, BUILTIN_DIR
from common.errors import OptionError, UserError
from common.quiet_logging import quiet_logger


class ModelError(UserError):
    """A model that cannot be found or loaded."""


@dataclass
class LoadedClip:
    """An open_clip model with everything that travels with it."""

    model: nn.Module
    tokenizer: Callable[..., torch.Tensor]
    name: str  # as open_clip understands it
    pretrained: str | None
    preprocess: dict[str, Any]
    config: dict[str, Any]


def pick_device(name: str = "auto") -> torch.device:
    """The device this process runs a model on, always with an index for a GPU (so that nothing lands on whatever
    GPU happens to be current): `auto` is this process's GPU when one is visible, else the CPU; `cuda` is this
    process's GPU, cuda:0, or under torchrun the GPU of its LOCAL_RANK. An explicit `cuda:N` under torchrun would put
    every rank on one GPU, and is refused. A device this machine lacks is an OptionError."""
    from common.distributed import from_environment

    ranks = from_environment()
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    try:
        device = torch.device(name)
    except RuntimeError as err:
        raise OptionError(f"unknown device {name!r} (auto, cpu, cuda or cuda:N)") from err
    if device.type not in ("cpu", "cuda"):
        raise OptionError(f"device {name!r} is not supported here (auto, cpu, cuda or cuda:N)")
    if device.type == "cpu":
        return torch.device("cpu")
    count = torch.cuda.device_count()
    if device.index is not None and ranks.distributed:
        raise OptionError(
            f"device {name!r} under torchrun would put every process on one GPU: give --device cuda (each process "
            "takes the GPU of its LOCAL_RANK) and choose the GPUs with CUDA_VISIBLE_DEVICES"
        )
    index = device.index if device.index is not None else ranks.local_rank % max(count, 1)
    if index >= count:
        raise OptionError(f"device {name!r} is not on this machine ({count} CUDA GPUs visible)")
    return torch.device("cuda", index)


def cuda_missing_reason() -> str | None:
    """Why no CUDA GPU can be used here (what would make one usable), or None when one can."""
    if torch.cuda.is_available():
        return None
    if torch.version.cuda is None:
        return f"no CUDA GPU: torch {torch.__version__} is a CPU build (install a CUDA build on a machine with a GPU)"
    build = f"torch {torch.__version__} is built for CUDA {torch.version.cuda}"
    return f"no CUDA GPU is visible ({build}: needs an NVIDIA GPU and its driver)"


def resolve_model_name(model: str) -> str:
    """Maps our `builtin` alias onto the open_clip local folder that holds it."""
    return f"local-dir:{BUILTIN_DIR}" if model == BUILTIN else model


def _check_source(name: str, pretrained: str | None) -> None:
    schema, ident = open_clip.factory.parse_model_name(name)
    if schema in ("local-dir", "hf-hub") and pretrained:
        raise ModelError(f"{name} carries its own weights; --pretrained {pretrained!r} would be ignored")
    if schema == "local-dir" and not (Path(ident) / "open_clip_config.json").is_file():
        raise ModelError(f"no open_clip_config.json in model folder: {ident}")
    if schema is None and name not in open_clip.list_models():
        raise ModelError(f"unknown model {name!r} (open_clip knows: {', '.join(open_clip.list_models()[:8])}, ...)")
    if schema is None and pretrained and not Path(pretrained).exists():
        known = open_clip.list_pretrained_tags_by_model(name)
        if pretrained not in known:
            raise ModelError(f"{pretrained!r} is neither a file nor a pretrained tag of {name} ({', '.join(known)})")


def load_clip(model: str, pretrained: str | None = None, device: str | torch.device = "cpu") -> LoadedClip:
    """Loads an open_clip model, its tokenizer and its preprocessing config, in eval mode."""
    if model == BUILTIN and pretrained:
        raise ModelError(f"the built-in model carries its own weights; --pretrained {pretrained!r} would be ignored")
    name = resolve_model_name(model)
    _check_source(name, pretrained)
    try:
        clip = open_clip.create_model(name, pretrained=pretrained, device=device, require_pretrained=True)
    except Exception as err:  # open_clip raises many kinds; the user needs one line
        raise ModelError(f"cannot load model {model!r} (pretrained {pretrained!r}): {err}".splitlines()[0]) from err
    clip.eval()
    return LoadedClip(
        model=clip,
        tokenizer=open_clip.get_tokenizer(name),
        name=name,
        pretrained=pretrained,
        preprocess=dict(open_clip.get_model_preprocess_cfg(clip)),
        config=open_clip.get_model_config(name) or {},
    )


def build_visual(config: dict[str, Any], preprocess: dict[str, Any]) -> nn.Module:
    """An untrained image tower of the architecture `config` describes (its weights come from a checkpoint).

    The config goes through a temporary open_clip local folder, so every architecture open_clip can build
    (ViT, ModifiedResNet, timm towers) is built by open_clip's own factory.
    """
    with tempfile.TemporaryDirectory() as tmp, quiet_logger():  # "no weights loaded" is the point here
        cfg = {"model_cfg": config, "preprocess_cfg": preprocess}
        (Path(tmp) / "open_clip_config.json").write_text(json.dumps(cfg))
        # pretrained_text=False: a Hugging Face text tower would otherwise fetch its weights, which we never use here.
        clip = open_clip.create_model(f"local-dir:{tmp}", load_weights=False, pretrained_text=False)
    return clip.visual
