"""Adding a fine-tuning method is one module and one registration line (docs/DESIGN.md, "Add a method", shows this
file's method): registered from this test alone, `train --loss NAME` takes it and its own options, run.json records
them, and its loss terms are logged."""

from __future__ import annotations

import json
from dataclasses import dataclass

import pytest
import torch
import torch.nn.functional as F
from typer.testing import CliRunner

from cli import app
from common.run import open_run
from train.methods import METHODS
from train.methods.base import LossInputs, Method, MethodOptions, option
from train.options import method_options_help

pytestmark = pytest.mark.slow


# ---- the method: what a contributor writes in train/methods/<name>.py -------------------------------------------


@dataclass(frozen=True)
class SmoothedOptions(MethodOptions):
    smoothing: float = option(0.1, "ce-smooth: the label smoothing (0..1).", low=0, high=1)


def smoothed_terms(o: SmoothedOptions, x: LossInputs) -> dict[str, torch.Tensor]:
    """Cross-entropy to labels smoothed towards the uniform distribution (Szegedy et al., 2016)."""
    if x.student is None:
        raise ValueError("loss 'ce-smooth' needs the student's logits")
    return {
        "ce_loss": F.cross_entropy(x.student, x.labels, label_smoothing=o.smoothing),
        "ce": F.cross_entropy(x.student.detach(), x.labels),  # logged, not summed: no "_loss" suffix
    }


METHOD = Method("ce-smooth", "cross-entropy to smoothed labels", smoothed_terms, SmoothedOptions)

# ---- the registration line: what a contributor adds to train/methods/__init__.py's METHODS ----------------------


@pytest.fixture
def registered(monkeypatch):
    monkeypatch.setitem(METHODS, METHOD.name, METHOD)


def test_a_registered_method_trains_through_the_cli_with_its_own_options(registered, tmp_path):
    out = tmp_path / "run"
    args = ["train", "--loss", "ce-smooth", "--smoothing", "0.3", "--max-steps", "3", "--log-every", "1"]
    result = CliRunner().invoke(app, [*args, "--batch-size", "16", "--out", str(out)])
    assert result.exit_code == 0, result.output
    record = json.loads((out / "run.json").read_text())
    assert record["train_config"]["loss"] == {"kind": "ce-smooth", "settings": {"smoothing": 0.3}}
    steps = [row for row in open_run(out).metrics() if "loss" in row]
    assert len(steps) == 3 and all(row["loss"] == row["ce_loss"] and row["ce_loss"] > row["ce"] for row in steps)

    # train --help lists every method's options from the registry (as it stands when the CLI is loaded).
    assert "ce-smooth: --smoothing (default 0.1): ce-smooth: the label smoothing (0..1)" in method_options_help()
    bad = ["train", "--loss", "ce-smooth", "--smoothing", "2", "--out", str(tmp_path / "x")]
    result = CliRunner().invoke(app, bad)
    assert result.exit_code == 2
    assert "smoothing must be a finite number at least 0 and at most 1, got 2.0" in result.output
    assert not (tmp_path / "x").exists()
