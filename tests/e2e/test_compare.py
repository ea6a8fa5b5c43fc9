"""The methods comparison and the WiSE-FT sweep end to end on tiny data: workflows.compare_recipes trains every
(method, knob, seed) cell for two steps and writes the leaderboard; a second call trains and evaluates nothing; a
cell whose scores are gone is re-evaluated alone; an interrupted cell is resumed. workflows.wise_sweep's ends are
the zero-shot and the fine-tuned model, measured independently with serve.evaluate."""

from __future__ import annotations

import csv
import dataclasses
import json
import os
import shutil
import signal
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

import workflows.compare
from common.artifact import ArtifactSpec
from common.classifier import zero_shot_classifier
from common.errors import UserError
from common.run import DataSource, Run, open_run
from data.specs import EvalSet, resolve_eval_sets, resolve_train_data
from serve.evaluate import evaluate
from serve.leaderboard import ZERO_SHOT
from serve.torch_runner import TorchRunner
from tests.tiny_data import copy_tiny_folder
from train.config import TrainConfig
from train.losses import LossConfig
from train.trainer import TrainingInterrupted
from train.wise import wise_classifier, zero_shot_state
from workflows.compare import COMPARE_SCORES, CompareSpec, compare_cells, compare_recipes
from workflows.wise import wise_sweep

pytestmark = pytest.mark.slow  # six 2-step trainings and their evaluations: about a minute on 2 CPU cores

PER_CLASS = 3  # images per class in each evaluation set: 18 a set


def manifest(benchmark_root: Path, split: str, path: Path) -> Path:
    """A manifest of the first PER_CLASS images of each class of a built-in split (absolute paths, with groups)."""
    counts: dict[str, int] = {}
    rows = []
    with open(benchmark_root / f"{split}.csv") as f:
        for row in csv.DictReader(f):
            if counts.get(row["label"], 0) < PER_CLASS:
                counts[row["label"]] = counts.get(row["label"], 0) + 1
                rows.append([str(benchmark_root / row["path"]), row["label"], row["group"]])
    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["path", "label", "group"])
        writer.writerows(rows)
    return path


@pytest.fixture(scope="module")
def tiny(tmp_path_factory, benchmark_root) -> Path:
    return copy_tiny_folder(benchmark_root, tmp_path_factory.mktemp("compare-data") / "tiny")


@pytest.fixture(scope="module")
def set_specs(tiny, benchmark_root) -> dict[str, str]:
    """Evaluation set specs (as the CLI takes them): ID test images, sketches (OOD), corrupted images (held out)."""
    root = tiny.parent
    return {
        "id": f"id:{manifest(benchmark_root, 'id_test', root / 'idtest.csv')}",
        "ood": f"ood:{manifest(benchmark_root, 'ood_sketch', root / 'sketch.csv')}",
        "holdout": f"ood:{manifest(benchmark_root, 'ood_corrupt', root / 'corrupt.csv')}",
    }


@pytest.fixture(scope="module")
def spec(tiny, set_specs) -> CompareSpec:
    classes = resolve_train_data(DataSource(str(tiny))).classes  # as cli.py compare orders every set
    return CompareSpec(
        recipes=["ce", "kd"],
        seeds=[0, 1],
        data=str(tiny),
        sets=resolve_eval_sets([set_specs["id"], set_specs["ood"]], classes),
        holdout=resolve_eval_sets([set_specs["holdout"]], classes),
        alphas=[0.5],
        fixed_alpha=0.5,
        train_options={"max_steps": 2, "batch_size": 16},
        batch_size=64,
    )


@pytest.fixture(scope="module")
def compared(spec, tmp_path_factory) -> tuple[Path, list]:
    out = tmp_path_factory.mktemp("compare") / "out"
    return out, compare_recipes(spec, out)


def leaderboard_rows(out: Path) -> list[dict]:
    return json.loads((out / "leaderboard.json").read_text())["rows"]


def cell_dirs(out: Path) -> list[Path]:
    return sorted(p for p in (out / "cells").iterdir() if p.is_dir())


