"""The Triton runner: a model on any Triton Inference Server, over HTTP or gRPC (tritonclient).

The server holds the artifact. A model exported by `cli.py export --triton-repo` (under the official container) or
hosted by `cli.py serve` carries its ArtifactSpec in its configuration's parameters (common.artifact), which the
runner reads back (GET /v2/models/NAME/config) and checks against the configured input and output; so evaluation
preprocesses images exactly as for the file the server runs, and a model that is not ours is refused. Batches
larger than the model's max_batch_size are split into several requests. A runner holds one connection: use it from
the thread that made it (tritonclient's HTTP client is gevent-based), one runner per thread for concurrency.

A model is named by one string, `<protocol>://<host:port>/v2/models/<name>` (for HTTP, the model's own address), so
that it passes through `serve.backends.open_runner` like a file; `model_url(server, name)` makes it from what the
user typed: `http://host:port`, `grpc://host:port`, or `host:port` (HTTP).
"""

from __future__ import annotations

import contextlib
import re
import weakref
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from common.artifact import ArtifactSpec, spec_from_triton_parameters
from common.errors import OptionError, UserError
from serve.backend import Backend, RunnerOptions
from serve.runner import Runner

PROTOCOLS = ("http", "grpc")
MODEL_PATH = "/v2/models/"
CONNECT_TIMEOUT_S = 5.0  # a server that does not answer this soon is not there
INFER_TIMEOUT_S = 300.0  # one batch, the first one included (a TensorRT or ORT session may still be warming up)
_SERVER = re.compile(r"([\w.-]+|\[[0-9a-fA-F:]+\])(:\d+)?")  # host[:port], an IPv6 host in brackets
_MODEL_URL = re.compile(r"(?P<protocol>[a-z]+)://(?P<server>[^/]+)/v2/models/(?P<model>[^/]+)")


class TritonError(UserError):
    """No server at the address, no such model on it, or a model that is not one of ours."""


@dataclass(frozen=True)
class TritonModel:
    protocol: str  # one of PROTOCOLS
    server: str  # host:port
    name: str

    @property
    def url(self) -> str:
        return f"{self.protocol}://{self.server}{MODEL_PATH}{self.name}"

    @property
    def server_url(self) -> str:
        return f"{self.protocol}://{self.server}"


def model_url(server: str, name: str) -> str:
    """The model string of `name` on `server` (`http://host:port`, `grpc://host:port` or `host:port`)."""
    protocol, sep, address = server.strip().rpartition("://")
    protocol, address = (protocol if sep else "http"), address.rstrip("/")
    if protocol not in PROTOCOLS or not _SERVER.fullmatch(address):
        raise OptionError(f"--triton {server!r}: give http://HOST:PORT, grpc://HOST:PORT or HOST:PORT")
    return TritonModel(protocol, address, name).url


def parse_model_url(text: str) -> TritonModel:
    match = _MODEL_URL.fullmatch(text.strip())
    if not match or match["protocol"] not in PROTOCOLS:
        raise OptionError(f"{text!r}: a Triton model is http://HOST:PORT/v2/models/NAME or grpc://... the same")
    return TritonModel(match["protocol"], match["server"], match["model"])


@contextlib.contextmanager
def server_errors(model: TritonModel, doing: str, timeout: float = INFER_TIMEOUT_S) -> Iterator[None]:
    """Turns a refused connection, a timeout, a server gone mid-request or the server's own error into one
    TritonError line naming the server and what was being done."""
    from tritonclient.utils import InferenceServerException

    server = model.server_url
    no_answer = f"Triton server {server}: {doing}: no answer within {timeout:g} s (--timeout)"
    try:
        yield
    except ConnectionRefusedError:
        raise TritonError(f"no Triton server at {server} (connection refused)") from None
    except TimeoutError:
        raise TritonError(no_answer) from None
    except OSError as err:  # unknown host, a connection reset by a server that went away
        raise TritonError(f"Triton server {server}: {doing}: {err.strerror or err!r}") from None
    except InferenceServerException as err:
        text = (err.message() or str(err)).strip().splitlines()
        first = text[0] if text else repr(err)
        if "failed to connect" in first:
            raise TritonError(f"no Triton server at {server} (connection refused)") from None
        if "Deadline Exceeded" in first or "DEADLINE_EXCEEDED" in first:
            raise TritonError(no_answer) from None
        raise TritonError(f"Triton server {server}: {doing}: {first}") from None


class _HttpClient:
    def __init__(self, server: str, timeout: float):
        import tritonclient.http as http

        self.api = http
        self.client = http.InferenceServerClient(server, connection_timeout=CONNECT_TIMEOUT_S, network_timeout=timeout)

    def live(self) -> bool:
        return self.client.is_server_live()

    def ready(self, name: str) -> bool:
        return self.client.is_model_ready(name)

    def model_names(self) -> list[str]:
        return [m["name"] for m in self.client.get_model_repository_index()]

    def config(self, name: str) -> Any:
        from google.protobuf import json_format
        from tritonclient.grpc import model_config_pb2

        as_dict = self.client.get_model_config(name)
        return json_format.ParseDict(as_dict, model_config_pb2.ModelConfig(), ignore_unknown_fields=True)

    def infer(self, name: str, images: np.ndarray, input_name: str, output_name: str) -> np.ndarray:
        feed = self.api.InferInput(input_name, list(images.shape), "FP32")
        feed.set_data_from_numpy(images, binary_data=True)
        wanted = [self.api.InferRequestedOutput(output_name, binary_data=True)]
        return self.client.infer(name, [feed], outputs=wanted).as_numpy(output_name)

    def close(self) -> None:
        self.client.close()


