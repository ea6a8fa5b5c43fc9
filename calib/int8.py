"""The INT8 artifact: its options, checked once, and the quantized copy of an FP32 model with its spec."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from calib.calibration import MIN_IMAGES
from calib.quantize import CALIBRATION_METHODS, quantize_int8
from common.artifact import INT8_SCHEMES, ArtifactSpec, Calibration, write_onnx_spec
from common.errors import OptionError, check_choice, check_choices
from common.graph_scopes import PARTS

DEFAULT_KEEP_FP32 = PARTS  # patch embedding, final pooling stage and head: within 1 pp on every set (BENCHMARKS.md)


@dataclass(frozen=True)
class Int8Options:
    """How to calibrate: data (a dataset spec or a .npy of preprocessed images; default the run's training data),
    how many images, which method, and which graph parts stay FP32. Every INT8 option is checked here."""

    calib_data: str | None = None
    n_images: int = 300
    method: str = "percentile"  # measured best on the built-in benchmark (BENCHMARKS.md)
    keep_fp32: tuple[str, ...] = DEFAULT_KEEP_FP32
    seed: int = 0
    augment: bool = False  # RandAugment'ed copies: wider activation ranges than the clean training images

    def __post_init__(self) -> None:
        check_choice("calibration method", self.method, CALIBRATION_METHODS)
        check_choices("INT8 part(s) to keep in FP32", self.keep_fp32, PARTS)
        if self.n_images < MIN_IMAGES:
            raise OptionError(f"calibration needs at least {MIN_IMAGES} images, asked for {self.n_images}")


def write_int8_copy(
    src: Path,
    dst: Path,
    spec: ArtifactSpec,
    images: np.ndarray,
    options: Int8Options,
    source: str,
    scheme: str = "s8s8",
) -> Path:
    """Writes the INT8 Q/DQ copy of the FP32 model `src` (described by `spec`) to `dst`, calibrated on `images`
    (which came from `source`), in `scheme` (s8s8 for TensorRT, u8s8 for CPUs); returns `dst`."""
    check_choice("INT8 scheme", scheme, INT8_SCHEMES)
    kept, used = quantize_int8(src, dst, images, options.method, options.keep_fp32, spec.input_name, scheme)
    int8 = spec.derive(
        precision="int8",
        fp32_parts=options.keep_fp32,
        fp32_nodes=tuple(kept),
        calibration=Calibration(method=options.method, images=used, data=source, scheme=scheme),
    )
    write_onnx_spec(dst, int8)
    return dst