def copy_of(compared, tmp_path: Path) -> Path:
    """A copy of the finished comparison, for a test that changes it."""
    copy = tmp_path / "compare"
    shutil.copytree(compared[0], copy)
    return copy


class Calls:
    """Counts calls of train.trainer.train and workflows.compare's evaluate (by the runner's artifact), passing them on
    unless told to fail."""

    def __init__(self, monkeypatch, fail: bool):
        import train.trainer

        self.trained: list[tuple[Path | None, bool]] = []
        self.evaluated: list[str] = []
        real_train, real_evaluate = train.trainer.train, workflows.compare.evaluate

        def counting_train(cfg=None, out=None, resume=False, on_step=None):
            self.trained.append((out, resume))
            if fail:
                raise AssertionError(f"trained {out} (resume={resume}) again")
            return real_train(cfg, out, resume, on_step)

        def counting_evaluate(runner, sets, *args, **kwargs):
            self.evaluated.append(runner.artifact)
            if fail:
                raise AssertionError(f"evaluated {runner.artifact} again")
            return real_evaluate(runner, sets, *args, **kwargs)

        monkeypatch.setattr(train.trainer, "train", counting_train)
        monkeypatch.setattr(workflows.compare, "evaluate", counting_evaluate)


# ------------------------------------------------------------------------------------------------------ compare


def test_compare_cells_sweep_each_methods_knob_over_the_seeds(spec):
    cells = compare_cells(spec)
    assert [(c.recipe, c.knob, c.seed) for c in cells] == [
        ("ce", "", 0),
        ("ce", "", 1),
        ("kd", "kd_alpha=0.5", 0),
        ("kd", "kd_alpha=0.5", 1),
        ("kd", "kd_alpha=0.75", 0),
        ("kd", "kd_alpha=0.75", 1),
    ]
    assert [c.config.loss.settings["kd_alpha"] for c in cells[2:]] == [0.5, 0.5, 0.75, 0.75]
    assert [c.config.seed for c in cells] == [0, 1] * 3 and all(c.config.max_steps == 2 for c in cells)
    assert [c.folder for c in cells[:3]] == ["ce-s0", "ce-s1", "kd-kd_alpha0.5-s0"]


def test_compare_writes_the_leaderboard(compared, spec):
    out, rows = compared
    names = {p.name for p in out.iterdir()}
    assert {"leaderboard.json", "leaderboard.md", "leaderboard.png"} <= names
    # the zero-shot model is scored once per training-data source: a folder's split is drawn with each seed
    assert len([n for n in names if n.startswith("zero-shot-") and n.endswith(".json")]) == len(spec.seeds)
    assert (out / "leaderboard.png").read_bytes().startswith(b"\x89PNG")
    cells = cell_dirs(out)
    assert len(cells) == 6
    for cell in cells:
        run = open_run(cell)
        assert run.record.status == "finished" and run.record.progress.step == 2
        assert (cell / COMPARE_SCORES).is_file()
    kd = [open_run(c).record.train_config for c in cells if open_run(c).record.train_config["loss"]["kind"] == "kd"]
    kd_alphas = sorted((c["loss"]["settings"]["kd_alpha"], c["seed"]) for c in kd)
    assert kd_alphas == [(0.5, 0), (0.5, 1), (0.75, 0), (0.75, 1)]

    written = json.loads((out / "leaderboard.json").read_text())
    assert [r["name"] for r in written["rows"]] == [r.name for r in rows]
    by_row = {(r.name, r.alpha): r for r in rows}
    assert {name for name, _ in by_row} == {ZERO_SHOT, "ce", "ce+wise", "kd", "kd+wise"}
    assert (ZERO_SHOT, "0") in by_row and ("ce", "1") in by_row and ("ce+wise", "0.5") in by_row
    assert ("kd+wise", "0.5") in by_row
    val_rows = [r for r in rows if r.alpha.startswith("val: ")]
    assert len(rows) == 1 + 2 * 2 + len(val_rows)  # zero-shot + (fine-tuned, fixed alpha) x 2, + val choices
    for chosen in val_rows:  # one alpha per seed, and not one row's alpha for both (that row's numbers again)
        picks = chosen.alpha[len("val: ") :].split(",")
        assert len(picks) == 2 and not (len(set(picks)) == 1 and picks[0] in ("1", "0.5"))
    assert written["title"].endswith(": ce, kd, seeds 0, 1")
    assert {r.seeds for r in rows if r.name != ZERO_SHOT} == {2}
    assert [r.mean_of("ood_mean") for r in rows] == sorted((r.mean_of("ood_mean") for r in rows), reverse=True)
    # The held-out set is reported apart: under its own key, out of the OOD mean.
    for r in rows:
        assert set(r.metrics) == {
            "val", "id", "sketch", "holdout:corrupt", "ood_mean", "worst_group", "holdout_mean"
        }  # fmt: skip
        assert r.metrics["ood_mean"] == pytest.approx(r.metrics["sketch"])  # the one OOD set
        assert r.metrics["holdout_mean"] == pytest.approx(r.metrics["holdout:corrupt"])
    markdown = (out / "leaderboard.md").read_text()
    assert "## Held-out shifts" in markdown and "holdout:corrupt" in markdown


