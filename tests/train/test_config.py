"""Tests for train.config.TrainConfig (saved resolved in run.json) and train.run_dirs (run folders, latest, resume)."""

from __future__ import annotations

import dataclasses
import json
import os
import re
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from common.artifact import ClassifierMeta
from common.errors import CheckpointError, OptionError
from common.run import DataSource, Run, RunData, RunRecord
from train.config import PAPER_LR, RECOMMENDED_LR, TrainConfig
from train.losses import LossConfig, loss_config
from train.run_dirs import check_unused, config_to_resume, fresh_run_dir, point_latest


def stored(cfg: TrainConfig) -> TrainConfig:
    """The config as a run reads it back from run.json."""
    return TrainConfig.from_dict(json.loads(json.dumps(cfg.to_dict())))


# ---------------------------------------------------------------------------------------------------- TrainConfig


def test_round_trip_through_json_resolves_lr() -> None:
    cfg = TrainConfig()
    assert cfg.lr is None and RECOMMENDED_LR["builtin"] == 3e-4
    back = stored(cfg)
    assert back == dataclasses.replace(cfg, lr=3e-4, head_lr_scale=cfg.resolved_head_lr_scale())
    assert back.to_dict() == cfg.to_dict()
    assert isinstance(back.betas, tuple) and isinstance(back.loss, LossConfig)


def test_round_trip_of_a_config_with_every_field_changed() -> None:
    cfg = TrainConfig(
        model="ViT-B-32",
        pretrained="openai",
        data="data/train",
        val_data="data/val.csv",
        classnames="names.txt",
        templates=["a photo of a {}", "a sketch of a {}"],
        loss=loss_config("kd", kd_alpha=0.25, temperature=2.0),
        epochs=3,
        max_steps=100,
        batch_size=32,
        accum_steps=2,
        lr=None,
        weight_decay=0.1,
        betas=(0.8, 0.9),
        warmup_fraction=0.05,
        augment="randaugment",
        teacher_cache=False,
        seed=7,
        val_fraction=0.2,
        num_workers=2,
        device="cpu",
        autocast="fp32",
        strict=True,
        log_every=5,
    )
    assert cfg.to_dict()["lr"] == PAPER_LR == 1e-5  # a model without a recommended rate gets the paper's
    assert stored(cfg) == dataclasses.replace(cfg, lr=1e-5, head_lr_scale=cfg.resolved_head_lr_scale())


def test_an_explicit_lr_is_kept() -> None:
    assert stored(TrainConfig(lr=0.125)).lr == 0.125
    assert stored(TrainConfig(model="ViT-B-32", lr=0.125)).lr == 0.125


def test_from_dict_ignores_unknown_keys_and_fills_defaults() -> None:
    cfg = TrainConfig.from_dict({"seed": 4, "removed_option": True})
    assert cfg == TrainConfig(seed=4)


def test_data_source() -> None:
    cfg = TrainConfig(data="d/train", val_data="d/val", classnames="d/names.txt", val_fraction=0.25, seed=9)
    assert cfg.data_source() == DataSource(
        train="d/train", val="d/val", classnames="d/names.txt", val_fraction=0.25, seed=9
    )
    assert TrainConfig().data_source() == DataSource()


# ------------------------------------------------------------------------------------------------------ run_dirs


def test_fresh_run_dir_names_time_loss_and_seed(tmp_path: Path) -> None:
    # A second of slack: a VM's clock can step back between two readings (seen in CI: the name 1 s before `before`).
    before = datetime.now().replace(microsecond=0) - timedelta(seconds=1)
    path = fresh_run_dir(TrainConfig(loss=LossConfig(kind="ce"), seed=7), tmp_path)
    after = datetime.now()
    assert path.parent == tmp_path
    match = re.fullmatch(r"(\d{8}-\d{6})-ce-s7", path.name)
    assert match, path.name
    assert before <= datetime.strptime(match.group(1), "%Y%m%d-%H%M%S") <= after
    assert not path.exists()  # only named, not made
    assert re.fullmatch(r"\d{8}-\d{6}-proreg-s0", fresh_run_dir(TrainConfig(), tmp_path).name)
    named = TrainConfig(recipe="proreg-official+wise", seed=2)  # a recipe names its runs
    assert re.fullmatch(r"\d{8}-\d{6}-proreg-official\+wise-s2", fresh_run_dir(named, tmp_path).name)


