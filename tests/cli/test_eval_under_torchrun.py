"""Sharded `eval` under torchrun: every rank joins the process group, which puts it on the GPU of its LOCAL_RANK,
before any runner is put on a device (a runner opened first lands on GPU 0 on every rank). The group and the GPUs
cannot be had here; the order of the two steps is what is tested."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

import common.distributed
import serve.backends
import workflows.evaluation
import workflows.pipeline  # imported before any test patches what it imports by name
from cli import app
from common.errors import UserError


class Stop(UserError):
    """Ends the command once the first runner is asked for."""


@pytest.fixture
def steps(monkeypatch) -> list[str]:
    taken: list[str] = []

    def join():
        taken.append("join")
        return common.distributed.Ranks()

    def open_runner(*args, **kwargs):
        taken.append("runner")
        raise Stop("stopped at the first runner")

    monkeypatch.setattr(common.distributed, "current", join)
    monkeypatch.setattr(serve.backends, "open_runner", open_runner)
    monkeypatch.setattr(workflows.evaluation, "open_runner", open_runner)
    return taken


@pytest.mark.parametrize(
    "args",
    [
        ["--checkpoint", "builtin"],
        ["--onnx", "model.onnx", "--reference", "runs/latest"],
        ["--zero-shot", "builtin", "--reference", "builtin"],
    ],
    ids=["checkpoint", "onnx", "zero-shot"],
)
def test_eval_joins_the_group_before_it_opens_a_runner(steps, args, tmp_path):
    result = CliRunner().invoke(app, ["eval", *args, "--out", str(tmp_path / "r.json")])
    assert result.exit_code == 2 and "stopped at the first runner" in result.output
    assert steps == ["join", "runner"]


def test_bench_joins_the_group_before_it_opens_a_runner(steps, tmp_path, monkeypatch):
    def exported_runners(*args, **kwargs):
        return serve.backends.open_runner(*args)

    monkeypatch.setattr(workflows.pipeline, "exported_runners", exported_runners)
    result = CliRunner().invoke(app, ["bench", str(tmp_path), "--out", str(tmp_path / "r.json")])
    assert result.exit_code == 2 and "stopped at the first runner" in result.output
    assert steps == ["join", "runner"]
