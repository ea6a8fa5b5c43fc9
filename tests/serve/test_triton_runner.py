"""The Triton runner without a server: model addresses, the checks of a served model's configuration against its
spec, and a refused connection as one line (loopback only)."""

import re

import pytest

from common.artifact import ArtifactError, triton_parameters
from common.errors import OptionError
from export.triton_repo import model_config
from serve.backends import open_runner
from serve.triton_runner import TritonError, TritonRunner, model_url, parse_model_url, spec_from_model_config
from serve.triton_server import free_port

pytest.importorskip("tritonclient.grpc", reason="tritonclient is not installed")


@pytest.mark.parametrize(
    ("server", "url"),
    [
        ("http://127.0.0.1:8000", "http://127.0.0.1:8000/v2/models/m"),
        ("grpc://gpu-box:8001/", "grpc://gpu-box:8001/v2/models/m"),
        ("localhost:8000", "http://localhost:8000/v2/models/m"),
    ],
)
def test_model_url(server, url):
    assert model_url(server, "m") == url
    model = parse_model_url(url)
    assert model.url == url and model.name == "m"


@pytest.mark.parametrize("server", ["https://host:8000", "ftp://host:1", "http://", "http://host:8000/v2"])
def test_model_url_refuses_other_addresses(server):
    with pytest.raises(OptionError, match=re.escape(f"--triton {server!r}: give http://HOST:PORT")):
        model_url(server, "m")


def test_a_config_is_read_back_into_its_spec(builtin_onnx):
    _, spec = builtin_onnx
    config = model_config("m", spec, "onnx", max_batch_size=32, gpu=False)
    assert spec_from_model_config(config, "m") == (spec, 32)


def _config(spec, edit):
    config = model_config("m", spec, "onnx", max_batch_size=8, gpu=False)
    edit(config)
    return config


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda c: c.input[0].dims.__setitem__(1, 32), "its input is image FP32 [3, 32, 64], its spec says image FP32"),
        (lambda c: setattr(c.input[0], "name", "pixels"), "its input is pixels FP32 [3, 64, 64], its spec says image"),
        (lambda c: c.output[0].dims.__setitem__(0, 5), "its output is logits FP32 [5], its spec says logits FP32 [6]"),
        (lambda c: c.input[0].__setattr__("data_type", 10), "its input is image FP16 [3, 64, 64]"),
        (lambda c: setattr(c, "max_batch_size", 0), "max_batch_size 0: the model must take batches"),
    ],
    ids=["image-size", "input-name", "class-count", "fp16-input", "no-batching"],
)
def test_a_config_that_does_not_describe_its_model_is_refused(builtin_onnx, edit, message):
    _, spec = builtin_onnx
    with pytest.raises(TritonError, match=re.escape(message)):
        spec_from_model_config(_config(spec, edit), "Triton model m")


def test_a_model_that_is_not_ours_is_refused(builtin_onnx):
    _, spec = builtin_onnx
    config = _config(spec, lambda c: c.parameters.clear())
    with pytest.raises(ArtifactError, match="Triton model m has no 'proreg_clip' parameter"):
        spec_from_model_config(config, "Triton model m")
    config = _config(spec, lambda c: c.parameters["proreg_clip"].__setattr__("string_value", '{"format": "x/1"}'))
    with pytest.raises(ArtifactError, match="not a proreg-clip-artifact/1 description"):
        spec_from_model_config(config, "Triton model m")
    assert set(triton_parameters(spec)) >= {"proreg_clip", "preprocess.size", "preprocess.interpolation"}


@pytest.mark.parametrize("protocol", ["http", "grpc"])
def test_no_server_is_one_line(protocol):
    port = free_port("127.0.0.1")  # nobody listens there
    url = model_url(f"{protocol}://127.0.0.1:{port}", "m")
    with pytest.raises(TritonError, match=re.escape(f"no Triton server at {protocol}://127.0.0.1:{port} (connection")):
        open_runner(url)
    with pytest.raises(OptionError, match="a Triton model is http://HOST:PORT/v2/models/NAME"):
        TritonRunner(f"{protocol}://127.0.0.1:{port}")