def test_check_unused(tmp_path: Path) -> None:
    check_unused(tmp_path / "not-yet")  # missing: fine
    check_unused(tmp_path)  # empty: fine
    (tmp_path / "notes.txt").write_text("x")
    check_unused(tmp_path)  # other files: fine
    (tmp_path / "run.json").write_text("{}")
    with pytest.raises(CheckpointError, match=f"run directory already holds a run: {re.escape(str(tmp_path))}"):
        check_unused(tmp_path)


def test_point_latest(tmp_path: Path) -> None:
    root = tmp_path / "runs"
    first, second = root / "20250101-000000-proreg-s0", root / "20250101-000100-proreg-s0"
    first.mkdir(parents=True)
    second.mkdir()
    (first / "marker").write_text("first")

    point_latest(first, root)
    latest = root / "latest"
    assert latest.is_symlink() and os.readlink(latest) == first.name  # relative: survives moving runs/
    assert (latest / "marker").read_text() == "first"

    point_latest(second, root)  # replaces the old pointer
    assert os.readlink(latest) == second.name
    assert sorted(p.name for p in root.iterdir()) == sorted([first.name, second.name, "latest"])  # no temp link

    elsewhere = tmp_path / "elsewhere" / "run"
    elsewhere.mkdir(parents=True)
    point_latest(elsewhere, root)  # not under root: not tracked
    point_latest(root / "a" / "nested", root)  # below root but not directly under it
    assert os.readlink(latest) == second.name


def test_point_latest_with_relative_paths(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "runs" / "r1").mkdir(parents=True)
    point_latest(Path("runs/r1"), Path("runs"))
    assert os.readlink(tmp_path / "runs" / "latest") == "r1"
    point_latest(tmp_path / "runs" / "r1", Path("runs"))  # an absolute run dir under a relative root
    assert os.readlink(tmp_path / "runs" / "latest") == "r1"


def fake_run(path: Path, cfg: TrainConfig) -> Run:
    meta = ClassifierMeta("builtin", None, {}, {"size": 64}, ["a", "b"], ["a", "b"], ["a photo of a {}"], 100.0)
    return Run(path, RunRecord(classifier=meta, train_config=cfg.to_dict(), data=RunData(cfg.data_source())))


def test_config_to_resume_returns_the_saved_config(tmp_path: Path) -> None:
    cfg = TrainConfig(batch_size=16, max_steps=9, augment="randaugment")
    run = fake_run(tmp_path, cfg)
    assert config_to_resume(run, None, {}) == dataclasses.replace(
        cfg, lr=3e-4, head_lr_scale=cfg.resolved_head_lr_scale()
    )
    assert config_to_resume(run, cfg, {}) == dataclasses.replace(
        cfg, lr=3e-4, head_lr_scale=cfg.resolved_head_lr_scale()
    )  # lr None resolves to the saved 3e-4
    same = TrainConfig(batch_size=16, max_steps=9, augment="randaugment", lr=3e-4)
    assert config_to_resume(run, same, {}).lr == 3e-4


