"""The Triton commands refuse bad input with exit status 2, one line on stderr naming what is wrong, no traceback,
and no file created or changed (conftest.assert_refused): `eval --triton` against no server, a model the server does
not have, or a served model whose classes differ from the data's or the reference's; `export --triton-repo` into a
folder holding another model; `serve` options out of range or a port in use. A real server (`cli.py serve` of the
built-in model's ONNX export) answers the eval cases on loopback; SIGTERM stops it with exit status 0."""

import shutil
import signal
import socket
from dataclasses import replace

import pytest

from common.artifact import read_onnx_spec, write_onnx_spec
from export.triton_repo import TritonRepoOptions, write_triton_repo
from serve.triton_server import free_port
from tests.cli.conftest import W, assert_refused, table
from tests.tiny_data import copy_tiny_folder
from tests.triton_server import ServeProcess, skip_without_pytriton

skip_without_pytriton()
pytestmark = pytest.mark.slow  # a 2-step training and a server start and stop (~20 s)

HTTP, GRPC, FREE, BUSY = "<http>", "<grpc>", "<free>", "<busy>"  # filled in per case: the live server, free ports
ONNX = f"{W}/model.onnx"
SMALL = ["--data", f"{W}/images"]


@pytest.fixture(scope="module")
def triton_world(tmp_path_factory, benchmark_root, builtin_onnx):
    """run/: a 2-step ce run;  model.onnx: the built-in zero-shot model (no source run, so no training overlap);
    reordered.onnx: the same with its classes reversed;  images/, images-pentagon/ (hexagon renamed);
    triton-repo/: a repository of model.onnx (another model than run/'s);  triton-foreign/proreg_clip_fp16/: the
    user's notes;  afile: a plain file."""
    from train.config import TrainConfig
    from train.losses import LossConfig
    from train.trainer import train

    root = tmp_path_factory.mktemp("triton-world")
    train(TrainConfig(max_steps=2, loss=LossConfig(kind="ce")), root / "run")
    shutil.copy(builtin_onnx[0], root / "model.onnx")
    spec = read_onnx_spec(root / "model.onnx")
    shutil.copy(root / "model.onnx", root / "reordered.onnx")
    reversed_classes = replace(spec.classifier, classes=spec.classes[::-1], prompts=spec.classifier.prompts[::-1])
    write_onnx_spec(root / "reordered.onnx", spec.derive(classifier=reversed_classes))
    copy_tiny_folder(benchmark_root, root / "images", per_class=5)
    shutil.copytree(root / "images", root / "images-pentagon")
    (root / "images-pentagon" / "hexagon").rename(root / "images-pentagon" / "pentagon")
    write_triton_repo(root / "triton-repo", TritonRepoOptions(), {"fp32": root / "model.onnx"}, {})
    (root / "triton-foreign" / "proreg_clip_fp16").mkdir(parents=True)
    (root / "triton-foreign" / "proreg_clip_fp16" / "notes.txt").write_text("my notes\n")
    (root / "afile").write_text("a file, not a folder\n")
    return root


@pytest.fixture(scope="module")
def server(triton_world, tmp_path_factory):
    served = ServeProcess(triton_world / "model.onnx", tmp_path_factory.mktemp("serve-cwd"))
    yield served
    served.kill()


EVAL = [
    ("no-server-http", ["--triton", f"127.0.0.1:{FREE}"], f"no Triton server at http://127.0.0.1:{FREE} (connection"),
    ("no-server-grpc", ["--triton", f"grpc://127.0.0.1:{FREE}"], f"no Triton server at grpc://127.0.0.1:{FREE} (conn"),
    ("https", ["--triton", "https://127.0.0.1:8000"], "--triton 'https://127.0.0.1:8000': give http://HOST:PORT"),
    ("unknown-model-http", ["--triton", HTTP, "--model", "nope"], f"the Triton server at {HTTP} has no model 'nope'"),
    ("unknown-model-grpc", ["--triton", GRPC, "--model", "nope"], f"the Triton server at {GRPC} has no model 'nope'"),
    (
        "served-classes-differ-from-data",
        ["--triton", HTTP, "--data", f"{W}/images-pentagon"],
        "dataset 'images-pentagon': classes differ from the requested ones (missing: -; extra: pentagon)",
    ),
    (
        "served-classes-differ-from-reference",
        ["--triton", GRPC, *SMALL, "--reference", f"{W}/reordered.onnx"],
        f"the reference {W}/reordered.onnx classifies other classes (or in another order) than {GRPC}/v2/models/",
    ),
    (
        "reference-without-server",
        ["--onnx", ONNX, *SMALL, "--reference", f"http://127.0.0.1:{FREE}/v2/models/proreg_clip"],
        f"no Triton server at http://127.0.0.1:{FREE} (connection refused)",
    ),
    (
        "triton-and-onnx",
        ["--triton", HTTP, "--onnx", ONNX],
        "give exactly one of --checkpoint, --zero-shot, --onnx, --engine, --triton",
    ),
    ("model-without-triton", ["--onnx", ONNX, "--model", "m"], "--model names a model on a Triton server: only with"),
    ("timeout-without-triton", ["--onnx", ONNX, "--timeout", "5"], "--timeout is how long to wait for a Triton server"),
    ("timeout-zero", ["--triton", HTTP, "--timeout", "0"], "--timeout must be a finite number above 0"),
    ("timeout-nan", ["--triton", HTTP, "--timeout", "nan"], "--timeout must be a finite number above 0"),
    (
        "no-answer-in-time-grpc",
        ["--triton", GRPC, *SMALL, "--timeout", "0.000001"],
        f"Triton server {GRPC}: inference: no answer within 1e-06 s (--timeout)",
    ),
    (
        "no-answer-in-time-http",
        ["--triton", HTTP, *SMALL, "--timeout", "0.000001"],
        f"Triton server {HTTP}: reading the model's configuration: no answer within 1e-06 s (--timeout)",
    ),
]

