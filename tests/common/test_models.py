"""Loading open_clip models by every kind of name, with one-line errors for what cannot be loaded."""

import pytest
import torch

from common.builtin import BUILTIN
from common.errors import OptionError
from common.models import ModelError, load_clip, pick_device


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


@pytest.fixture
def four_gpus(monkeypatch):
    """A machine with four GPUs, as far as choosing one goes."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 4)
    for name in ("RANK", "WORLD_SIZE", "LOCAL_RANK"):
        monkeypatch.delenv(name, raising=False)


def test_a_gpu_is_always_named_with_its_index(four_gpus):
    # `cuda` without an index means "the current GPU", GPU 0 until someone calls set_device: never left implicit.
    assert pick_device("auto") == pick_device("cuda") == torch.device("cuda", 0)
    assert pick_device("cuda:3") == torch.device("cuda", 3) and pick_device("cpu") == torch.device("cpu")
    with pytest.raises(OptionError, match=r"device 'cuda:4' is not on this machine \(4 CUDA GPUs visible\)"):
        pick_device("cuda:4")
    with pytest.raises(OptionError, match="unknown device 'gpu'"):
        pick_device("gpu")


def test_under_torchrun_each_rank_takes_the_gpu_of_its_local_rank(four_gpus, monkeypatch):
    monkeypatch.setenv("WORLD_SIZE", "8")  # two nodes of four
    monkeypatch.setenv("RANK", "6")
    monkeypatch.setenv("LOCAL_RANK", "2")
    assert pick_device("auto") == pick_device("cuda") == torch.device("cuda", 2)
    assert pick_device("cpu") == torch.device("cpu")
    with pytest.raises(OptionError, match="'cuda:1' under torchrun would put every process on one GPU: give --device"):
        pick_device("cuda:1")


def test_without_a_gpu_auto_is_the_cpu_and_cuda_is_refused(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 0)
    assert pick_device("auto") == torch.device("cpu")
    with pytest.raises(OptionError, match=r"device 'cuda' is not on this machine \(0 CUDA GPUs visible\)"):
        pick_device("cuda")