def test_cell_scores_are_the_runs_own_accuracy(compared, spec):
    """A cell's stored alpha-1 scores are what serve.evaluate measures on its run directory."""
    out, _ = compared
    cell = cell_dirs(out)[0]
    stored = json.loads((cell / COMPARE_SCORES).read_text())
    assert set(stored["alphas"]) == {"0.5", "1"}
    assert stored["sets"] == ["corrupt", "idtest", "sketch"]
    report, _ = evaluate(TorchRunner.from_run(open_run(cell)), spec.sets + spec.holdout, batch_size=64)
    at1 = stored["alphas"]["1"]["sets"]
    assert {name: at1[name]["top1"] for name in at1} == {n: d.top1 for n, d in report.datasets.items()}
    assert at1["corrupt"]["role"] == "holdout" and at1["sketch"]["role"] == "ood" and at1["idtest"]["role"] == "id"


def test_a_second_call_trains_nothing_and_evaluates_nothing(compared, spec, tmp_path, monkeypatch):
    out = copy_of(compared, tmp_path)
    before = leaderboard_rows(out)
    calls = Calls(monkeypatch, fail=True)
    rows = compare_recipes(spec, out)
    assert calls.trained == [] and calls.evaluated == []
    assert leaderboard_rows(out) == before
    assert [r.name for r in rows] == [r["name"] for r in before]


def test_a_cell_without_scores_is_re_evaluated_alone(compared, spec, tmp_path, monkeypatch):
    out = copy_of(compared, tmp_path)
    before = leaderboard_rows(out)
    cell = cell_dirs(out)[3]
    (cell / COMPARE_SCORES).unlink()
    calls = Calls(monkeypatch, fail=False)
    compare_recipes(spec, out)
    assert calls.trained == []
    # Validation and the sets, at alpha 0.5 and 1: four evaluations, all of that cell.
    assert calls.evaluated == [str(cell)] * 4
    assert (cell / COMPARE_SCORES).is_file()
    assert leaderboard_rows(out) == before


def test_a_full_disk_keeps_the_comparison_as_it_was(compared, spec, tmp_path):
    """A comparison whose scores and leaderboard cannot be written ends naming the file; every earlier file is
    bit-identical, no temporary file is left, and the next call (with space) finishes it."""
    from common.errors import NoSpaceError
    from tests.file_size_limit import file_digests, file_size_limit, temporary_files

    out = copy_of(compared, tmp_path)
    (cell_dirs(out)[3] / COMPARE_SCORES).unlink()  # to measure again and write
    before = file_digests(out)
    with file_size_limit(512), pytest.raises(NoSpaceError, match=f"no space to write {out}"):
        compare_recipes(spec, out)
    assert file_digests(out) == before and temporary_files(out) == []
    compare_recipes(spec, out)
    assert (cell_dirs(out)[3] / COMPARE_SCORES).is_file()


