"""The served model under sustained load: `cli.py serve` driven by concurrent clients over HTTP and gRPC.

    python benchmarks/serve_load.py [--onnx FILE] [--concurrency 1,4,16] [--batch 1,8] [--requests 2000]
        [--soak 100000] [--max-batch-size 64] [--json FILE]

The server is `cli.py serve` in its own process on loopback ports (the built-in zero-shot model exported to FP32
ONNX, or --onnx FILE). For each protocol, batch size (images per request) and concurrency, as many client threads
(one tritonclient connection each) send --requests requests in all, each of the next `batch` images of a fixed pool
of 512; every answer's top-1 is compared with in-process ONNX Runtime's on the same images. Reported per row:
images/s, request latency p50/p99/p99.9, errors, answers whose top-1 differs. The server's resident memory (the
`cli.py serve` process and every process under it: tritonserver, PyTriton's stub) is read at the start and the end;
then a soak of --soak requests at the row of highest throughput samples it 100 times: its growth is the mean of the
last 10% of samples over the first 10%. Targets (issue 26): 0 errors, every top-1 equal to ONNX Runtime's, growth
under 5% in the soak, p99 within 3x p50 at the concurrency where throughput peaks. Every loop is bounded in count.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import torch
from triton_serving import Server, exported_model  # benchmarks/triton_serving.py, beside this script

from serve.onnxruntime_runner import OnnxRuntimeRunner

POOL = 512  # distinct images the requests cycle through


def tree_rss_mb(pid: int) -> float:
    """Resident memory of `pid` and every process under it, in MB (from /proc)."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                fields = Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            children.setdefault(int(fields[1]), []).append(int(entry))
    total, todo = 0, [pid]
    while todo:
        current = todo.pop()
        todo += children.get(current, [])
        try:
            status = Path(f"/proc/{current}/status").read_text()
        except OSError:
            continue
        total += next((int(line.split()[1]) for line in status.splitlines() if line.startswith("VmRSS:")), 0)
    return total / 1024


def client(protocol: str, url: str):
    """(send images -> logits, close) over one tritonclient connection."""
    from urllib.parse import urlparse

    if protocol == "http":
        import tritonclient.http as api
    else:
        import tritonclient.grpc as api
    connection = api.InferenceServerClient(urlparse(url).netloc)

    def send(images: np.ndarray) -> np.ndarray:
        feed = api.InferInput("image", list(images.shape), "FP32")
        feed.set_data_from_numpy(images)
        return connection.infer("proreg_clip", [feed]).as_numpy("logits")

    return send, connection.close


def drive(protocol: str, url: str, pool: np.ndarray, top1: np.ndarray, batch: int, threads: int, n: int, on_done=None):
    """`n` requests from `threads` client threads; a dict of the row's figures."""
    latencies: list[float] = []
    errors, wrong, lock = [0], [0], threading.Lock()
    counter = iter(range(n))
    ready = threading.Barrier(threads + 1, timeout=120)

    def work() -> None:
        send, close = client(protocol, url)
        send(pool[:batch])  # warm: a connection made, the model's first call done
        ready.wait()
        own: list[float] = []
        try:
            for k in counter:  # next() on a shared iterator: each request number once
                start = (k * batch) % (POOL - batch)
                began = time.perf_counter()
                try:
                    logits = send(pool[start : start + batch])
                except Exception:
                    with lock:
                        errors[0] += 1
                    continue
                own.append((time.perf_counter() - began) * 1000)
                bad = int((logits.argmax(axis=1) != top1[start : start + batch]).sum())
                with lock:
                    wrong[0] += bad
                if on_done:
                    on_done(k)
        finally:
            close()
            with lock:
                latencies.extend(own)

    workers = [threading.Thread(target=work) for _ in range(threads)]
    for w in workers:
        w.start()
    ready.wait()
    began = time.perf_counter()
    for w in workers:
        w.join()
    wall = time.perf_counter() - began
    ms = np.array(latencies or [np.nan])
    return {
        "protocol": protocol,
        "batch": batch,
        "concurrency": threads,
        "requests": n,
        "images_per_s": round(len(latencies) * batch / wall, 1),
        "p50_ms": round(float(np.percentile(ms, 50)), 2),
        "p99_ms": round(float(np.percentile(ms, 99)), 2),
        "p99.9_ms": round(float(np.percentile(ms, 99.9)), 2),
        "errors": errors[0],
        "top1_differs": wrong[0],
    }


