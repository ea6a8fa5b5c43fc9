"""Tests for common.run (run.json, open_run, metrics) and common.checkpoint (weights files), and reloading a run."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import torch
from torch import nn

from common.artifact import ClassifierMeta
from common.checkpoint import load_weights, save_weights, weights_step
from common.classifier import zero_shot_classifier
from common.errors import UserError
from common.run import (
    RUN_FORMAT,
    BestCheckpoint,
    CheckpointError,
    DataSource,
    Run,
    RunData,
    RunProgress,
    RunRecord,
    open_run,
    write_run_record,
)
from data.specs import builtin_classnames


def make_meta(classes: list[str] | None = None) -> ClassifierMeta:
    classes = classes or ["circle", "square", "triangle"]
    return ClassifierMeta(
        model="builtin",
        pretrained=None,
        model_config={"embed_dim": 32, "vision_cfg": {"image_size": 64, "layers": 2}},
        preprocess={"size": 64, "mean": [0.5, 0.5, 0.5], "std": [0.25, 0.25, 0.25], "interpolation": "bicubic"},
        classes=classes,
        prompts=[c.replace("_", " ") for c in classes],
        templates=["a photo of a {}", "a drawing of a {}"],
        logit_scale=100.0,
    )


def make_record(meta: ClassifierMeta | None = None) -> RunRecord:
    """A record with every field set away from its default."""
    return RunRecord(
        classifier=meta or make_meta(),
        train_config={"model": "builtin", "lr": 3e-4, "betas": [0.9, 0.98], "loss": {"kind": "proreg"}},
        data=RunData(
            source=DataSource(train="data/train", val="data/val.csv", classnames="names.txt", val_fraction=0.2, seed=3),
            n_train=540,
            n_val=60,
            skipped_train_reads=7,
            skipped_val=1,
        ),
        status="finished",
        created="2025-01-01T00:00:00",
        git_commit="0123abcd",
        trainable_params=12345,
        progress=RunProgress(step=90, total_steps=100, epoch=9),
        best=BestCheckpoint(step=80, val_top1=0.875),
        teacher_cache={"seconds": 1.5, "images": 540},
        train_seconds=42.5,
        resumed_at_step=50,
    )


# ---------------------------------------------------------------------------------------------------- RunRecord


def test_run_record_round_trip() -> None:
    record = make_record()
    data = record.to_dict()
    assert data["format"] == RUN_FORMAT
    assert set(data) == {"format", *RunRecord.__dataclass_fields__}  # run.json uses the field names
    assert RunRecord.from_dict(data, "x") == record
    assert RunRecord.from_dict(json.loads(json.dumps(data)), "x") == record  # as stored in run.json


def test_run_record_defaults_round_trip() -> None:
    record = RunRecord(classifier=make_meta(), train_config={}, data=RunData(DataSource()))
    assert RunRecord.from_dict(json.loads(json.dumps(record.to_dict())), "x") == record


def test_write_run_record_then_open_run(tmp_path: Path) -> None:
    record = make_record()
    write_run_record(tmp_path, record)
    assert [p.name for p in tmp_path.iterdir()] == ["run.json"]  # no temporary file left
    run = open_run(tmp_path)
    assert run == Run(tmp_path, record)
    assert run.classifier == record.classifier
    assert open_run(str(tmp_path)).path == tmp_path
    assert (run.best_weights, run.metrics_file) == (tmp_path / "best.safetensors", tmp_path / "metrics.jsonl")


def write_json_text(run_dir: Path, text: str) -> Path:
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "run.json").write_text(text)
    return run_dir / "run.json"


def without(data: dict, key: str) -> dict:
    return {k: v for k, v in data.items() if k != key}


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("{not json", r"^corrupt .*run\.json: Expecting property name"),
        ("", r"^corrupt .*run\.json: Expecting value"),
        ("[1, 2]", r"^corrupt .*run\.json: not a JSON object$"),
        ('"a string"', r"^corrupt .*run\.json: not a JSON object$"),
        (json.dumps({**make_record().to_dict(), "format": "proreg-clip-run/1"}), "not a proreg-clip-run/3 record"),
        (json.dumps(without(make_record().to_dict(), "format")), r"not a proreg-clip-run/3 record \(format None\)"),
        (json.dumps(without(make_record().to_dict(), "classifier")), r"classifier is missing$"),
        (json.dumps(without(make_record().to_dict(), "data")), r"data is missing$"),
        (json.dumps(without(make_record().to_dict(), "train_config")), r"train_config is missing$"),
        (
            json.dumps({**make_record().to_dict(), "progress": {"step": "90"}}),
            r"progress\.step should be int, not str '90'$",
        ),
        (
            json.dumps({**make_record().to_dict(), "best": {"step": 80, "val_top1": None}}),
            r"best\.val_top1 should be float, not NoneType None$",
        ),
    ],
)
def test_open_run_refuses_a_bad_run_json(tmp_path: Path, content: str, message: str) -> None:
    file = write_json_text(tmp_path / "run", content)
    with pytest.raises(CheckpointError, match=message) as info:
        open_run(tmp_path / "run")
    assert "\n" not in str(info.value)
    if "corrupt" not in message:
        assert str(info.value).startswith(f"{file}: ")  # names the file


@pytest.mark.parametrize(
    ("key", "kind"), [("data", "an object"), ("train_config", "dict"), ("classifier", "an object")]
)
def test_open_run_refuses_a_section_that_is_a_string(tmp_path: Path, key: str, kind: str) -> None:
    write_json_text(tmp_path, json.dumps({**make_record().to_dict(), key: "abc"}))
    with pytest.raises(CheckpointError, match=f": {key} should be {kind}, not str"):
        open_run(tmp_path)


def test_open_run_ignores_keys_a_newer_writer_added(tmp_path: Path) -> None:
    write_json_text(tmp_path, json.dumps({**make_record().to_dict(), "progress": {"step": 90, "unknown": 2}}))
    assert open_run(tmp_path).record.progress.step == 90


def test_open_run_without_run_json(tmp_path: Path) -> None:
    expected = f"not a run directory (no run.json): {tmp_path}"
    with pytest.raises(CheckpointError, match=f"^{re.escape(expected)}$"):
        open_run(tmp_path)
    (tmp_path / "run.json").mkdir()  # a folder of that name is not a record either
    with pytest.raises(CheckpointError, match="not a run directory"):
        open_run(tmp_path)


def test_run_metrics(tmp_path: Path) -> None:
    run = Run(tmp_path, make_record())
    assert run.metrics() == []  # none logged yet
    records = [{"step": 1, "loss": 2.5}, {"step": 2, "loss": 2.0, "val_top1": 0.5}]
    run.metrics_file.write_text(json.dumps(records[0]) + "\n\n" + json.dumps(records[1]) + "\n")
    assert run.metrics() == records


# ------------------------------------------------------------------------------------------------- weights files


def test_save_and_load_weights(tmp_path: Path) -> None:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 3), nn.BatchNorm1d(3))
    path = tmp_path / "last.safetensors"
    save_weights(model, path, step=17)
    assert [p.name for p in tmp_path.iterdir()] == ["last.safetensors"]  # the temporary file was renamed
    state = load_weights(path)
    expected = model.state_dict()
    assert state.keys() == expected.keys()
    for key, value in expected.items():
        assert torch.equal(state[key], value), key
    assert weights_step(path) == 17

    save_weights(model, path)  # no step: none stamped, the file is replaced
    assert weights_step(path) is None


def test_load_weights_of_a_missing_file(tmp_path: Path) -> None:
    missing = tmp_path / "best.safetensors"
    with pytest.raises(CheckpointError, match=f"^no weights file {re.escape(str(missing))}$"):
        load_weights(missing)


def test_load_weights_of_a_truncated_file(tmp_path: Path) -> None:
    path = tmp_path / "best.safetensors"
    save_weights(nn.Linear(16, 16), path, step=1)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match=f"^cannot read weights {re.escape(str(path))}: "):
        load_weights(path)
    path.write_bytes(b"not safetensors at all")
    with pytest.raises(CheckpointError, match="cannot read weights"):
        load_weights(path)


# ------------------------------------------------------------------------------------------ reloading a classifier


@pytest.fixture(scope="module")
def zero_shot():
    names = builtin_classnames()
    return zero_shot_classifier("builtin", None, list(names), list(names.values()), ["a photo of a {}"])


def run_with_state(run_dir: Path, meta: ClassifierMeta, state: dict[str, torch.Tensor]) -> Run:
    run_dir.mkdir(parents=True, exist_ok=True)
    from safetensors.torch import save_file

    save_file({k: v.contiguous() for k, v in state.items()}, str(run_dir / "best.safetensors"))
    write_run_record(run_dir, RunRecord(classifier=meta, train_config={}, data=RunData(DataSource())))
    return open_run(run_dir)


def test_load_classifier_reproduces_the_logits(tmp_path: Path, zero_shot) -> None:
    model, meta = zero_shot
    save_weights(model, tmp_path / "best.safetensors", step=5)
    write_run_record(tmp_path, RunRecord(classifier=meta, train_config={}, data=RunData(DataSource())))
    reloaded = open_run(tmp_path).load_classifier()
    assert not reloaded.training
    images = torch.randn(3, 3, meta.image_size, meta.image_size)
    with torch.no_grad():
        expected, got = model(images), reloaded(images)
    assert got.shape == (3, len(meta.classes))
    torch.testing.assert_close(got, expected, rtol=0, atol=0)


def test_load_classifier_without_weights(tmp_path: Path, zero_shot) -> None:
    _, meta = zero_shot
    write_run_record(tmp_path, RunRecord(classifier=meta, train_config={}, data=RunData(DataSource())))
    with pytest.raises(CheckpointError, match="no weights in run directory \\(expected best.safetensors\\)"):
        open_run(tmp_path).load_classifier()
    with pytest.raises(CheckpointError, match="expected last.safetensors"):
        open_run(tmp_path).load_classifier("last.safetensors")


@pytest.mark.parametrize("change", ["drop logit_scale", "drop a visual tensor", "reshape a visual tensor"])
def test_load_classifier_refuses_weights_of_another_model(tmp_path: Path, zero_shot, change: str) -> None:
    model, meta = zero_shot
    state = {k: v.clone() for k, v in model.state_dict().items()}
    visual = next(k for k in state if k.startswith("visual.") and state[k].ndim == 2)
    if change == "drop logit_scale":
        del state["head.logit_scale"]
    elif change == "drop a visual tensor":
        del state[visual]
    else:
        state[visual] = torch.zeros(state[visual].shape[0] + 1, state[visual].shape[1])
    run = run_with_state(tmp_path, meta, state)
    detail = {
        "drop logit_scale": 'Missing key.*"head.logit_scale"',
        "drop a visual tensor": "Missing key",
        "reshape a visual tensor": "size mismatch",
    }
    with pytest.raises(
        UserError, match=f"weights in .*best.safetensors do not fit the classifier .*{detail[change]}"
    ) as info:
        run.load_classifier()
    assert "\n" not in str(info.value)


def test_load_classifier_refuses_class_weights_for_other_classes(tmp_path: Path, zero_shot) -> None:
    model, meta = zero_shot
    state = {k: v.clone() for k, v in model.state_dict().items()}
    state["head.weight"] = state["head.weight"][:5]
    assert len(meta.classes) == 6
    run = run_with_state(tmp_path, meta, state)
    with pytest.raises(UserError, match="do not fit the classifier .*: 5 class vectors for 6 classes"):
        run.load_classifier()