def test_an_interrupted_cell_is_resumed(compared, spec, tmp_path, monkeypatch):
    """A comparison stopped (Ctrl-C) inside a cell's training resumes that training where it stopped, and ends with
    the leaderboard an uninterrupted comparison wrote."""
    import train.trainer

    out = copy_of(compared, tmp_path)
    before = leaderboard_rows(out)
    cell = cell_dirs(out)[1]
    shutil.rmtree(cell)
    real_train = train.trainer.train

    def interrupted_train(cfg=None, out=None, resume=False, on_step=None):
        def ctrl_c(step, terms):
            if step == 1:
                os.kill(os.getpid(), signal.SIGINT)

        return real_train(cfg, out, resume, ctrl_c)

    with monkeypatch.context() as m:
        m.setattr(train.trainer, "train", interrupted_train)
        with pytest.raises(TrainingInterrupted):
            compare_recipes(spec, out)
    record = open_run(cell).record
    assert record.status == "interrupted" and record.progress.step == 1
    calls = Calls(monkeypatch, fail=False)
    compare_recipes(spec, out)
    assert calls.trained == [(cell, True)]
    assert set(calls.evaluated) == {str(cell)}
    assert open_run(cell).record.status == "finished" and open_run(cell).record.progress.step == 2
    assert leaderboard_rows(out) == before


# --------------------------------------------------------------------------------------------------- wise sweep


@pytest.fixture(scope="module")
def tuned(tiny, tmp_path_factory) -> Run:
    from train.trainer import train

    cfg = TrainConfig(data=str(tiny), max_steps=3, batch_size=16, loss=LossConfig(kind="ce"))
    return train(cfg, tmp_path_factory.mktemp("sweep-run") / "run")


@pytest.fixture(scope="module")
def swept(tuned, set_specs, tmp_path_factory):
    sets = resolve_eval_sets([set_specs["id"], set_specs["ood"]], tuned.classifier.classes)
    out = tmp_path_factory.mktemp("sweep") / "wise"
    written, sweep = wise_sweep(tuned, [0.0, 0.5, 1.0], out, sets, batch_size=64)
    return written, sweep, sets


def accuracy(runner: TorchRunner, sets: list[EvalSet], val: EvalSet) -> tuple[float, dict[str, float]]:
    val_report, _ = evaluate(runner, [val], batch_size=64)
    report, _ = evaluate(runner, sets, batch_size=64)
    return val_report.summary.id_top1, {name: d.top1 for name, d in report.datasets.items()}


def test_the_sweep_writes_the_validation_choice_as_a_run(swept, tuned):
    written, sweep, _ = swept
    assert [r["alpha"] for r in sweep.rows] == [0.0, 0.5, 1.0]
    best = max(r["val_top1"] for r in sweep.rows)
    assert sweep.chosen == min(r["alpha"] for r in sweep.rows if r["val_top1"] == best)  # ties: the smaller alpha
    record = open_run(written.path).record
    assert record.wise.alpha == sweep.chosen and record.wise.base == "zero-shot"
    assert record.wise.val_top1 == best and record.best == tuned.record.best  # best: the fine-tuned checkpoint
    # Its weights: the interpolation at the chosen alpha of the zero-shot and the fine-tuned weights.
    start, tuned_weights = zero_shot_state(tuned), load_file(str(tuned.best_weights))
    weights = load_file(str(written.path / "best.safetensors"))
    assert set(weights) == set(tuned_weights)
    for key, tensor in tuned_weights.items():
        if tensor.is_floating_point():
            expected = (1 - sweep.chosen) * start[key] + sweep.chosen * tensor
            torch.testing.assert_close(weights[key], expected, atol=1e-6, rtol=1e-6, msg=key)
        else:
            assert torch.equal(weights[key], tensor), key
    expected_model = wise_classifier(tuned, sweep.chosen, start).state_dict()
    assert all(torch.equal(weights[k], expected_model[k]) for k in weights)


