"""How an engine build writes its two files (TensorRT itself cannot run here): the plan and its sidecar land together
or not at all, and a rebuild never leaves a new plan beside an old sidecar."""

import hashlib

import pytest

from common.artifact import (
    ArtifactSpec,
    ClassifierMeta,
    EngineInfo,
    read_engine_sidecar,
    sidecar_path,
    write_engine_sidecar,
)
from common.errors import NoSpaceError
from export import tensorrt_build
from export.tensorrt_build import write_engine_files


def _spec() -> ArtifactSpec:
    meta = ClassifierMeta("toy", None, {}, {"size": 64}, ["a", "b"], ["a", "b"], ["a photo of a {}"], 100.0)
    return ArtifactSpec(classifier=meta, precision="fp16")


def _info(plan: bytes) -> EngineInfo:
    return EngineInfo("10.13.0", "NVIDIA L4", "8.9", 1, 32, 256, plan_sha256=hashlib.sha256(plan).hexdigest())


def test_the_plan_and_its_sidecar_are_written_together(tmp_path):
    plan = tmp_path / "model.fp16.plan"
    write_engine_files(plan, b"engine one", _spec(), _info(b"engine one"))
    spec, info = read_engine_sidecar(plan)
    assert plan.read_bytes() == b"engine one" and info.plan_sha256 == hashlib.sha256(b"engine one").hexdigest()
    assert spec.precision == "fp16"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.fp16.plan", "model.fp16.plan.json"]


def test_a_failure_before_the_moves_leaves_the_earlier_pair_as_it_was(tmp_path, monkeypatch):
    plan = tmp_path / "model.plan"
    write_engine_files(plan, b"engine one", _spec(), _info(b"engine one"))
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}

    def full_disk(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(tensorrt_build, "strict_json", full_disk)  # the sidecar cannot be made
    with pytest.raises(NoSpaceError, match=r"no space to write .*model\.plan \(No space left on device\)"):
        write_engine_files(plan, b"engine two", _spec(), _info(b"engine two"))
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == before  # no temporary file, no orphan plan


def test_a_failed_last_move_leaves_no_plan_without_its_sidecar(tmp_path, monkeypatch):
    plan = tmp_path / "model.plan"
    write_engine_sidecar(plan, _spec(), _info(b"old engine"))  # an earlier build's sidecar
    plan.write_bytes(b"old engine")
    real_replace = type(plan).replace

    def refuse_sidecar(self, target):
        if str(target).endswith(".json"):
            raise OSError(5, "Input/output error")
        return real_replace(self, target)

    monkeypatch.setattr(type(plan), "replace", refuse_sidecar)
    with pytest.raises(OSError, match="Input/output error"):
        write_engine_files(plan, b"engine two", _spec(), _info(b"engine two"))
    # Neither file without the other, and the old sidecar never left to describe the new plan.
    assert list(tmp_path.iterdir()) == [] and not sidecar_path(plan).exists()
