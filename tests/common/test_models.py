"""Loading open_clip models by every kind of name, with one-line errors for what cannot be loaded."""

import pytest

from common.models import ModelError, load_clip
from common.world import BUILTIN


@pytest.fixture(scope="module")
def builtin_clip():
    return load_clip(BUILTIN)


def test_builtin_loads_as_open_clip_local_folder(builtin_clip):
    assert builtin_clip.name.startswith("local-dir:")
    assert builtin_clip.preprocess["size"] == 64
    assert builtin_clip.config["vision_cfg"]["layers"] == [1, 1, 1, 1]


def test_unknown_model_and_missing_weights_are_one_line_errors(tmp_path):
    with pytest.raises(ModelError, match="unknown model 'ViT-Q-99'"):
        load_clip("ViT-Q-99")
    with pytest.raises(ModelError, match="neither a file nor a pretrained tag"):
        load_clip("RN50", pretrained=str(tmp_path / "missing.pt"))
    with pytest.raises(ModelError, match="no open_clip_config.json"):
        load_clip(f"local-dir:{tmp_path}")
