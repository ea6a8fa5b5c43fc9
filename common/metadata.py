"""What travels with a classifier: architecture, preprocessing, classes, prompts, temperature.

The same record goes into a run directory's run.json, into the ONNX metadata and into engine sidecars, so every stage
can check that it is being fed the images and classes the model was made for.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass
class ClassifierMeta:
    """Self-description of a CLIP classifier with a fixed text head."""

    model: str  # as the user named it: "builtin", "ViT-B-32", "hf-hub:..."
    pretrained: str | None
    model_config: dict[str, Any]  # the open_clip architecture config: enough to rebuild the towers
    preprocess: dict[str, Any]  # size, mean, std, interpolation, resize_mode, ...
    classes: list[str]  # label strings, in logit order
    prompts: list[str]  # display names put into the templates
    templates: list[str]
    logit_scale: float
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ClassifierMeta:
        known = {k: data[k] for k in cls.__dataclass_fields__ if k in data}
        return cls(**known)

    @property
    def image_size(self) -> int:
        size = self.preprocess.get("size", 224)
        return int(size[0] if isinstance(size, (list, tuple)) else size)
