"""The built-in model: its one name and where it lives. It is the default model of every command, a tiny CLIP
pretrained on the built-in world (data/world/) and stored as an open_clip local folder; `python cli.py
pretrain-builtin` (train/pretrain_builtin.py) writes it from scratch."""

from pathlib import Path

# The one name of the built-in model (--model, --checkpoint) and of the built-in benchmark (--data).
BUILTIN = "builtin"
BUILTIN_DIR = Path(__file__).parent / "assets" / "builtin"