def test_resume_honours_only_lr_workers_and_device(tmp_path: Path) -> None:
    cfg = TrainConfig(batch_size=16, max_steps=9)
    run = fake_run(tmp_path, cfg)
    resumed = config_to_resume(run, None, {"lr": 1e-4, "num_workers": 2, "device": "cpu"})
    assert resumed == dataclasses.replace(
        cfg, lr=1e-4, num_workers=2, device="cpu", head_lr_scale=cfg.resolved_head_lr_scale()
    )
    assert (
        config_to_resume(run, dataclasses.replace(cfg, lr=1e-3, head_lr_scale=cfg.resolved_head_lr_scale()), {}).lr
        == 1e-3
    )  # a gentler (or other) rate
    with pytest.raises(OptionError, match=r"can change only lr, num_workers, device, not batch_size, epochs$"):
        config_to_resume(run, None, {"epochs": 3, "batch_size": 8})
    finished = Run(run.path, dataclasses.replace(run.record, status="finished"))
    with pytest.raises(CheckpointError, match="has finished training; nothing to resume"):
        config_to_resume(finished, None, {})


def test_config_to_resume_names_every_differing_key(tmp_path: Path) -> None:
    run = fake_run(tmp_path, TrainConfig(batch_size=16, max_steps=9))
    other = TrainConfig(batch_size=32, max_steps=9, seed=1, loss=LossConfig(kind="ce"))
    with pytest.raises(CheckpointError) as info:
        config_to_resume(run, other, {})
    message = str(info.value)
    assert message.startswith(f"cannot resume {tmp_path} with other settings: ")
    assert "batch_size (32, the run has 16)" in message and "seed (1, the run has 0)" in message
    assert re.search(r"loss \(\{'kind': 'ce'.*, the run has \{'kind': 'proreg'", message)
    named = re.findall(r"(?:: |, )(\w+) \(", message)
    assert named == ["batch_size", "loss", "seed"]  # every differing key, sorted, and only those
    assert "\n" not in message


def test_a_damaged_saved_config_is_a_checkpoint_error() -> None:
    saved = TrainConfig().to_dict()
    with pytest.raises(CheckpointError, match=r"train_config: betas should hold 2 values, not 3"):
        TrainConfig.from_dict({**saved, "betas": [0.9, 0.98, 0.5]}, "run.json: train_config")
    damaged = {**saved["loss"], "settings": {**saved["loss"]["settings"], "alpha": "1"}}
    with pytest.raises(CheckpointError, match=r"run.json: train_config: alpha should be float, not str '1'"):
        TrainConfig.from_dict({**saved, "loss": damaged}, "run.json: train_config")
    with pytest.raises(CheckpointError, match=r"run.json: train_config: kd_alpha must be a finite number at least 0"):
        TrainConfig.from_dict({**saved, "loss": {"kind": "kd", "kd_alpha": 3.0}}, "run.json: train_config")


def test_a_config_saved_before_methods_had_options_of_their_own_is_read() -> None:
    """run.json of earlier versions holds every method's options side by side under `loss`."""
    flat = {"kind": "kd", "weight_form": "xerm", "alpha": 1.0, "gamma": 1.0, "temperature": 2.0, "kd_alpha": 0.25}
    saved = {**TrainConfig().to_dict(), "loss": {**flat, "tes_lv": 0.2, "tes_lt": 0.4, "tes_tau": 0.03, "eps": 1e-8}}
    assert TrainConfig.from_dict(saved).loss == loss_config("kd", kd_alpha=0.25, temperature=2.0)


def test_templates_default_to_the_data_suites_own_and_suite_roots_are_made_absolute(tmp_path, monkeypatch):
    from common.artifact import DEFAULT_TEMPLATES

    (tmp_path / "PACS").mkdir()
    monkeypatch.chdir(tmp_path)
    assert TrainConfig().templates == list(DEFAULT_TEMPLATES)
    imagenet = TrainConfig(data="imagenet:/data/imagenet")
    assert len(imagenet.templates) == 80 and "a photo of a {}." in imagenet.templates
    pacs = TrainConfig(data="pacs/photo:PACS")
    assert pacs.data == f"pacs/photo:{tmp_path / 'PACS'}" and pacs.templates == ["a photo of a {}."]
    assert TrainConfig(data="imagenet:/data/imagenet", templates=["art of a {}"]).templates == ["art of a {}"]
