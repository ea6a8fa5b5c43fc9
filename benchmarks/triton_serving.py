"""Serving through a Triton Inference Server against in-process ONNX Runtime, on the same model.

    python benchmarks/triton_serving.py [--model builtin|ViT-B-32 | --onnx FILE] [--batch 1] [--requests 480]
        [--max-batch-size 64] [--json FILE]

The model is the built-in zero-shot classifier exported to FP32 ONNX, an open_clip architecture with random weights
(as benchmarks/speed.py; speed does not depend on them), or --onnx FILE. The server is `cli.py serve`
in its own process (PyTriton, Triton's dynamic batcher, the ONNX Runtime runner) on loopback ports. At concurrency
1, 4 and 16, as many client threads (one tritonclient client each, HTTP or gRPC) send requests of --batch images
until --requests are done; in-process ONNX Runtime gets the same requests from as many threads calling one session.
Throughput in images/s, per-request latency p50/p99 in ms, and throughput as a fraction of in-process ONNX Runtime
at the same concurrency. Images are random (speed does not depend on them) and every configuration is warmed up.

(Not named triton.py: a script's folder is first on sys.path, and torch imports the `triton` kernel compiler.)
"""

from __future__ import annotations

import argparse
import json
import platform
import re
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import onnxruntime
import torch

from export.onnx_export import export_onnx
from serve.onnxruntime_runner import OnnxRuntimeRunner
from serve.torch_runner import TorchRunner
from serve.triton_runner import PROTOCOLS

ROOT = Path(__file__).resolve().parents[1]
CONCURRENCY = (1, 4, 16)
WARMUP_REQUESTS = 20

Send = Callable[[np.ndarray], np.ndarray]  # one request: images -> logits


