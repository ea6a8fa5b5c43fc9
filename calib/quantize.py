"""INT8 post-training quantization into explicit, symmetric Q/DQ nodes, as TensorRT (strongly typed) needs.

ONNX Runtime's static quantizer writes the QDQ format; we ask for signed INT8 with zero points fixed at 0 for both
activations and weights (TensorRT refuses any other zero point) and per-channel weight scales. Calibration picks
the activation ranges: percentile (99.999, the default), entropy or min-max. The patch embedding (the first layer,
which sees raw pixels), the final pooling stage and the head (the final normalization and the classifier matmul,
whose logits reach ~100) stay in FP32 by default: on the built-in benchmark that keeps every set within 1 pp.
NVIDIA ModelOpt's ONNX quantizer is built on the same ONNX Runtime machinery but pins an older onnx and
onnxruntime-gpu; its calibration methods are entropy and max only.
"""

from __future__ import annotations

import contextlib
import io
from pathlib import Path

import numpy as np
import onnx
from onnxruntime.quantization import CalibrationDataReader, CalibrationMethod, QuantFormat, QuantType, quantize_static

from calib.calibration import KEEP_CHOICES
from common.runinfo import quiet_logger
from export.fp16 import head_nodes, name_scopes
from export.onnx_export import INPUT_NAME

CALIBRATION_METHODS = {
    "entropy": CalibrationMethod.Entropy,
    "percentile": CalibrationMethod.Percentile,
    "minmax": CalibrationMethod.MinMax,
}
EXCLUDE_CHOICES = KEEP_CHOICES
POOL_SCOPES = {"visual.attnpool", "visual.attn_pool", "visual.ln_post"}


class _Batches(CalibrationDataReader):
    """Equal-sized batches: ONNX Runtime's histogram calibrators stack per-batch outputs and fail on a short last
    batch, so the remainder (fewer than `batch_size` images) is left out; `used` counts what is fed."""

    def __init__(self, images: np.ndarray, batch_size: int = 32):
        size = min(batch_size, len(images))
        batches = [images[i : i + size] for i in range(0, len(images) - size + 1, size)]
        self.used = sum(len(b) for b in batches)
        self.batches = iter(batches)

    def get_next(self) -> dict[str, np.ndarray] | None:
        batch = next(self.batches, None)
        return None if batch is None else {INPUT_NAME: batch}


def first_layer(graph: onnx.GraphProto) -> list[str]:
    """The node that first transforms the pixels with weights: the patch embedding (ViT) or stem conv (ResNet)."""
    node = next((n for n in graph.node if n.op_type in ("Conv", "MatMul", "Gemm")), None)
    return [node.name] if node is not None else []


def final_pool(graph: onnx.GraphProto) -> list[str]:
    """The tower's last stage, where features are pooled into the embedding: ModifiedResNet's attention pool, a ViT's
    attention pool or final LayerNorm. Its outputs feed the cosine directly, so rounding there moves every logit."""
    return [n.name for n in graph.node if any(scope in POOL_SCOPES for scope in name_scopes(n))]


def excluded_nodes(graph: onnx.GraphProto, exclude: tuple[str, ...]) -> list[str]:
    unknown = set(exclude) - set(EXCLUDE_CHOICES)
    if unknown:
        raise ValueError(f"unknown INT8 exclusion(s) {sorted(unknown)} (choose from {', '.join(EXCLUDE_CHOICES)})")
    names = []
    if "patch_embed" in exclude:
        names += first_layer(graph)
    if "pool" in exclude:
        names += final_pool(graph)
    if "head" in exclude:
        names += head_nodes(graph)
    return names


def quantize_int8(
    src: Path,
    dst: Path,
    calibration: np.ndarray,
    method: str = "percentile",
    exclude: tuple[str, ...] = EXCLUDE_CHOICES,
) -> tuple[list[str], int]:
    """Writes the Q/DQ INT8 model of `src` to `dst`; returns the nodes left in FP32 and the images calibrated on."""
    if method not in CALIBRATION_METHODS:
        raise ValueError(f"unknown calibration method {method!r} (choose from {', '.join(CALIBRATION_METHODS)})")
    # No quant_pre_process: the exporter already folded constants, and that pass drops the name-scope metadata that
    # tells the head from the tower.
    kept = excluded_nodes(onnx.load(str(src), load_external_data=False).graph, exclude)
    batches = _Batches(calibration)
    # The calibrators print progress lines, and the quantizer logs advice to run its pre-processing (see above).
    with contextlib.redirect_stdout(io.StringIO()), quiet_logger():
        quantize_static(
            str(src),
            str(dst),
            calibration_data_reader=batches,
            quant_format=QuantFormat.QDQ,
            per_channel=True,
            activation_type=QuantType.QInt8,
            weight_type=QuantType.QInt8,
            nodes_to_exclude=kept,
            calibrate_method=CALIBRATION_METHODS[method],
            extra_options={"ActivationSymmetric": True, "WeightSymmetric": True, "QuantizeBias": False},
        )
    return kept, batches.used


def nonzero_zero_points(path: Path) -> list[str]:
    """Names of QuantizeLinear nodes whose zero point is not all zeros (TensorRT accepts none)."""
    model = onnx.load(str(path))
    inits = {t.name: onnx.numpy_helper.to_array(t) for t in model.graph.initializer}
    bad = []
    for node in model.graph.node:
        if node.op_type == "QuantizeLinear" and len(node.input) > 2 and node.input[2]:
            if np.any(inits.get(node.input[2], np.zeros(1)) != 0):
                bad.append(node.name)
    return bad
