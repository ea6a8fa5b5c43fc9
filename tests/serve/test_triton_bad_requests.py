"""Bad requests do not hurt good ones: a served model (`cli.py serve`, a real Triton Inference Server on loopback)
gets, interleaved with valid requests, requests of the wrong shape, rank, dtype, size, batch and name, with NaN or
infinite pixels, and bodies that are cut short or do not match their shape. Each gets an error response that names
what is wrong; the server keeps serving; every valid request around them is answered exactly as in-process ONNX
Runtime answers it. Then a valid and a NaN request batched together: the valid one is answered as always."""

from __future__ import annotations

import threading
import urllib.error
import urllib.request
from urllib.parse import urlparse

import numpy as np
import pytest

from serve.onnxruntime_runner import OnnxRuntimeRunner
from tests.triton_server import serving, skip_without_pytriton

skip_without_pytriton()
pytestmark = pytest.mark.slow  # a server start and stop (~10 s), then about 30 requests

MAX_BATCH = 4
SHAPE = (3, 64, 64)
MODEL = "proreg_clip"


@pytest.fixture(scope="module")
def served(builtin_onnx, tmp_path_factory):
    yield from serving(builtin_onnx[0], tmp_path_factory, "--max-batch-size", str(MAX_BATCH))


@pytest.fixture(scope="module")
def reference(builtin_onnx):
    import torch

    runner = OnnxRuntimeRunner(builtin_onnx[0])
    return lambda images: runner.infer(torch.from_numpy(images))


def images(n: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((n, *SHAPE)).astype(np.float32)


def client_infer(url: str, protocol: str, data: np.ndarray, datatype: str = "FP32", model=MODEL, version=""):
    """The logits Triton answers (tritonclient over `protocol`), or the error it raises."""
    if protocol == "http":
        import tritonclient.http as client_module
    else:
        import tritonclient.grpc as client_module
    client = client_module.InferenceServerClient(urlparse(url).netloc)
    try:
        feed = client_module.InferInput("image", list(data.shape), datatype)
        feed.set_data_from_numpy(data)
        return client.infer(model, [feed], model_version=version).as_numpy("logits")
    finally:
        client.close()  # an open connection would hold up the server's shutdown


def raw_post(url: str, body: bytes) -> tuple[int, str]:
    """POSTs `body` to the model's HTTP infer endpoint as it is; (status, error text)."""
    request = urllib.request.Request(f"{url}/v2/models/{MODEL}/infer", data=body, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=30) as answer:
            return answer.status, answer.read().decode()
    except urllib.error.HTTPError as err:
        return err.code, err.read().decode()


def nan_images() -> np.ndarray:
    bad = images(2, 5)
    bad[1, 0, 10, 10] = np.nan
    return bad


def inf_images() -> np.ndarray:
    bad = images(1, 6)
    bad[0, 2, 0, 0] = np.inf
    return bad


JSON_HEAD = '{"inputs":[{"name":"image","shape":[1,3,64,64],"datatype":"FP32","data":['
CASES = [  # id, protocol, request arguments (or a raw HTTP body), words the error must hold
    ("wrong-shape", "http", dict(data=images(2)[:, :, :32, :32]), "unexpected shape for input 'image'"),
    ("wrong-rank", "grpc", dict(data=images(1)[0]), "unexpected shape for input 'image'"),
    ("wrong-dtype", "http", dict(data=images(2).astype(np.float64), datatype="FP64"), "data-type is 'FP64'"),
    ("nan-image", "http", dict(data=nan_images()), "holds NaN or infinite values"),
    ("inf-image", "grpc", dict(data=inf_images()), "holds NaN or infinite values"),
    ("empty-batch", "http", dict(data=np.zeros((0, *SHAPE), np.float32)), "input byte size mismatch"),
    ("over-max-batch", "grpc", dict(data=images(MAX_BATCH + 1)), f"batch-size must be <= {MAX_BATCH}"),
    ("unknown-model", "http", dict(data=images(1), model="nope"), "unknown model: 'nope'"),
    ("unknown-version", "grpc", dict(data=images(1), version="7"), "version 7 is not found"),
    ("truncated-body", "raw", (JSON_HEAD + "0.0,").encode(), "failed to parse the request JSON"),
    ("data-short-of-its-shape", "raw", (JSON_HEAD + "0.0]}]}").encode(), "Shape does not match"),
    ("not-json", "raw", b"\x00\xff garbage", "failed to parse the request JSON"),
]


@pytest.mark.parametrize("case_id, protocol, bad, words", CASES, ids=[c[0] for c in CASES])
def test_a_bad_request_gets_an_error_naming_it_and_the_requests_around_it_are_answered(
    served, reference, case_id, protocol, bad, words
):
    good = images(3, seed=len(case_id))
    before = client_infer(served.grpc, "grpc", good)
    if protocol == "raw":
        status, text = raw_post(served.http, bad)
        assert status >= 400 and words in text, (status, text)
    else:
        with pytest.raises(Exception) as caught:
            client_infer(served.http if protocol == "http" else served.grpc, protocol, **bad)
        assert words.lower() in str(caught.value).lower(), str(caught.value)
    after = client_infer(served.http, "http", good)
    expected = reference(good)
    for answer in (before, after):
        np.testing.assert_allclose(answer, expected, atol=1e-4)
        assert (answer.argmax(axis=1) == expected.argmax(axis=1)).all()


def test_a_nan_request_batched_with_valid_ones_does_not_change_their_answers(served, reference):
    """Sent together, the batcher may put them in one call: the valid requests are answered exactly, the NaN one
    either fails with its own error or gets NaN logits (never a number that looks like an answer)."""
    good = [images(2, seed) for seed in range(6)]
    results: dict[int, object] = {}

    def send(i: int, data: np.ndarray) -> None:
        try:
            results[i] = client_infer(served.grpc, "grpc", data)
        except Exception as err:  # the NaN request alone in its call
            results[i] = err

    threads = [threading.Thread(target=send, args=(i, g)) for i, g in enumerate(good)]
    threads.insert(3, threading.Thread(target=send, args=(-1, nan_images())))
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    for i, data in enumerate(good):
        np.testing.assert_allclose(results[i], reference(data), atol=1e-4)
    nan = results[-1]
    assert isinstance(nan, Exception) and "NaN or infinite" in str(nan) or np.isnan(nan[1]).all(), nan


def test_the_server_still_stops_cleanly(served):
    import signal

    assert served.stop(signal.SIGTERM) == 0
    assert [line.split(" ")[0] for line in served.stderr] == ["serving", "stopped"], served.stderr
