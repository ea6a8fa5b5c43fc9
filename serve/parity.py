"""Parity of an exported model with its source, on real images of the task, with limits per precision.

The metric is the one agreement of serve.metrics: the largest absolute logit difference and top-1 agreement.
Logits are cosines times ~100, so absolute differences are in those units.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from common.artifact import ClassifierMeta
from data.labeled import LabeledImages
from data.loading import read_batch
from data.transforms import eval_transform
from serve.metrics import agreement
from serve.runner import Runner

# (max |logit diff|, min top-1 agreement) that an export must meet on the parity images.
TOLERANCES = {"fp32": (0.05, 0.99), "fp16": (1.0, 0.97), "int8": (float("inf"), 0.90)}


@dataclass
class Parity:
    n: int
    max_abs_logit_diff: float
    top1_agreement: float
    precision: str

    @property
    def passed(self) -> bool:
        max_diff, min_agree = TOLERANCES[self.precision]
        return self.max_abs_logit_diff <= max_diff and self.top1_agreement >= min_agree

    def describe(self) -> str:
        max_diff, min_agree = TOLERANCES[self.precision]
        limit = "none" if max_diff == float("inf") else max_diff
        return (
            f"{self.precision} parity on {self.n} task images: max |logit diff| {self.max_abs_logit_diff:.4g} "
            f"(limit {limit}), top-1 agreement {100 * self.top1_agreement:.2f}% (limit {100 * min_agree:.0f}%)"
        )


def parity_images(data: LabeledImages, classifier: ClassifierMeta, n: int = 256) -> torch.Tensor:
    """The first `n` readable images of `data`, preprocessed as the classifier's metadata says."""
    first = LabeledImages(data.name, data.classes, data.samples[: max(n, 1)])
    return read_batch(first, eval_transform(classifier.preprocess)).images  # read_batch refuses all-unreadable sets


def check_parity(reference: Runner, candidate: Runner, images: torch.Tensor, batch_size: int = 64) -> Parity:
    ref = np.concatenate([reference.infer(images[i : i + batch_size]) for i in range(0, len(images), batch_size)])
    out = np.concatenate([candidate.infer(images[i : i + batch_size]) for i in range(0, len(images), batch_size)])
    measured = agreement(out, ref)
    diff, agree = measured.max_abs_logit_diff, measured.top1_agreement
    assert diff is not None and agree is not None  # parity_images never returns an empty batch
    return Parity(len(images), diff, agree, candidate.precision)
