"""`cli.py serve`: one artifact hosted in a Triton Inference Server on this machine (PyTriton), with dynamic batching.

The model is a Python callable bound into PyTriton's server that calls the same runner `eval` uses
(serve.backends.open_runner: ONNX Runtime for .onnx, TensorRT for .plan, torch for a run directory), so the server
answers exactly what `eval --onnx` measures, batched by Triton's dynamic batcher.

How the served model describes itself. PyTriton's bind() cannot set a configuration's `parameters` or an output's
`label_filename`. With its local model store (`TritonLifecyclePolicy(launch_triton_on_startup=False,
local_model_store=True)`, the policy PyTriton itself uses for Vertex AI), bind() writes the model's config.pbtxt
into our workspace and the server loads that file when it starts. Before starting it we add what export's
repository carries (common.artifact): the spec and preprocessing parameters, and labels.txt on the logits output.
So `eval --triton` reads a served model exactly as a deployed repository, and Triton's classification extension
answers with class names here too.

What this environment taught:
- PyTriton's Python-backend stub links the system libpython3.11; under another build of 3.11 (pyenv here) loading
  the model fails ("No module named 'numpy'", or "'_thread.RLock' object has no attribute '_recursion_count'").
  The interpreter's own libpython directory goes first on LD_LIBRARY_PATH while the server starts.
- The server logs to a file in the host's temporary folder (its failure line is reported if it does not start);
  the few lines it prints anyway go there too while it starts and stops, and PyTriton's loggers are quieted.
- Shutdown waits EXIT_TIMEOUT_S at most for requests in flight; clients should close their connections first.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import socket
import sysconfig
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from types import FrameType
from typing import Any

import numpy as np
import torch

from common.artifact import (
    TRITON_DEFAULT_MAX_BATCH,
    TRITON_DEFAULT_MODEL,
    TRITON_LABELS_FILE,
    ArtifactSpec,
    check_triton_model_name,
    preferred_batch_sizes,
    triton_labels,
    triton_parameters,
)
from common.errors import OptionError, UserError, check_number
from common.quiet_logging import quiet_logger
from serve.runner import Runner

EXIT_TIMEOUT_S = 5  # how long shutdown waits for requests in flight
STARTUP_TIMEOUT_S = 120.0
# Lines of the server's log (or console) that mean it will not come up; the first one found is reported.
FAILURE_MARKERS = ("failed to load '", "error: creating server", "failed to start", "Address already in use")
_LOG_PREFIX = re.compile(r"^[IWE]\d{4} [\d:.]+ +\d+ [\w.]+:\d+\] ")  # severity, date, time, thread, source


class TritonServeError(UserError):
    """PyTriton missing, a port taken, or a server that did not start or stopped by itself."""


@dataclass(frozen=True)
class ServeOptions:
    name: str = TRITON_DEFAULT_MODEL
    host: str = "127.0.0.1"  # loopback unless asked: the server has no authentication on inference
    http_port: int = 8000  # 0: any free port
    grpc_port: int = 8001
    metrics_port: int = 8002
    max_batch_size: int = TRITON_DEFAULT_MAX_BATCH

    def __post_init__(self) -> None:
        check_triton_model_name(self.name, "--name")
        for option, port in self.ports.items():
            check_number(option, port, 0, 65535)
        fixed = [port for port in self.ports.values() if port]
        if len(set(fixed)) != len(fixed):
            ports = list(self.ports.values())
            raise OptionError(f"--http-port, --grpc-port and --metrics-port must differ, got {ports}")
        check_number("--max-batch-size", self.max_batch_size, 1)

    @property
    def ports(self) -> dict[str, int]:
        return {"--http-port": self.http_port, "--grpc-port": self.grpc_port, "--metrics-port": self.metrics_port}


@dataclass(frozen=True)
class Endpoints:
    http: str
    grpc: str
    metrics: str


def free_port(host: str) -> int:
    """A port nobody listens on at `host` right now (the system's pick for port 0)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def _check_port_free(host: str, port: int, option: str) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as the server binds
        try:
            sock.bind((host, port))
        except OSError as err:
            raise TritonServeError(f"{option} {port}: cannot listen on {host}:{port} ({err.strerror or err})") from None


def resolve_ports(options: ServeOptions) -> ServeOptions:
    """`options` with port 0 replaced by free ports, every port checked to be free (a taken one is one line, not a
    server that dies while PyTriton waits for it)."""
    ports = [port or free_port(options.host) for port in options.ports.values()]
    for option, port in zip(options.ports, ports, strict=True):
        _check_port_free(options.host, port, option)
    return replace(options, http_port=ports[0], grpc_port=ports[1], metrics_port=ports[2])


@contextlib.contextmanager
def own_libpython() -> Iterator[None]:
    """LD_LIBRARY_PATH led by this interpreter's libpython directory while the server and its stubs start."""
    before = os.environ.get("LD_LIBRARY_PATH")
    libdir = sysconfig.get_config_var("LIBDIR") or ""
    os.environ["LD_LIBRARY_PATH"] = os.pathsep.join(p for p in (libdir, before) if p)
    try:
        yield
    finally:
        if before is None:
            os.environ.pop("LD_LIBRARY_PATH", None)
        else:
            os.environ["LD_LIBRARY_PATH"] = before


def _infer_function(runner: Runner) -> Callable[..., Any]:
    """The callable PyTriton calls with the requests the dynamic batcher gathered: the runner's logits for each,
    one forward pass for all. Triton itself refuses a wrong shape, rank, dtype, size or batch; pixel values are
    checked here. PyTriton can answer a call only with one error for all its requests, so a request whose image
    holds NaN or infinity fails with an error naming that when it is alone (as a client's request usually is), and
    is answered with NaN logits when the batcher put valid requests beside it: they are answered as always, never
    failed or changed by it."""
    input_name, output_name, n_classes = runner.spec.input_name, runner.spec.output_name, len(runner.spec.classes)

    def infer(requests: list[Mapping[str, np.ndarray]]) -> list[dict[str, np.ndarray]]:
        images = [request[input_name] for request in requests]
        finite = [bool(np.isfinite(image).all()) for image in images]
        if not any(finite):
            raise ValueError(f"input {input_name!r} holds NaN or infinite values: send finite pixel values")
        batch = np.concatenate([image for image, ok in zip(images, finite, strict=True) if ok])  # a copy: writable
        logits, start, answers = runner.infer(torch.from_numpy(batch)), 0, []
        for image, ok in zip(images, finite, strict=True):
            if ok:
                answers.append({output_name: logits[start : start + len(image)]})
                start += len(image)
            else:
                answers.append({output_name: np.full((len(image), n_classes), np.nan, np.float32)})
        return answers

    return infer


def describe_model(model_dir: Path, spec: ArtifactSpec) -> None:
    """Adds the spec and preprocessing parameters and the labels file to a model's config.pbtxt, as export's
    repository has them (see the module docstring)."""
    from google.protobuf import text_format
    from tritonclient.grpc import model_config_pb2

    path = model_dir / "config.pbtxt"
    config = text_format.Parse(path.read_text(), model_config_pb2.ModelConfig())
    for key, value in triton_parameters(spec).items():
        config.parameters[key].string_value = value
    (logits,) = [out for out in config.output if out.name == spec.output_name]
    logits.label_filename = TRITON_LABELS_FILE
    (model_dir / TRITON_LABELS_FILE).write_text(triton_labels(spec))
    path.write_text(text_format.MessageToString(config))


def _server_failure(log: Path) -> str | None:
    """The first line of the server's log that says it will not come up, without its log prefix."""
    text = log.read_text(errors="replace") if log.exists() else ""
    for line in text.splitlines():
        if any(marker in line for marker in FAILURE_MARKERS):
            return _LOG_PREFIX.sub("", line).split("\\n")[0].strip().strip('"')[:300]
    return None


def import_pytriton() -> None:
    try:
        import pytriton.triton  # noqa: F401
    except ImportError as err:
        raise TritonServeError(f"serving needs PyTriton ({err}): pip install nvidia-pytriton") from err


class TritonHost:
    """A Triton Inference Server hosting one runner under `options.name`, while the context is open; entering it
    returns the endpoints once the model is ready."""

    def __init__(self, runner: Runner, options: ServeOptions):
        import_pytriton()
        self.runner, self.options = runner, resolve_ports(options)
        self._stack = contextlib.ExitStack()
        self._ready, self._stopping = threading.Event(), threading.Event()

    def __enter__(self) -> Endpoints:
        from pytriton.triton import Triton, TritonLifecyclePolicy
        from pytriton.utils.workspace import Workspace

        with self._stack as stack:
            folder = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="proreg-triton-")))
            stack.enter_context(quiet_logger("pytriton"))
            self.log = folder / "server.log"
            workspace = Workspace(folder / "workspace")
            policy = TritonLifecyclePolicy(launch_triton_on_startup=False, local_model_store=True)
            self.triton = Triton(config=self._config(), workspace=workspace, triton_lifecycle_policy=policy)
            self._bind()
            describe_model(workspace.model_store_path / self.options.name, self.runner.spec)
            stack.callback(self._stop)
            self._start()
            self._stack = stack.pop_all()
        return self.endpoints

    def _bind(self) -> None:
        """Binds the runner as the model, batched (dims without the batch), its dynamic batcher preferring
        the largest batches."""
        from pytriton.model_config import DynamicBatcher, ModelConfig, Tensor

        spec, max_batch = self.runner.spec, self.options.max_batch_size
        size = spec.classifier.image_size
        batcher = DynamicBatcher(preferred_batch_size=preferred_batch_sizes(max_batch))
        self.triton.bind(
            model_name=self.options.name,
            infer_func=_infer_function(self.runner),
            inputs=[Tensor(name=spec.input_name, dtype=np.float32, shape=(3, size, size))],
            outputs=[Tensor(name=spec.output_name, dtype=np.float32, shape=(len(spec.classes),))],
            config=ModelConfig(max_batch_size=max_batch, batcher=batcher),
            strict=True,  # PyTriton checks every answer against the outputs declared here
        )

    def __exit__(self, *exc: object) -> None:
        self._stack.close()

    @property
    def endpoints(self) -> Endpoints:
        host, o = self.options.host, self.options
        return Endpoints(
            f"http://{host}:{o.http_port}", f"grpc://{host}:{o.grpc_port}", f"http://{host}:{o.metrics_port}"
        )

    def alive(self) -> bool:
        return self.triton.is_alive()

    def failure(self) -> str:
        """Why the server is not up, from its log."""
        return _server_failure(self.log) or f"no reason in its log {self.log}"

    def _config(self) -> Any:
        from pytriton.triton import TritonConfig

        o = self.options
        return TritonConfig(
            **{f"{kind}_address": o.host for kind in ("http", "grpc", "metrics")},
            http_port=o.http_port,
            grpc_port=o.grpc_port,
            metrics_port=o.metrics_port,
            log_verbose=0,
            log_file=self.log,
            exit_timeout_secs=EXIT_TIMEOUT_S,
            # A model that fails to load leaves the server up, so that PyTriton's start fails within seconds (its
            # handshake with the model) rather than waiting minutes for a server that has exited.
            exit_on_error=False,
            strict_readiness=False,
            allow_gpu_metrics=torch.cuda.is_available(),  # else the server reports NVML missing on every start
        )

    def _start(self) -> None:
        """Starts the server in its own thread and waits until the model is ready. PyTriton would wait minutes for
        a server that died at once, so the server's log is watched meanwhile."""
        self._thread = threading.Thread(target=self._lifetime, name="triton-server", daemon=True)
        deadline = time.monotonic() + STARTUP_TIMEOUT_S
        with self.log.open("a") as console, contextlib.redirect_stdout(console), own_libpython():
            self._thread.start()
            while not self._ready.wait(0.2):
                if not self._thread.is_alive() or _server_failure(self.log) or time.monotonic() > deadline:
                    raise TritonServeError(f"the Triton server did not start: {self.failure()}")

    def _lifetime(self) -> None:
        """Starts the server, then waits until asked to stop it. The thread that starts the server must outlive
        it: PyTriton makes the server a child that Linux ends (PR_SET_PDEATHSIG) when its parent *thread* exits."""
        try:
            self.triton.run()
        except Exception:  # a failed start: the waiting thread reports the server's own reason, from its log
            pass
        else:
            self._ready.set()
            self._stopping.wait()
        # PyTriton's stop waits for its start to end (one lock), so only this thread stops the server.
        with open(self.log if self.log.exists() else os.devnull, "a") as console, contextlib.redirect_stdout(console):
            self.triton.stop()

    def _stop(self) -> None:
        self._stopping.set()
        self._thread.join(timeout=EXIT_TIMEOUT_S + 30)


def serve_until_stopped(runner: Runner, options: ServeOptions, on_ready: Callable[[Endpoints], None]) -> int:
    """Hosts `runner` until SIGINT or SIGTERM arrives; returns that signal's number. Call from the main thread."""
    received: list[int] = []
    stop = threading.Event()

    def handler(signum: int, frame: FrameType | None) -> None:
        received.append(signum)
        stop.set()

    previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        host = TritonHost(runner, options)
        with host as endpoints:
            on_ready(endpoints)
            while not stop.wait(1.0):
                if not host.alive():
                    raise TritonServeError(f"the Triton server stopped by itself: {host.failure()}")
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)
    return received[0]