def run_load(make_sender: Callable[[], tuple[Send, Callable[[], None]]], images: np.ndarray, threads: int, n: int):
    """`n` requests of `images` from `threads` threads, each with its own sender, made and used in that thread
    (tritonclient's HTTP client is gevent-based: it works in the thread that made it); (images/s, latencies ms)."""
    latencies: list[float] = []
    lock = threading.Lock()
    start = threading.Barrier(threads + 1, timeout=120)  # every thread connected and warmed up, then the clock

    def work(count: int) -> None:
        try:
            send, close = make_sender()
        except BaseException:
            start.abort()
            raise
        try:
            for _ in range(max(1, WARMUP_REQUESTS // threads)):
                send(images)
            start.wait()
            own = []
            for _ in range(count):
                began = time.perf_counter()
                send(images)
                own.append((time.perf_counter() - began) * 1000)
            with lock:
                latencies.extend(own)
        finally:
            close()

    workers = [threading.Thread(target=work, args=(n // threads + (i < n % threads),)) for i in range(threads)]
    for w in workers:
        w.start()
    start.wait()
    began = time.perf_counter()
    for w in workers:
        w.join()
    wall = time.perf_counter() - began
    if len(latencies) != n:
        raise SystemExit("a client thread failed (its traceback is above)")
    return n * len(images) / wall, latencies


def ort_sender(runner: OnnxRuntimeRunner) -> Callable[[], tuple[Send, Callable[[], None]]]:
    def make() -> tuple[Send, Callable[[], None]]:
        return (lambda x: runner.infer(torch.from_numpy(x))), (lambda: None)

    return make


def triton_sender(url: str) -> Callable[[], tuple[Send, Callable[[], None]]]:
    """A sender per thread: a TritonRunner is one tritonclient connection, and it sends exactly one request per
    batch of at most the model's max_batch_size."""
    from serve.triton_runner import TritonRunner

    def make() -> tuple[Send, Callable[[], None]]:
        runner = TritonRunner(url)
        return (lambda x: runner.infer(torch.from_numpy(x))), runner.close

    return make


class Server:
    """`cli.py serve` in its own process, on ports the server picks (named in its ready line)."""

    def __init__(self, onnx_path: Path, max_batch: int):
        command = [sys.executable, str(ROOT / "cli.py"), "serve", str(onnx_path), "--max-batch-size", str(max_batch)]
        command += ["--http-port", "0", "--grpc-port", "0", "--metrics-port", "0"]
        self.proc = subprocess.Popen(command, stderr=subprocess.PIPE, text=True)
        assert self.proc.stderr is not None
        line = self.proc.stderr.readline()  # the ready line, or the one-line error
        urls = dict(re.findall(r"(http|grpc)://(127\.0\.0\.1:\d+) \(", line))
        if set(urls) != set(PROTOCOLS):
            self.proc.kill()
            raise SystemExit(f"cli.py serve did not start: {line.strip()}")
        self.urls = {protocol: f"{protocol}://{address}/v2/models/proreg_clip" for protocol, address in urls.items()}

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=60)


def measure(onnx_path: Path, batch: int, requests: int, max_batch: int) -> list[dict]:
    runner = OnnxRuntimeRunner(onnx_path)
    size = runner.spec.classifier.image_size
    images = np.random.default_rng(0).standard_normal((batch, 3, size, size)).astype(np.float32)
    rows = []
    server = Server(onnx_path, max_batch)
    try:
        senders = {"onnxruntime in-process": ort_sender(runner)}
        senders |= {f"triton {protocol}": triton_sender(url) for protocol, url in server.urls.items()}
        for concurrency in CONCURRENCY:
            base = None
            for backend, sender in senders.items():
                images_per_s, ms = run_load(sender, images, concurrency, requests)
                base = base or images_per_s
                rows.append(
                    {
                        "backend": backend,
                        "concurrency": concurrency,
                        "images_per_s": round(images_per_s, 1),
                        "latency_ms_p50": round(float(np.percentile(ms, 50)), 2),
                        "latency_ms_p99": round(float(np.percentile(ms, 99)), 2),
                        "vs_ort": round(images_per_s / base, 2),
                    }
                )
    finally:
        server.stop()
    return rows


def exported_model(name: str, folder: Path) -> Path:
    """The built-in zero-shot classifier, or an open_clip architecture with random weights, as FP32 ONNX."""
    if name == "builtin":
        zero_shot = TorchRunner.builtin_zero_shot("cpu")
        model, spec = zero_shot.model, zero_shot.spec
    else:
        from speed import random_classifier  # benchmarks/speed.py, beside this script

        from data.specs import builtin_classnames

        model, spec = random_classifier(name, list(builtin_classnames()))
    return export_onnx(model, spec, folder / "model.onnx")


def print_table(rows: list[dict], title: str) -> None:
    print(f"## {title}")
    print(f"{'backend':<24} {'concurrency':>11} {'images/s':>9} {'p50 ms':>8} {'p99 ms':>8} {'vs ORT':>7}")
    for r in rows:
        print(
            f"{r['backend']:<24} {r['concurrency']:>11} {r['images_per_s']:>9.1f} {r['latency_ms_p50']:>8.2f} "
            f"{r['latency_ms_p99']:>8.2f} {r['vs_ort']:>7.2f}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="builtin", help="builtin, or an open_clip architecture (random weights)")
    parser.add_argument("--onnx", type=Path, default=None, help="an exported model instead of --model")
    parser.add_argument("--batch", type=int, default=1, help="images per request")
    parser.add_argument("--requests", type=int, default=480, help="requests per configuration")
    parser.add_argument("--max-batch-size", type=int, default=64, help="the server's dynamic batching limit")
    parser.add_argument("--json", type=Path, default=None, help="write the figures here")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        path = args.onnx or exported_model(args.model, Path(tmp))
        rows = measure(path, args.batch, args.requests, args.max_batch_size)
    model = str(args.onnx or args.model)
    title = f"{model}: {args.batch} image(s) per request, {args.requests} requests per row"
    print_table(rows, title)
    if args.json:
        machine = {"cpus": torch.get_num_threads(), "processor": platform.processor() or platform.machine()}
        figures = {
            "model": model,
            "batch": args.batch,
            "requests": args.requests,
            "max_batch_size": args.max_batch_size,
            "onnxruntime": onnxruntime.__version__,
            "machine": machine,
            "rows": rows,
        }
        args.json.write_text(json.dumps(figures, indent=2) + "\n")
        print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