RUN = ["--checkpoint", f"{W}/run", "--out", "exported"]  # should a case not be refused, the export lands in cwd
EXPORT = [
    (
        "repo-holds-another-model",
        [*RUN, "--triton-repo", f"{W}/triton-repo"],
        f"{W}/triton-repo/proreg_clip already holds another model (fp32, from builtin): choose another --triton-repo",
    ),
    (
        "repo-holds-the-users-files",
        [*RUN, "--fp16", "--triton-repo", f"{W}/triton-foreign"],
        f"{W}/triton-foreign/proreg_clip_fp16 already holds something else (cannot read",
    ),
    (
        "repo-is-a-file",
        [*RUN, "--triton-repo", f"{W}/afile"],
        f"--triton-repo folder {W}/afile is a file, not a folder",
    ),
    ("name-with-slash", [*RUN, "--triton-repo", "repo", "--triton-name", "a/b"], "--triton-name 'a/b': use letters"),
    ("max-batch-0", [*RUN, "--triton-repo", "repo", "--triton-max-batch", "0"], "--triton-max-batch must be a finite"),
    ("gpu-without-repo", [*RUN, "--triton-gpu"], "--triton-gpu: only with --triton-repo"),
    ("name-without-repo", [*RUN, "--triton-name", "x"], "--triton-name: only with --triton-repo"),
    ("engine-min-batch", [*RUN, "--triton-repo", "repo", "--min-batch", "2"], "--min-batch 2: a Triton model takes"),
]

SERVE = [
    ("artifact-missing", [f"{W}/nope.onnx"], f"no such ONNX file: {W}/nope.onnx"),
    ("artifact-not-a-run", [f"{W}/afile"], f"not a run directory (no run.json): {W}/afile"),
    ("name-with-space", [ONNX, "--name", "my model"], "--name 'my model': use letters, digits"),
    ("port-out-of-range", [ONNX, "--http-port", "70000"], "--http-port must be a finite number at least 0 and at most"),
    (
        "ports-equal",
        [ONNX, "--http-port", "9000", "--grpc-port", "9000"],
        "--http-port, --grpc-port and --metrics-port",
    ),
    ("max-batch-0", [ONNX, "--max-batch-size", "0"], "--max-batch-size must be a finite number at least 1"),
    ("port-in-use", [ONNX, "--grpc-port", BUSY], f"--grpc-port {BUSY}: cannot listen on 127.0.0.1:{BUSY} (Address"),
]


def _fill(text: str, server: ServeProcess, free: int, busy: int) -> str:
    return text.replace(HTTP, server.http).replace(GRPC, server.grpc).replace(FREE, str(free)).replace(BUSY, str(busy))


def _refused(command, case_args, message, server, world, cwd):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        busy, free = taken.getsockname()[1], free_port("127.0.0.1")
        args = [command, *(_fill(a, server, free, busy) for a in case_args)]
        assert_refused(args, _fill(message, server, free, busy), cwd, world)


@pytest.mark.parametrize(("case", "args", "message"), table(EVAL))
def test_eval_triton_refuses(case, args, message, server, triton_world, cwd):
    _refused("eval", args, message, server, triton_world, cwd)


@pytest.mark.parametrize(("case", "args", "message"), table(EXPORT))
def test_export_triton_repo_refuses(case, args, message, server, triton_world, cwd):
    _refused("export", args, message, server, triton_world, cwd)


@pytest.mark.parametrize(("case", "args", "message"), table(SERVE))
def test_serve_refuses(case, args, message, server, triton_world, cwd):
    _refused("serve", args, message, server, triton_world, cwd)


def test_sigterm_stops_the_server_with_exit_0(server):
    """Runs last in this module: the server that answered the cases above stops cleanly."""
    assert server.stop(signal.SIGTERM) == 0
    assert server.stdout == [] and server.stderr[-1] == "stopped"
