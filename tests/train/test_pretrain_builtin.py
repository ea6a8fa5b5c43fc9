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


def test_the_packaged_model_is_replaced_only_when_asked(tmp_path):
    import pytest

    from common.builtin import BUILTIN_DIR
    from common.errors import OptionError, UserError
    from train.pretrain_builtin import DEFAULT_OUT, pretrain_out

    assert pretrain_out(None, False) == DEFAULT_OUT and DEFAULT_OUT.parts[0] == "runs"
    assert pretrain_out(tmp_path / "mine", False) == tmp_path / "mine"
    assert pretrain_out(None, True) == BUILTIN_DIR
    with pytest.raises(OptionError, match="holds the packaged built-in model: add --replace-builtin"):
        pretrain_out(BUILTIN_DIR / ".." / BUILTIN_DIR.name, False)
    with pytest.raises(OptionError, match="give --out or --replace-builtin, not both"):
        pretrain_out(tmp_path / "mine", True)
    (tmp_path / "afile").write_text("x")
    with pytest.raises(UserError, match="is a file, not a folder"):
        pretrain_out(tmp_path / "afile", False)


def test_the_command_refuses_to_write_over_the_packaged_model_before_it_trains():
    from typer.testing import CliRunner

    from cli import app
    from common.builtin import BUILTIN_DIR
    from tests.file_size_limit import file_digests

    before = file_digests(BUILTIN_DIR)
    result = CliRunner().invoke(app, ["pretrain-builtin", "--out", str(BUILTIN_DIR), "--steps", "1"])
    assert result.exit_code == 2 and "add --replace-builtin" in result.stderr
    assert file_digests(BUILTIN_DIR) == before