def test_the_sweep_ends_are_the_zero_shot_and_the_fine_tuned_model(swept, tuned):
    _, sweep, sets = swept
    val = EvalSet(resolve_train_data(tuned.record.data.source).val, "id")
    meta = tuned.classifier
    teacher, _ = zero_shot_classifier(meta.model, meta.pretrained, meta.classes, meta.prompts, meta.templates)
    zero_shot = TorchRunner(teacher, ArtifactSpec(classifier=meta), "zero-shot")
    at0, at1 = sweep.rows[0], sweep.rows[-1]
    assert (at0["val_top1"], at0["top1"]) == accuracy(zero_shot, sets, val)
    assert (at1["val_top1"], at1["top1"]) == accuracy(TorchRunner.from_run(tuned), sets, val)
    for row in sweep.rows:
        assert set(row["top1"]) == {"idtest", "sketch"}
        assert row["id_top1"] == row["top1"]["idtest"] and row["ood_top1_mean"] == row["top1"]["sketch"]


def test_the_sweep_files(swept):
    written, sweep, _ = swept
    data = json.loads((written.path / "wise-sweep.json").read_text())
    assert data["chosen_alpha"] == sweep.chosen and data["rows"] == sweep.rows and "smaller alpha" in data["rule"]
    text = (written.path / "wise-sweep.md").read_text()
    assert f"Chosen alpha {sweep.chosen:g}" in text
    assert len([line for line in text.splitlines() if line.startswith("| ")]) == 1 + 3  # header + three alphas
    assert (written.path / "wise-sweep.png").read_bytes().startswith(b"\x89PNG")


def test_a_sweep_without_sets_still_draws_its_picture(tuned, tmp_path):
    """A run trained on a folder, swept with no --data (issue 24: wise said it wrote wise-sweep.png and wrote none):
    no ID/OOD plane to place it on, so validation top-1 along alpha, the chosen alpha circled."""
    written, sweep = wise_sweep(tuned, [0.0, 1.0], tmp_path / "wise", [], batch_size=64)
    assert all(r["id_top1"] is None and r["ood_top1_mean"] is None for r in sweep.rows)
    picture = written.path / "wise-sweep.png"
    assert picture.read_bytes().startswith(b"\x89PNG")
    from PIL import Image

    with Image.open(picture) as image:
        assert image.size[0] > 300 and len(np.unique(np.asarray(image.convert("L")))) > 10  # a drawing, not blank


def test_the_sweep_refuses_an_out_that_holds_a_run(swept, tuned):
    written, _, sets = swept
    before = sorted(p.name for p in written.path.iterdir())
    with pytest.raises(UserError, match="already holds a run"):
        wise_sweep(tuned, [0.0, 1.0], written.path, sets)
    assert sorted(p.name for p in written.path.iterdir()) == before


@pytest.mark.parametrize("content", ['{"sets": ["a"], "alphas": {"0.5": {"val_top1": 0.5', "[]", '{"sets": "a"}'])
def test_a_torn_or_foreign_score_file_is_measured_again_with_a_warning(tmp_path, caplog, content):
    from workflows.compare import _stored

    file = tmp_path / COMPARE_SCORES
    file.write_text(content)
    with caplog.at_level("WARNING"):
        assert _stored(file, ["a"]) == {}
    assert "measured again" in caplog.text


def test_scores_of_other_sets_are_not_reused(tmp_path):
    from serve.leaderboard import AlphaScore, SetScore
    from workflows.compare import _store, _stored

    file = tmp_path / COMPARE_SCORES
    scores = {0.5: AlphaScore(0.9, {"a": SetScore("id", 0.8, None, 5, "+A==")})}
    _store(file, ["a"], scores)
    assert _stored(file, ["a"]) == scores and _stored(file, ["a", "b"]) == {}
    # Scores stored before per-image results were kept (no `correct`) are measured again: the intervals need them.
    _store(file, ["a"], {0.5: AlphaScore(0.9, {"a": SetScore("id", 0.8, None)})})
    assert _stored(file, ["a"]) == {}


def test_a_folder_of_another_comparison_is_refused_before_training(compared, spec, tmp_path, monkeypatch):
    """Cells trained with other settings would mix silently into this comparison's leaderboard."""
    out = copy_of(compared, tmp_path)
    Calls(monkeypatch, fail=True)
    other = dataclasses.replace(spec, train_options={**spec.train_options, "max_steps": 3})
    with pytest.raises(UserError, match=r"ce-s0 was trained with other settings \(max_steps\): use another --out"):
        compare_recipes(other, out)
