"""The built-in model's pretraining writes a folder open_clip loads, with the project's own loader."""

import torch

from common.classifier import text_classifier
from common.models import load_clip


def test_pretraining_writes_a_loadable_open_clip_folder(tmp_path):
    from train.pretrain_builtin import PretrainConfig, pretrain_builtin

    losses = []
    cfg = PretrainConfig(steps=3, batch_size=16, corpus_size=32)
    info = pretrain_builtin(cfg, tmp_path / "tiny", on_step=lambda step, loss: losses.append(loss))
    assert len(losses) == 3 and all(loss > 0 for loss in losses)
    assert info["config"]["steps"] == 3
    clip = load_clip(f"local-dir:{tmp_path / 'tiny'}")
    assert clip.preprocess["size"] == 64
    w = text_classifier(clip, ["star", "circle"], ["a photo of a {}"])
    torch.testing.assert_close(w.norm(dim=-1), torch.ones(2))
