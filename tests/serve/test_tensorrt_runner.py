"""The engine compatibility check runs before TensorRT is touched, so it is tested without TensorRT."""

from pathlib import Path

import pytest

from common.artifact import EngineInfo
from serve.tensorrt_runner import EngineMismatch, check_compatible

H100 = {"gpu": "NVIDIA H100 80GB HBM3", "compute_capability": "9.0"}
A10 = {"gpu": "NVIDIA A10", "compute_capability": "8.6"}


def sidecar(version: str, gpu: dict, version_compatible: bool = False) -> EngineInfo:
    return EngineInfo(version, gpu["gpu"], gpu["compute_capability"], 1, 32, 256, version_compatible)


def test_same_version_and_gpu_passes():
    check_compatible(sidecar("10.13.0", H100), "10.13.0", H100, Path("m.plan"))


def test_other_tensorrt_version_is_refused_with_the_fix():
    with pytest.raises(EngineMismatch, match=r"built with TensorRT 10\.7\.0, this is 10\.13\.0: rebuild"):
        check_compatible(sidecar("10.7.0", H100), "10.13.0", H100, Path("m.plan"))


def test_version_compatible_engine_runs_forward_only_within_its_major_version():
    check_compatible(sidecar("10.7.0", H100, version_compatible=True), "10.13.0", H100, Path("m.plan"))
    with pytest.raises(EngineMismatch, match="built with TensorRT 10.13.0"):
        check_compatible(sidecar("10.13.0", H100, version_compatible=True), "10.7.0", H100, Path("m.plan"))
    with pytest.raises(EngineMismatch, match="built with TensorRT 10.7.0, this is 11.4.0"):
        check_compatible(sidecar("10.7.0", H100, version_compatible=True), "11.4.0", H100, Path("m.plan"))


def test_other_gpu_architecture_is_refused():
    with pytest.raises(EngineMismatch, match=r"built for NVIDIA A10 \(sm 8\.6\), this is NVIDIA H100.*\(sm 9\.0\)"):
        check_compatible(sidecar("10.13.0", A10, version_compatible=True), "10.13.0", H100, Path("m.plan"))
