"""What the TensorRT runner decides before and around TensorRT (which engines this TensorRT loads, whether a plan is
the one its sidecar describes, where TensorRT's messages go), so it is tested without TensorRT."""

import dataclasses
import hashlib
import logging
import threading
from pathlib import Path

import pytest

from common.artifact import EngineInfo
from common.tensorrt_compat import TENSORRT_LOG
from serve.tensorrt_runner import EngineMismatch, check_compatible, check_plan_bytes, runs_on

H100 = {"gpu": "NVIDIA H100 80GB HBM3", "compute_capability": "9.0"}
A10 = {"gpu": "NVIDIA A10", "compute_capability": "8.6"}


def sidecar(version: str, gpu: dict, version_compatible: bool = False) -> EngineInfo:
    return EngineInfo(version, gpu["gpu"], gpu["compute_capability"], 1, 32, 256, version_compatible)


def test_same_version_and_gpu_passes():
    check_compatible(sidecar("10.13.0", H100), "10.13.0", H100, Path("m.plan"))


def test_other_tensorrt_version_is_refused_with_the_fix():
    with pytest.raises(EngineMismatch, match=r"built with TensorRT 10\.7\.0, this is 10\.13\.0: rebuild"):
        check_compatible(sidecar("10.7.0", H100), "10.13.0", H100, Path("m.plan"))


def test_version_compatible_engine_runs_forward_within_its_major_and_on_the_next_where_tensorrt_says_so():
    check_compatible(sidecar("10.7.0", H100, version_compatible=True), "10.13.0", H100, Path("m.plan"))
    with pytest.raises(EngineMismatch, match=r"built with TensorRT 10.13.0, this is 10.7.0 \(a version-compatible"):
        check_compatible(sidecar("10.13.0", H100, version_compatible=True), "10.7.0", H100, Path("m.plan"))
    # TensorRT 11's support matrix: "TensorRT 10 version-compatible engines can run with a TensorRT 11 runtime".
    check_compatible(sidecar("10.7.0", H100, version_compatible=True), "11.4.0", H100, Path("m.plan"))
    with pytest.raises(EngineMismatch, match=r"built with TensorRT 10.7.0, this is 11.4.0: rebuild"):
        check_compatible(sidecar("10.7.0", H100), "11.4.0", H100, Path("m.plan"))  # not version-compatible
    with pytest.raises(EngineMismatch, match="built with TensorRT 11.1.0, this is 10.13.0"):
        check_compatible(sidecar("11.1.0", H100, version_compatible=True), "10.13.0", H100, Path("m.plan"))


def test_the_version_rule():
    assert runs_on("10.13.0.35", "10.13.0.35", False) and not runs_on("10.13.0.35", "10.13.1.2", False)
    assert runs_on("10.13.0.35", "10.13.1.2", True) and runs_on("11.0.0", "11.1.0", True)
    assert runs_on("8.6.1", "10.0.0", True) and not runs_on("8.6.1", "11.0.0", True)  # one major on, no further
    assert not runs_on("10.13.1", "10.13.0", True) and not runs_on("11.0.0", "10.16.1", True)


def test_a_plan_that_is_not_the_one_its_sidecar_describes_is_refused():
    info = dataclasses.replace(sidecar("10.13.0", H100), plan_sha256=hashlib.sha256(b"engine one").hexdigest())
    check_plan_bytes(info, b"engine one", Path("m.plan"))
    with pytest.raises(EngineMismatch, match=r"m.plan is not the engine its sidecar describes \(another build's\)"):
        check_plan_bytes(info, b"engine two", Path("m.plan"))
    check_plan_bytes(sidecar("10.13.0", H100), b"anything", Path("m.plan"))  # sidecars from before the hash


def test_tensorrt_messages_reach_the_call_that_caused_them_whichever_runner_made_the_logger():
    with TENSORRT_LOG.capture() as first:
        TENSORRT_LOG.error("engine one: bad magic")
        with TENSORRT_LOG.capture() as second:  # a second engine opened while the first is loading
            TENSORRT_LOG.error("engine two: wrong version")
        TENSORRT_LOG.error("engine one: deserialization failed")
    assert first == ["engine one: bad magic", "engine one: deserialization failed"]
    assert second == ["engine two: wrong version"]
    seen = []

    def other_thread():
        with TENSORRT_LOG.capture() as mine:
            TENSORRT_LOG.error("from the other thread")
        seen.extend(mine)

    with TENSORRT_LOG.capture() as main:
        worker = threading.Thread(target=other_thread)
        worker.start()
        worker.join()
    assert seen == ["from the other thread"] and main == []


def test_messages_nobody_captures_are_logged(caplog):
    with caplog.at_level(logging.ERROR):
        TENSORRT_LOG.error("an engine outlived its runtime")
    assert "TensorRT: an engine outlived its runtime" in caplog.text


def test_other_gpu_architecture_is_refused():
    with pytest.raises(EngineMismatch, match=r"built for NVIDIA A10 \(sm 8\.6\), this is NVIDIA H100.*\(sm 9\.0\)"):
        check_compatible(sidecar("10.13.0", A10, version_compatible=True), "10.13.0", H100, Path("m.plan"))
