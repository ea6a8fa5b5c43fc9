"""Image encoder + head -> one ONNX graph: image [N, 3, H, W] float32 -> logits [N, C], with the artifact spec inside.

We use torch's dynamo exporter (`torch.onnx.export(dynamo=True)`), the default since torch 2.9 and the only one with a
future: the TorchScript exporter still runs in 2.11 and 2.14 but is deprecated. At opset 18 it decomposes attention
(open_clip's attention pool and transformer blocks) into MatMul/Softmax rather than a fused attention op, which is
what TensorRT 10 parses reliably (its 10.7 release mis-handled SDPA patterns), and LayerNorm becomes a real
LayerNormalization (opset >= 17). Weights over 2 GB go to an external `.data` file beside the model.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import onnx
import torch

from common.artifact import ArtifactSpec, write_onnx_spec
from common.errors import UserError
from common.provenance import file_sha256
from common.quiet_logging import quiet_logger
from common.run import Run

OPSET = 18
EXTERNAL_DATA_BYTES = 1_800_000_000  # protobuf's limit is 2 GB; leave room for the graph itself


class ExportError(UserError):
    """Export or verification failed; the message is one line for the user."""


def fp32_spec(run: Run) -> ArtifactSpec:
    """The description of the FP32 ONNX export of a run's best checkpoint."""
    return ArtifactSpec(
        classifier=run.classifier,
        precision="fp32",
        source_run=str(run.path.resolve()),  # not runs/latest, which moves on
        source_sha256=file_sha256(run.best_weights),
        exporter=f"torch {torch.__version__} dynamo, opset {OPSET}",
    )


def _param_bytes(model: torch.nn.Module) -> int:
    return sum(t.numel() * t.element_size() for t in list(model.parameters()) + list(model.buffers()))


def export_onnx(model: torch.nn.Module, spec: ArtifactSpec, path: Path) -> Path:
    """Exports `model` with a dynamic batch and writes `spec` into the file's metadata; returns `path`."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    size = spec.classifier.image_size
    example = torch.randn(2, 3, size, size)  # batch >= 2, or torch.export specializes the batch to a constant
    batch = torch.export.Dim("batch", min=1, max=65536)
    with warnings.catch_warnings(), quiet_logger("onnxscript"):
        warnings.simplefilter("ignore")
        torch.onnx.export(
            model.eval(),
            (example,),
            str(path),
            input_names=[spec.input_name],
            verbose=False,
            output_names=[spec.output_name],
            opset_version=OPSET,
            dynamic_shapes={"images": {0: batch}},
            external_data=_param_bytes(model) > EXTERNAL_DATA_BYTES,
        )
    write_onnx_spec(path, spec)
    return path


def _data_file(path: Path) -> Path:
    return path.with_name(path.name + ".data")


def save_onnx(proto: onnx.ModelProto, path: Path) -> None:
    """Saves in one file, or with weights in `<name>.data` beside it when they pass protobuf's 2 GB limit."""
    weights = sum(len(t.raw_data) for t in proto.graph.initializer)
    if weights > EXTERNAL_DATA_BYTES:
        onnx.save(proto, str(path), save_as_external_data=True, location=_data_file(path).name)
    else:
        onnx.save(proto, str(path))


def move_onnx(src: Path, dst: Path) -> None:
    """Renames an ONNX file together with its external data (whose name the graph records)."""
    if _data_file(src).exists():
        save_onnx(onnx.load(str(src), load_external_data=True), dst)
        src.unlink()
        _data_file(src).unlink()
    else:
        src.replace(dst)


def check_model(path: Path) -> None:
    """onnx.checker with full shape inference; a failure names the first problem."""
    try:
        onnx.checker.check_model(str(path), full_check=True)
    except Exception as err:
        raise ExportError(f"onnx.checker rejected {path}: {str(err).splitlines()[0]}") from err


def remove_onnx(path: Path) -> None:
    path.unlink(missing_ok=True)
    _data_file(path).unlink(missing_ok=True)
