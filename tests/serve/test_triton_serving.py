"""A real Triton Inference Server in the loop: `cli.py serve` hosts the built-in model's ONNX export (PyTriton, on
free loopback ports), `cli.py eval --triton` measures it over HTTP and gRPC, and the report equals in-process ONNX
Runtime's; the served model describes itself as an exported repository does; Ctrl-C stops it cleanly."""

import json
import signal
import socket
from urllib.parse import urlparse

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from cli import app
from common.artifact import TRITON_SPEC_PARAMETER, ArtifactSpec
from data.specs import resolve_eval_sets
from serve.evaluate import evaluate
from serve.onnxruntime_runner import OnnxRuntimeRunner
from tests.tiny_data import copy_tiny_folder
from tests.triton_server import serving, skip_without_pytriton

skip_without_pytriton()
pytestmark = pytest.mark.slow  # a server start and stop (~10 s)

MAX_BATCH = 16  # below eval's batch of 40, so each batch is split into several requests


@pytest.fixture(scope="module")
def served(builtin_onnx, tmp_path_factory):
    yield from serving(builtin_onnx[0], tmp_path_factory, "--max-batch-size", str(MAX_BATCH))


@pytest.fixture(scope="module")
def images(benchmark_root, tmp_path_factory):
    return copy_tiny_folder(benchmark_root, tmp_path_factory.mktemp("images") / "tiny", per_class=20)


@pytest.mark.parametrize("protocol", ["http", "grpc"])
def test_eval_through_the_server_equals_onnxruntime(served, builtin_onnx, images, protocol, tmp_path):
    path, _ = builtin_onnx
    url = served.http if protocol == "http" else served.grpc
    out = tmp_path / "report.json"
    args = ["eval", "--triton", url, "--model", "proreg_clip", "--data", str(images), "--batch-size", "40"]
    result = CliRunner().invoke(app, [*args, "--reference", str(path), "--max-drop", "0", "--out", str(out)])
    assert result.exit_code == 0, result.output
    report = json.loads(out.read_text())
    assert report["backend"] == "triton" and report["artifact"] == f"{url}/v2/models/proreg_clip"
    ((name, agreement),) = report["agreement"].items()
    assert agreement["top1_agreement"] == 1.0 and agreement["top1_drop_pp"] == 0.0
    assert agreement["max_abs_logit_diff"] < 1e-4
    assert report["gate"]["passed"]

    ort = OnnxRuntimeRunner(path)
    expected, _ = evaluate(ort, resolve_eval_sets([str(images)], ort.spec.classes), batch_size=40)
    assert report["datasets"][name]["n"] == 120
    for key in ("top1", "top5", "worst_group_top1", "groups"):
        assert report["datasets"][name][key] == getattr(expected.datasets[name], key)


def test_the_served_model_describes_itself(served, builtin_onnx):
    import tritonclient.http as http

    path, spec = builtin_onnx
    client = http.InferenceServerClient(urlparse(served.http).netloc)
    try:
        config = client.get_model_config("proreg_clip")
    finally:
        client.close()  # an open connection would hold up the server's shutdown
    params = {key: value["string_value"] for key, value in config["parameters"].items()}
    served_spec = ArtifactSpec.from_dict(json.loads(params[TRITON_SPEC_PARAMETER]), "served")
    assert served_spec == OnnxRuntimeRunner(path).spec
    assert json.loads(params["preprocess.size"]) == 64 and json.loads(params["preprocess.mean"])[0] == 0.48145466
    assert config["max_batch_size"] == MAX_BATCH
    assert config["dynamic_batching"]["preferred_batch_size"] == [4, 8, 16]
    assert [(i["name"], i["data_type"], i["dims"]) for i in config["input"]] == [("image", "TYPE_FP32", [3, 64, 64])]
    assert [(o["name"], o["dims"], o["label_filename"]) for o in config["output"]] == [("logits", [6], "labels.txt")]


def test_the_classification_extension_answers_with_class_names(served, builtin_onnx):
    import tritonclient.grpc as grpc

    path, spec = builtin_onnx
    images = torch.randn(5, 3, 64, 64)
    top = OnnxRuntimeRunner(path).infer(images).argmax(axis=1)
    client = grpc.InferenceServerClient(urlparse(served.grpc).netloc)
    try:
        feed = grpc.InferInput("image", [5, 3, 64, 64], "FP32")
        feed.set_data_from_numpy(images.numpy())
        wanted = [grpc.InferRequestedOutput("logits", class_count=1)]
        answer = client.infer("proreg_clip", [feed], outputs=wanted).as_numpy("logits")
    finally:
        client.close()
    # "score:index:label" per image
    assert [entry[0].decode().split(":")[2] for entry in answer] == [spec.classes[i] for i in top]
    assert [int(entry[0].decode().split(":")[1]) for entry in answer] == list(np.asarray(top))


def test_a_server_that_cannot_load_the_model_is_one_line_at_once(builtin_onnx, monkeypatch):
    """The server exits when its model fails to load, while PyTriton would wait minutes for it: the host reports
    the server's own reason (here PyTriton's model script, broken on purpose) as soon as its log has it."""
    import time

    import serve.triton_server as triton_server
    from serve.triton_server import ServeOptions, TritonHost, TritonServeError

    def describe_and_break(model_dir, spec):
        describe(model_dir, spec)
        with open(model_dir / "1" / "model.py", "a") as script:
            script.write("\nraise RuntimeError('broken on purpose')\n")

    describe = triton_server.describe_model
    monkeypatch.setattr(triton_server, "describe_model", describe_and_break)
    host = TritonHost(OnnxRuntimeRunner(builtin_onnx[0]), ServeOptions(http_port=0, grpc_port=0, metrics_port=0))
    start = time.monotonic()
    expected = "the Triton server did not start: failed to load 'proreg_clip' version 1: .*broken on purpose"
    with pytest.raises(TritonServeError, match=expected), host:
        pass
    assert time.monotonic() - start < 60
    with socket.socket() as sock:
        assert sock.connect_ex(("127.0.0.1", host.options.http_port)) != 0


def test_ctrl_c_stops_the_server_cleanly(served):
    """Runs last in this module: the server stops within the deadline, with exit status 130 (Ctrl-C), printed
    nothing but its ready line and 'stopped', and no longer listens."""
    assert served.stop(signal.SIGINT) == 130
    assert served.stdout == []
    assert [line.split(" ")[0] for line in served.stderr] == ["serving", "stopped"]
    port = urlparse(served.http).port
    with socket.socket() as sock:
        assert sock.connect_ex(("127.0.0.1", port)) != 0
