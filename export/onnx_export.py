"""Image encoder + fixed text classifier -> one ONNX graph: image [N, 3, H, W] float32 -> logits [N, C].

We use torch's dynamo exporter (`torch.onnx.export(dynamo=True)`), the default since torch 2.9 and the only one with a
future: the TorchScript exporter still runs in 2.11 and 2.14 but is deprecated. At opset 18 it decomposes attention
(open_clip's attention pool and transformer blocks) into MatMul/Softmax rather than a fused attention op, which is
what TensorRT 10 parses reliably (its 10.7 release mis-handled SDPA patterns), and LayerNorm becomes a real
LayerNormalization (opset >= 17). Weights over 2 GB go to an external `.data` file beside the model.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path
from typing import Any

import onnx
import torch

from common.metadata import ClassifierMeta
from common.runinfo import quiet_logger

OPSET = 18
INPUT_NAME, OUTPUT_NAME = "image", "logits"
META_KEY = "proreg_clip"  # ONNX metadata_props key holding the classifier metadata as JSON
EXTERNAL_DATA_BYTES = 1_800_000_000  # protobuf's limit is 2 GB; leave room for the graph itself


class ExportError(RuntimeError):
    """Export or verification failed; the message is one line for the user."""


def _param_bytes(model: torch.nn.Module) -> int:
    return sum(t.numel() * t.element_size() for t in list(model.parameters()) + list(model.buffers()))


def export_onnx(model: torch.nn.Module, meta: ClassifierMeta, path: Path, extra: dict[str, Any]) -> Path:
    """Exports `model` with a dynamic batch and writes the metadata into the file; returns `path`."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    size = meta.image_size
    example = torch.randn(2, 3, size, size)  # batch >= 2, or torch.export specializes the batch to a constant
    batch = torch.export.Dim("batch", min=1, max=65536)
    with warnings.catch_warnings(), quiet_logger("onnxscript"):
        warnings.simplefilter("ignore")
        torch.onnx.export(
            model.eval(),
            (example,),
            str(path),
            input_names=[INPUT_NAME],
            verbose=False,
            output_names=[OUTPUT_NAME],
            opset_version=OPSET,
            dynamic_shapes={"images": {0: batch}},
            external_data=_param_bytes(model) > EXTERNAL_DATA_BYTES,
        )
    write_metadata(path, meta, extra)
    return path


def write_metadata(path: Path, meta: ClassifierMeta, extra: dict[str, Any]) -> None:
    """Stores the classifier metadata (and `extra`: source hash, precision, ...) as one JSON metadata prop."""
    proto = onnx.load(str(path), load_external_data=False)
    del proto.metadata_props[:]
    proto.metadata_props.add(key=META_KEY, value=json.dumps({**meta.to_dict(), **extra}))
    proto.producer_name = "proreg-clip"
    onnx.save(proto, str(path))  # external tensors keep pointing at their .data file


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


def read_metadata(path: Path) -> dict[str, Any]:
    """The JSON metadata written at export; raises ExportError for an ONNX file we did not make."""
    try:
        proto = onnx.load(str(path), load_external_data=False)
    except Exception as err:
        raise ExportError(f"cannot read ONNX file {path}: {str(err).splitlines()[0] if str(err) else err}") from err
    props = {p.key: p.value for p in proto.metadata_props}
    if META_KEY not in props:
        raise ExportError(f"{path} carries no {META_KEY!r} metadata (classes, preprocessing): export it with cli.py")
    return json.loads(props[META_KEY])


def check_model(path: Path) -> None:
    """onnx.checker with full shape inference; a failure names the first problem."""
    try:
        onnx.checker.check_model(str(path), full_check=True)
    except Exception as err:
        raise ExportError(f"onnx.checker rejected {path}: {str(err).splitlines()[0]}") from err


def remove_onnx(path: Path) -> None:
    path.unlink(missing_ok=True)
    _data_file(path).unlink(missing_ok=True)
