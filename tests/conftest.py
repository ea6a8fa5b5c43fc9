"""Shared fixtures: everything is made locally from the built-in world; nothing touches the network."""

import os
from pathlib import Path

import pytest
import torch

from tests.tiny_data import copy_tiny_folder
from tests.trackers.environment import tracker_environment

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # a slip that reaches for the hub fails fast instead of hanging
# The built-in evaluation splits at version 1's size (1,200 images, not 5,000): the tests check what the code does,
# not the benchmark's precision, and take a third of the time. Set before any test imports data.world.benchmark, and
# inherited by the CLI subprocesses the tests start. tests/data checks the 5,000-image default itself.
os.environ.setdefault("PROREG_CLIP_EVAL_IMAGES", "1200")
torch.set_num_threads(min(2, torch.get_num_threads()))


@pytest.fixture(scope="session")
def benchmark_root() -> Path:
    from data.world.benchmark import ensure_benchmark

    return ensure_benchmark()


@pytest.fixture
def tiny_folder(tmp_path, benchmark_root) -> Path:
    """An image folder (one sub-folder per class) with 10 images per class, copied from the built-in train split."""
    return copy_tiny_folder(benchmark_root, tmp_path / "tiny")


@pytest.fixture(scope="session")
def builtin_onnx(tmp_path_factory):
    """The zero-shot built-in classifier exported to FP32 ONNX, and its artifact spec."""
    from export.onnx_export import export_onnx
    from serve.torch_runner import TorchRunner

    zero_shot = TorchRunner.builtin_zero_shot("cpu")
    path = tmp_path_factory.mktemp("builtin-onnx") / "model.onnx"
    return export_onnx(zero_shot.model, zero_shot.spec, path), zero_shot.spec


@pytest.fixture
def no_network(monkeypatch):
    """Any attempt to open a network connection fails the test: no command may reach the network."""
    import socket

    attempts: list[str] = []

    def refuse(*args, **kwargs):
        attempts.append(repr(args[:2]))
        raise OSError(f"network access attempted in a test: {args[:2]!r}")

    for name in ("connect", "connect_ex"):
        monkeypatch.setattr(socket.socket, name, refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(socket, "getaddrinfo", refuse)
    yield attempts
    assert attempts == [], f"network access attempted: {attempts}"


@pytest.fixture
def cwd(tmp_path, monkeypatch) -> Path:
    """A fresh, empty working directory per case: runs/ and the default report.json would land here."""
    folder = tmp_path / "cwd"
    folder.mkdir()
    monkeypatch.chdir(folder)
    return folder


@pytest.fixture
def tracker_env(tmp_path, monkeypatch) -> dict[str, str]:
    """For in-process CLI calls: this process's environment set as tracker_environment says."""
    env = tracker_environment(tmp_path / "home")
    for key in [k for k in os.environ if k.startswith(("WANDB_", "MLFLOW_"))]:
        monkeypatch.delenv(key)
    for key, value in env.items():
        if key.startswith(("WANDB_", "MLFLOW_")) or key in ("HOME", "NETRC"):
            monkeypatch.setenv(key, value)
    return env
