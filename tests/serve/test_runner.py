"""Tests for serve.runner input checks on the torch, ONNX Runtime and OpenVINO runners, and serve.backends' choices."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from common.artifact import DEFAULT_TEMPLATES, ArtifactError, write_onnx_spec
from common.checkpoint import save_weights
from common.classifier import zero_shot_classifier
from common.errors import CheckpointError, OptionError
from common.run import DataSource, RunData, RunRecord, open_run, write_run_record
from data.labeled import load_dataset
from data.loading import read_batch
from data.specs import builtin_classnames
from data.transforms import eval_transform
from serve.backends import BACKENDS, backend_for, open_runner
from serve.onnxruntime_runner import OnnxRuntimeRunner
from serve.runner import Runner, RunnerInputError
from serve.torch_runner import TorchRunner

BACKEND_NAMES = ["torch", "onnxruntime", "openvino"]


@pytest.fixture(scope="module")
def torch_runner() -> Runner:
    return open_runner("builtin", device="cpu")


@pytest.fixture(scope="module")
def onnxruntime_runner(builtin_onnx) -> Runner:
    path, _ = builtin_onnx
    return open_runner(path)


@pytest.fixture(scope="module")
def openvino_runner(builtin_onnx) -> Runner:
    pytest.importorskip("openvino", reason='pip install "proreg-clip[openvino]"')
    path, _ = builtin_onnx
    return open_runner(path, "openvino")


@pytest.fixture(params=BACKEND_NAMES)
def runner(request) -> Runner:
    return request.getfixturevalue(f"{request.param}_runner")


def real_images(folder: Path, runner: Runner, per_class: int = 2) -> tuple[torch.Tensor, np.ndarray]:
    """A few images of every class of `folder`, preprocessed as the runner's spec says."""
    data = load_dataset(folder, classes=runner.spec.classes)
    data.samples = [s for c in range(len(data.classes)) for s in [s for s in data.samples if s.label == c][:per_class]]
    batch = read_batch(data, eval_transform(runner.spec.classifier.preprocess))
    return batch.images, batch.labels.numpy()


def test_the_runners_are_the_backends_they_claim(torch_runner, onnxruntime_runner, builtin_onnx) -> None:
    assert isinstance(torch_runner, TorchRunner) and torch_runner.backend == "torch"
    assert torch_runner.artifact == "builtin"
    assert isinstance(onnxruntime_runner, OnnxRuntimeRunner) and onnxruntime_runner.backend == "onnxruntime"
    assert onnxruntime_runner.artifact == str(builtin_onnx[0])
    assert onnxruntime_runner.spec == builtin_onnx[1]
    assert onnxruntime_runner.spec.classes == torch_runner.spec.classes == list(builtin_classnames())
    assert onnxruntime_runner.precision == torch_runner.precision == "fp32"


@pytest.mark.parametrize(
    ("images", "got"),
    [
        (torch.zeros(2, 3, 32, 32), "[2, 3, 32, 32]"),  # wrong spatial size
        (torch.zeros(2, 3, 64, 65), "[2, 3, 64, 65]"),  # not square
        (torch.zeros(2, 1, 64, 64), "[2, 1, 64, 64]"),  # one channel
        (torch.zeros(2, 4, 64, 64), "[2, 4, 64, 64]"),  # RGBA
        (torch.zeros(3, 64, 64), "[3, 64, 64]"),  # one image without the batch dimension
        (torch.zeros(1, 2, 3, 64, 64), "[1, 2, 3, 64, 64]"),
    ],
)
def test_wrong_shape_is_one_clear_error(runner: Runner, images: torch.Tensor, got: str) -> None:
    size = runner.spec.classifier.image_size
    assert size == 64  # the built-in model's input size
    expected = f"{runner.artifact} takes images of shape [N, 3, 64, 64], got {got}"
    with pytest.raises(RunnerInputError, match=f"^{re.escape(expected)}$"):
        runner.infer(images)


@pytest.mark.parametrize(
    ("images", "got"),
    [
        (torch.zeros(2, 3, 64, 64, dtype=torch.float64), "torch.float64"),
        (torch.zeros(2, 3, 64, 64, dtype=torch.float16), "torch.float16"),
        (torch.zeros(2, 3, 64, 64, dtype=torch.uint8), "torch.uint8"),
        (np.zeros((2, 3, 64, 64), dtype=np.float32), "ndarray"),  # right dtype and shape, but not a tensor
        ([[0.0]], "list"),
    ],
)
def test_wrong_type_is_one_clear_error(runner: Runner, images, got: str) -> None:
    expected = f"{runner.artifact} takes float32 image tensors, got {got}"
    with pytest.raises(RunnerInputError, match=f"^{re.escape(expected)}$") as info:
        runner.infer(images)
    assert "\n" not in str(info.value)


@pytest.mark.parametrize("n", [1, 3])
def test_a_correct_batch_gives_float32_logits(runner: Runner, n: int) -> None:
    logits = runner.infer(torch.rand(n, 3, 64, 64))
    assert isinstance(logits, np.ndarray)
    assert logits.shape == (n, len(runner.spec.classes)) and logits.dtype == np.float32
    assert np.isfinite(logits).all()
    # logits = tau * cosine similarity, so each lies within [-tau, tau]
    assert np.abs(logits).max() <= runner.spec.classifier.logit_scale * (1 + 1e-5)