def soak(server: Server, best: dict, pool: np.ndarray, top1: np.ndarray, n: int) -> dict:
    """`n` requests at the configuration of `best`, the server's memory sampled every n/100 requests."""
    samples: list[tuple[int, float]] = []
    every = max(1, n // 100)

    def sample(k: int) -> None:
        if k % every == 0:
            samples.append((k, tree_rss_mb(server.proc.pid)))

    url = server.urls[best["protocol"]]
    row = drive(best["protocol"], url, pool, top1, best["batch"], best["concurrency"], n, sample)
    rss = [mb for _, mb in sorted(samples)]
    tenth = max(1, len(rss) // 10)
    first, last = float(np.mean(rss[:tenth])), float(np.mean(rss[-tenth:]))
    return row | {"rss_first_tenth_mb": round(first, 1), "rss_last_tenth_mb": round(last, 1),
                  "rss_growth": round(last / first - 1, 4)}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--onnx", type=Path, default=None, help="an exported model (default: the built-in one)")
    parser.add_argument("--concurrency", default="1,4,16", help="client threads, comma-separated")
    parser.add_argument("--batch", default="1,8", help="images per request, comma-separated")
    parser.add_argument("--requests", type=int, default=2000, help="requests per row")
    parser.add_argument("--soak", type=int, default=100_000, help="requests of the soak (0: none)")
    parser.add_argument("--max-batch-size", type=int, default=64, help="the server's dynamic batching limit")
    parser.add_argument("--json", type=Path, default=None, help="write the figures here")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        path = args.onnx or exported_model("builtin", Path(tmp))
        reference = OnnxRuntimeRunner(path)
        size = reference.spec.classifier.image_size
        pool = np.random.default_rng(0).uniform(-2, 2, (POOL, 3, size, size)).astype(np.float32)
        top1 = reference.infer(torch.from_numpy(pool)).argmax(axis=1)
        server = Server(path, args.max_batch_size)
        try:
            rss_start = tree_rss_mb(server.proc.pid)
            rows = [
                drive(protocol, server.urls[protocol], pool, top1, batch, threads, args.requests)
                for protocol in ("http", "grpc")
                for batch in map(int, args.batch.split(","))
                for threads in map(int, args.concurrency.split(","))
            ]
            for row in rows:
                print(json.dumps(row))
            best = max(rows, key=lambda r: r["images_per_s"])
            soaked = soak(server, best, pool, top1, args.soak) if args.soak else None
            rss_end = tree_rss_mb(server.proc.pid)
        finally:
            server.stop()
    figures = {"rows": rows, "rss_start_mb": round(rss_start, 1), "rss_end_mb": round(rss_end, 1), "soak": soaked}
    print(json.dumps({k: v for k, v in figures.items() if k != "rows"}, indent=2))
    checks = {
        "0 errors": all(r["errors"] == 0 for r in rows + ([soaked] if soaked else [])),
        "every top-1 equal to ONNX Runtime's": all(r["top1_differs"] == 0 for r in rows + ([soaked] if soaked else [])),
        "p99 within 3x p50 at peak throughput": best["p99_ms"] <= 3 * best["p50_ms"],
    }
    if soaked:
        checks["memory growth under 5% in the soak"] = soaked["rss_growth"] < 0.05
    for name, ok in checks.items():
        print(f"{'met' if ok else 'NOT MET'}: {name}")
    if args.json:
        args.json.write_text(json.dumps(figures | {"targets": checks}, indent=2) + "\n")


if __name__ == "__main__":
    main()
