"""The built-in world: procedurally drawn, captioned images (scenes), the biased benchmark drawn from them (suite),
and the tiny CLIP pretrained on them (model). It is the default model and data of every command."""

# The one name of the built-in model (--model, --checkpoint) and of the built-in benchmark (--data).
BUILTIN = "builtin"
# The held-out image-shift suite of the built-in world (--data), for evaluation only.
BUILTIN_HOLDOUT = "builtin-holdout"
