"""Faults of the server under `eval --triton`: the server killed with -9 while eval's requests are in flight ends the
evaluation within its timeout, in one line naming the server, with no report written; SIGTERM while clients are
sending lets the requests the server accepted finish and exits 0."""

from __future__ import annotations

import re
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from urllib.parse import urlparse

import numpy as np
import pytest

from tests.tiny_data import copy_tiny_folder
from tests.triton_server import ROOT, ServeProcess, skip_without_pytriton

skip_without_pytriton()
pytestmark = pytest.mark.slow  # two server starts (~10 s each) and an evaluation

DEADLINE_S = 120.0


def served_requests(server: ServeProcess) -> int:
    """Successful inference requests so far, from the server's metrics endpoint (named in its ready line)."""
    (metrics,) = re.findall(r"http://127\.0\.0\.1:\d+/metrics", server.stderr[0])
    text = urllib.request.urlopen(metrics, timeout=10).read().decode()
    counts = re.findall(r'^nv_inference_request_success\{model="proreg_clip".*\} (\d+)', text, re.MULTILINE)
    return int(counts[0]) if counts else 0


def test_a_server_killed_during_eval_ends_it_in_one_line_without_a_report(builtin_onnx, benchmark_root, tmp_path):
    images = copy_tiny_folder(benchmark_root, tmp_path / "images", per_class=50)
    server = ServeProcess(builtin_onnx[0], tmp_path, "--max-batch-size", "1")
    report = tmp_path / "out" / "report.json"
    command = [sys.executable, str(ROOT / "cli.py"), "eval", "--triton", server.grpc, "--data", str(images)]
    command += ["--batch-size", "1", "--timeout", "30", "--out", str(report)]
    evaluation = subprocess.Popen(command, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + DEADLINE_S
        while served_requests(server) < 5:  # the evaluation is under way: requests are in flight
            assert time.monotonic() < deadline and evaluation.poll() is None, evaluation.communicate()
            time.sleep(0.05)
        server.proc.send_signal(signal.SIGKILL)
        out, err = evaluation.communicate(timeout=60)  # ends well within --timeout (the connection breaks)
    finally:
        evaluation.kill()
        server.kill()
    lines = [line for line in err.splitlines() if line.strip()]
    assert evaluation.returncode == 2, err
    assert lines[-1].startswith(f"error: Triton server {server.grpc}: inference: ") or lines[-1].startswith(
        f"error: no Triton server at {server.grpc}"
    ), err
    assert "Traceback" not in err and not report.exists() and not report.parent.exists()


def test_sigterm_lets_the_accepted_requests_finish_and_exits_0(builtin_onnx, tmp_path):
    import torch
    import tritonclient.grpc as grpc

    from serve.onnxruntime_runner import OnnxRuntimeRunner

    server = ServeProcess(builtin_onnx[0], tmp_path, "--max-batch-size", "8")
    data = np.random.default_rng(0).standard_normal((8, 3, 64, 64)).astype(np.float32)
    expected = OnnxRuntimeRunner(builtin_onnx[0]).infer(torch.from_numpy(data))
    answers: list[object] = []
    stop = threading.Event()

    def client() -> None:
        connection = grpc.InferenceServerClient(urlparse(server.grpc).netloc)
        try:
            while not stop.is_set():
                feed = grpc.InferInput("image", list(data.shape), "FP32")
                feed.set_data_from_numpy(data)
                try:
                    answers.append(connection.infer("proreg_clip", [feed], client_timeout=30).as_numpy("logits"))
                except Exception as err:  # refused once the server stops taking requests
                    answers.append(err)
                    return
        finally:
            connection.close()

    clients = [threading.Thread(target=client) for _ in range(4)]
    for thread in clients:
        thread.start()
    try:
        deadline = time.monotonic() + DEADLINE_S
        while sum(isinstance(a, np.ndarray) for a in answers) < 20:
            assert time.monotonic() < deadline, answers[-1:]
            time.sleep(0.05)
        code = server.stop(signal.SIGTERM)
    finally:
        stop.set()
        for thread in clients:
            thread.join(timeout=60)
        server.kill()
    assert code == 0
    answered = [a for a in answers if isinstance(a, np.ndarray)]
    refused = [a for a in answers if not isinstance(a, np.ndarray)]
    for logits in answered:  # every answer the server gave is the right one: none cut short or wrong
        np.testing.assert_allclose(logits, expected, atol=1e-4)
    # a request that failed was refused as the server went away, never answered with a server-side error
    for err in refused:
        assert re.search(r"UNAVAILABLE|Socket closed|failed to connect|Connection reset|CANCELLED", str(err)), err
