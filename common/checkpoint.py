"""Weights files: safetensors written atomically and stamped with the training step they hold."""

from __future__ import annotations

from pathlib import Path

import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file

from common.errors import CheckpointError
from common.files import staged_file


def save_weights(model: torch.nn.Module, path: Path, step: int | None = None) -> None:
    """Writes a state dict as safetensors, atomically, stamped with the training step it holds."""
    with staged_file(path) as tmp:  # shared like the umask says: safetensors writes 0600, teams share models
        write_weights(model, tmp, step)


def write_weights(model: torch.nn.Module, path: Path, step: int | None = None) -> None:
    """save_weights without the staging, for a caller that stages several files together."""
    state = {k: v.detach().contiguous().cpu() for k, v in model.state_dict().items()}
    save_file(state, str(path), metadata={"step": str(step)} if step is not None else None)


def load_weights(path: Path) -> dict[str, torch.Tensor]:
    """A state dict from a safetensors file; CheckpointError when it is missing or unreadable."""
    if not Path(path).is_file():
        raise CheckpointError(f"no weights file {path}")
    try:
        return load_file(str(path))
    except Exception as err:  # safetensors raises its own error types for truncated or foreign files
        raise CheckpointError(f"cannot read weights {path}: {err}") from err


def weights_step(path: Path) -> int | None:
    """The training step stamped into a weights file by save_weights, if any."""
    with safe_open(str(path), framework="pt") as f:
        step = (f.metadata() or {}).get("step")
    return int(step) if step is not None else None
