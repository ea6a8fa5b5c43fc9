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
import onnxruntime
from onnxruntime.quantization import CalibrationDataReader, CalibrationMethod, QuantFormat, QuantType, quantize_static

from common.graph_scopes import nodes_of_parts
from common.quiet_logging import quiet_logger

CALIBRATION_METHODS = {
    "percentile": CalibrationMethod.Percentile,  # measured best on the built-in benchmark (BENCHMARKS.md)
    "entropy": CalibrationMethod.Entropy,
    "minmax": CalibrationMethod.MinMax,
}


class _Batches(CalibrationDataReader):
    """Equal-sized batches: ONNX Runtime's histogram calibrators stack per-batch outputs and fail on a short last
    batch, so the remainder (fewer than `batch_size` images) is left out; `used` counts what is fed."""

    def __init__(self, images: np.ndarray, input_name: str, batch_size: int = 32):
        size = min(batch_size, len(images))
        batches = [images[i : i + size] for i in range(0, len(images) - size + 1, size)]
        self.used = sum(len(b) for b in batches)
        self.batches = iter(batches)
        self.input_name = input_name

    def get_next(self) -> dict[str, np.ndarray] | None:
        batch = next(self.batches, None)
        return None if batch is None else {self.input_name: batch}


def quantize_int8(
    src: Path,
    dst: Path,
    calibration: np.ndarray,
    method: str,
    keep_fp32: tuple[str, ...],
    input_name: str,
    scheme: str = "s8s8",
) -> tuple[list[str], int]:
    """Writes the Q/DQ INT8 model of `src` to `dst`, with the graph parts `keep_fp32` left in FP32; returns the nodes
    left in FP32 and the number of images calibrated on. `method` is a key of CALIBRATION_METHODS; `scheme` one of
    common.artifact.INT8_SCHEMES: s8s8 for TensorRT, u8s8 for ONNX Runtime on CPUs.

    Why s8s8 is slow on CPUs (ONNX Runtime's profile of ViT-B/32, BENCHMARKS.md): ONNX Runtime fuses Q/DQ pairs into
    QLinearAdd, QLinearSoftmax, QGemm and friends only for u8 activations, so an s8s8 graph keeps a float op between
    a DequantizeLinear and a QuantizeLinear wherever no fused kernel exists (26% of its time goes to
    DequantizeLinear alone); its u8s8 copy spends 57% in QLinearMatMul, which is where the gain is."""
    # No quant_pre_process: the exporter already folded constants, and that pass drops the name-scope metadata that
    # tells the head from the tower.
    kept = nodes_of_parts(onnx.load(str(src), load_external_data=False).graph, keep_fp32)
    onnxruntime.disable_telemetry_events()  # the calibrators run ONNX Runtime sessions too
    batches = _Batches(calibration, input_name)
    # The calibrators print progress lines, and the quantizer logs advice to run its pre-processing (see above).
    with contextlib.redirect_stdout(io.StringIO()), quiet_logger():
        quantize_static(
            str(src),
            str(dst),
            calibration_data_reader=batches,
            quant_format=QuantFormat.QDQ,
            per_channel=True,
            activation_type=QuantType.QInt8 if scheme == "s8s8" else QuantType.QUInt8,
            weight_type=QuantType.QInt8,
            nodes_to_exclude=kept,
            calibrate_method=CALIBRATION_METHODS[method],
            # TensorRT takes zero points of 0 only; u8 activations use theirs to cover asymmetric ranges.
            extra_options={"ActivationSymmetric": scheme == "s8s8", "WeightSymmetric": True, "QuantizeBias": False},
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
