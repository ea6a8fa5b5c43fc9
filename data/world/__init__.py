"""The built-in world: procedurally drawn, captioned images (scenes), the biased benchmark and the held-out shifts
drawn from them (benchmark, shifts), and the architecture of the tiny CLIP pretrained on them (model). Its benchmark
is the default data of every command."""

from common.builtin import BUILTIN

# The held-out image-shift suite of the built-in world (--data), for evaluation only.
BUILTIN_HOLDOUT = "builtin-holdout"

__all__ = ["BUILTIN", "BUILTIN_HOLDOUT"]