class _GrpcClient:
    def __init__(self, server: str, timeout: float):
        import tritonclient.grpc as grpc

        self.api, self.timeout = grpc, timeout
        self.client = grpc.InferenceServerClient(server)

    def live(self) -> bool:
        return self.client.is_server_live(client_timeout=CONNECT_TIMEOUT_S)

    def ready(self, name: str) -> bool:
        return self.client.is_model_ready(name, client_timeout=CONNECT_TIMEOUT_S)

    def model_names(self) -> list[str]:
        return [m.name for m in self.client.get_model_repository_index(client_timeout=CONNECT_TIMEOUT_S).models]

    def config(self, name: str) -> Any:
        return self.client.get_model_config(name, client_timeout=CONNECT_TIMEOUT_S).config

    def infer(self, name: str, images: np.ndarray, input_name: str, output_name: str) -> np.ndarray:
        feed = self.api.InferInput(input_name, list(images.shape), "FP32")
        feed.set_data_from_numpy(images)
        wanted = [self.api.InferRequestedOutput(output_name)]
        return self.client.infer(name, [feed], outputs=wanted, client_timeout=self.timeout).as_numpy(output_name)

    def close(self) -> None:
        self.client.close()


def spec_from_model_config(config: Any, where: str) -> tuple[ArtifactSpec, int]:
    """The spec in a Triton ModelConfig protobuf and the model's max_batch_size, after checking that the configured
    input and output are the ones the spec describes (a batched FP32 [3, S, S] image in, [C] logits out)."""
    from tritonclient.grpc import model_config_pb2 as pb

    spec = spec_from_triton_parameters({k: v.string_value for k, v in config.parameters.items()}, where)
    if config.max_batch_size < 1:
        raise TritonError(f"{where}: max_batch_size {config.max_batch_size}: the model must take batches")
    size, n_classes = spec.classifier.image_size, len(spec.classes)
    for kind, tensors, name, dims in (
        ("input", config.input, spec.input_name, [3, size, size]),
        ("output", config.output, spec.output_name, [n_classes]),
    ):
        found = [(t.name, pb.DataType.Name(t.data_type), list(t.dims)) for t in tensors]
        if found != [(name, "TYPE_FP32", dims)]:
            shown = ", ".join(f"{n} {t[5:]} {d}" for n, t, d in found) or "nothing"
            raise TritonError(
                f"{where}: its {kind} is {shown}, its spec says {name} FP32 {dims} (image size {size}, "
                f"{n_classes} classes): the configuration does not describe this model"
            )
    return spec, int(config.max_batch_size)


def _listing(client: _HttpClient | _GrpcClient) -> str:
    """' (it has: a, b)' when the server lists its models; PyTriton's keeps its repository index private."""
    from tritonclient.utils import InferenceServerException

    try:
        names = client.model_names()
    except (OSError, InferenceServerException):
        return ""
    return f" (it has: {', '.join(names)})" if names else ""


class TritonRunner(Runner):
    backend = "triton"
    runs_on = "server"

    def __init__(self, url: str, timeout: float = INFER_TIMEOUT_S):
        """`timeout`: seconds to wait for each answer (a connection: CONNECT_TIMEOUT_S at most)."""
        self.model = parse_model_url(url)
        self.artifact = self.model.url
        client_type = _HttpClient if self.model.protocol == "http" else _GrpcClient
        with server_errors(self.model, "connecting", timeout):
            client = client_type(self.model.server, timeout)
        self._client, self.timeout = client, timeout
        self._close = weakref.finalize(self, client.close)  # open connections would hold up the server's shutdown
        with server_errors(self.model, "reading the model's configuration", timeout):
            client.live()
            if not client.ready(self.model.name):
                raise TritonError(
                    f"the Triton server at {self.model.server_url} has no model {self.model.name!r} ready"
                    + _listing(client)
                )
            config = client.config(self.model.name)
        self.spec, self.max_batch = spec_from_model_config(config, f"Triton model {self.artifact}")

    def _infer(self, images: torch.Tensor) -> np.ndarray:
        x, names = images.detach().cpu().numpy(), (self.spec.input_name, self.spec.output_name)
        with server_errors(self.model, "inference", self.timeout):
            step = self.max_batch
            chunks = [self._client.infer(self.model.name, x[i : i + step], *names) for i in range(0, len(x), step)]
        logits = np.concatenate(chunks) if chunks else np.zeros((0, len(self.spec.classes)), np.float32)
        if logits.shape != (len(x), len(self.spec.classes)):
            raise TritonError(f"{self.artifact} answered {list(logits.shape)} logits for {len(x)} images")
        return logits.astype(np.float32, copy=False)

    def close(self) -> None:
        """Closes the connection now (it is closed anyway when the runner is collected or the program ends)."""
        self._close()


def _open(source: str, options: RunnerOptions) -> Runner:
    return TritonRunner(source, options.timeout or INFER_TIMEOUT_S)  # the server decides where the model runs


BACKEND = Backend("triton", "Triton Inference Server", _open, schemes=("http://", "grpc://"))