def test_torch_and_onnxruntime_agree_on_real_images(torch_runner, onnxruntime_runner, tiny_folder) -> None:
    images, labels = real_images(tiny_folder, torch_runner)
    assert len(labels) == 2 * len(torch_runner.spec.classes)
    from_torch, from_ort = torch_runner.infer(images), onnxruntime_runner.infer(images)
    np.testing.assert_array_equal(from_torch.argmax(axis=1), from_ort.argmax(axis=1))
    # The same FP32 model: only the order of float summations differs, far below the logit scale tau.
    np.testing.assert_allclose(from_ort, from_torch, rtol=0, atol=1e-4 * torch_runner.spec.classifier.logit_scale)


@pytest.mark.parametrize(
    ("source", "backend"),
    [
        ("model.onnx", "onnxruntime"),
        ("runs/x/model.fp16.onnx", "onnxruntime"),
        ("model.plan", "tensorrt"),
        ("/abs/model.int8.plan", "tensorrt"),
        ("builtin", "torch"),
        ("runs/latest", "torch"),
        ("runs/20250101-000000-proreg-s0", "torch"),
        ("model.plan.json", "torch"),  # a sidecar is not an engine
        ("model.onnx.data", "torch"),
        ("http://127.0.0.1:8000/v2/models/proreg_clip", "triton"),
        ("grpc://server:8001/v2/models/proreg_clip", "triton"),
    ],
)
def test_backend_for_picks_by_suffix(source: str, backend: str) -> None:
    assert backend_for(source) == backend


def test_open_runner_refuses_an_unknown_backend() -> None:
    expected = f"unknown backend 'directml' (choose from {', '.join(BACKENDS)})"
    assert BACKENDS.keys() == {"torch", "onnxruntime", "tensorrt", "triton", "openvino"}
    with pytest.raises(OptionError, match=re.escape(expected)):
        open_runner("builtin", backend="directml")


def test_an_explicit_backend_overrides_the_suffix(builtin_onnx) -> None:
    with pytest.raises(ArtifactError, match="no such ONNX file: builtin"):
        open_runner("builtin", backend="onnxruntime")  # taken as an ONNX file name, not the built-in model
    with pytest.raises(CheckpointError, match="not a run directory"):
        open_runner(builtin_onnx[0], backend="torch")  # taken as a run directory


def test_open_runner_of_a_missing_run_dir(tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match=f"^not a run directory \\(no run.json\\): {re.escape(str(tmp_path))}"):
        open_runner(tmp_path / "no-such-run")
    with pytest.raises(CheckpointError, match="not a run directory"):
        open_runner(tmp_path)  # exists, but holds no run.json


def test_open_runner_of_a_run(tmp_path: Path, torch_runner) -> None:
    """A run directory holding the zero-shot weights gives a torch runner with the built-in runner's logits."""
    names = builtin_classnames()
    model, meta = zero_shot_classifier("builtin", None, list(names), list(names.values()), list(DEFAULT_TEMPLATES))
    save_weights(model, tmp_path / "best.safetensors", step=0)
    write_run_record(tmp_path, RunRecord(classifier=meta, train_config={}, data=RunData(DataSource())))
    images = torch.rand(4, 3, 64, 64)
    expected = torch_runner.infer(images)

    for source in (open_run(tmp_path), tmp_path, str(tmp_path)):
        runner = open_runner(source, device="cpu")
        assert isinstance(runner, TorchRunner) and runner.backend == "torch"
        assert runner.artifact == str(tmp_path) and runner.spec.source_run == str(tmp_path)
        assert runner.spec.classifier == meta
        np.testing.assert_allclose(runner.infer(images), expected, rtol=1e-6, atol=1e-6)


def test_onnxruntime_refuses_metadata_that_names_other_tensors(builtin_onnx, tmp_path):
    path, spec = builtin_onnx
    other = tmp_path / "renamed.onnx"
    shutil.copy(path, other)
    write_onnx_spec(other, spec.derive(input_name="pixels"))
    with pytest.raises(ArtifactError, match=r"graph has inputs \['image'\] .* metadata says 'pixels' -> 'logits'"):
        OnnxRuntimeRunner(other)


@pytest.mark.parametrize("backend", ["onnxruntime", "openvino"])
def test_a_model_whose_data_lies_outside_its_folder_is_refused_before_a_runtime_reads_it(
    builtin_onnx, tmp_path, backend
):
    """ONNX Runtime and OpenVINO would read what an external-data entry names; the runner refuses first."""
    import onnx

    src, _ = builtin_onnx
    (tmp_path / "model").mkdir()
    path = tmp_path / "model" / "model.onnx"
    onnx.save(onnx.load(str(src)), str(path), save_as_external_data=True, location="w.data", size_threshold=0)
    proto = onnx.load(str(path), load_external_data=False)
    for tensor in proto.graph.initializer:
        for entry in tensor.external_data:
            if entry.key == "location":
                entry.value = "../outside/w.data"
    onnx.save(proto, str(path))
    (tmp_path / "outside").mkdir()
    shutil.move(tmp_path / "model" / "w.data", tmp_path / "outside" / "w.data")  # real data, where the entry points
    with pytest.raises(ArtifactError, match=r"keeps its data at '\.\./outside/w\.data', outside the model's folder"):
        open_runner(path, backend)
