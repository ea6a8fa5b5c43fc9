"""Evaluation sets must not hold images the model was trained on, as the run recorded them when training started
(common.run.DATA_FILES), whatever the data on disk says today. The sequence that used to pass unnoticed: PACS
trained on before its split files were in place (so on every image of the source domains), then evaluated once
they were (its ID test split is images the model trained on)."""

from __future__ import annotations

import dataclasses
import shutil

import pytest
from typer.testing import CliRunner

from cli import app
from common.errors import CheckpointError
from common.run import DATA_FILES, open_run, read_data_files, write_run_record
from tests.cli.conftest import process_logging
from tests.suite_layouts import pacs

pytestmark = pytest.mark.slow  # a one-step training on a miniature PACS, then evaluations


def cli(args):
    with process_logging():
        return CliRunner().invoke(app, [str(a) for a in args])


@pytest.fixture(scope="module")
def trained_before_splits(tmp_path_factory):
    """A miniature PACS, a run trained on it while its split files were away, and the split files put back."""
    tmp = tmp_path_factory.mktemp("pacs-overlap")
    root = pacs.make(tmp / "PACS")
    (tmp / "splits-away").mkdir()
    for split_file in root.glob("*_kfold.txt"):
        split_file.rename(tmp / "splits-away" / split_file.name)
    result = cli(["train", "--data", f"pacs/sketch:{root}", "--loss", "ce", "--max-steps", "1", "--out", tmp / "run"])
    assert result.exit_code == 0, result.output
    for split_file in (tmp / "splits-away").iterdir():
        split_file.rename(root / split_file.name)
    return root, tmp / "run"


def test_the_run_records_what_it_was_trained_and_validated_on(trained_before_splits):
    root, run = trained_before_splits
    files = read_data_files(open_run(run))
    assert files is not None and set(files) == {"train", "val"}
    images = {str(p.resolve()) for p in (root / "kfold").rglob("*.jpg") if p.parts[-3] != "sketch"}
    assert files["train"] | files["val"] == images and not files["train"] & files["val"]  # every source image


def test_evaluating_on_images_trained_on_is_refused_though_the_data_on_disk_now_says_otherwise(trained_before_splits):
    root, run = trained_before_splits
    result = cli(["eval", "--checkpoint", run, "--data", f"pacs/sketch:{root}"])
    assert result.exit_code == 2
    trained = read_data_files(open_run(run))["train"]
    id_test = [p for p in (root / "kfold").rglob("pic_002.jpg") if p.parts[-3] != "sketch"]  # the test split
    in_train = sum(str(p.resolve()) in trained for p in id_test)
    assert in_train > 0  # what the check must find
    lines = [line for line in result.stderr.splitlines() if "partial copy" not in line]
    assert len(lines) == 1, result.stderr
    (line,) = lines
    expected = f"{in_train} of the {len(id_test)} images of 'pacs-id-test' were in the training data of {run}"
    assert line.startswith("error: ") and expected in line


def test_a_plain_folder_is_checked_against_the_record_too(trained_before_splits):
    root, run = trained_before_splits
    folder = root / "kfold" / "photo"
    trained = read_data_files(open_run(run))["train"]
    expected = sum(str(p.resolve()) in trained for p in folder.rglob("*.jpg"))
    result = cli(["eval", "--checkpoint", run, "--data", folder, "--allow-overlap", "--out", run.parent / "r.json"])
    assert result.exit_code == 0, result.output
    assert f"{expected} of the {len(list(folder.rglob('*.jpg')))} images of 'photo' were in the training data" in (
        result.stderr
    )


def test_a_run_made_before_the_record_is_checked_as_before_with_a_note(trained_before_splits, tmp_path):
    root, run = trained_before_splits
    old = tmp_path / "old-run"
    shutil.copytree(run, old)
    (old / DATA_FILES).unlink()
    record = open_run(old).record
    write_run_record(old, dataclasses.replace(record, data=dataclasses.replace(record.data, files_sha256=None)))
    result = cli(["eval", "--checkpoint", old, "--data", f"pacs/sketch:{root}", "--out", tmp_path / "r.json"])
    # today's data: the split files are back, so the ID test no longer looks trained on (the record would say so)
    assert result.exit_code == 0, result.output
    assert f"{old} was trained before runs recorded their files ({DATA_FILES})" in result.stderr


def test_a_changed_record_is_refused(trained_before_splits, tmp_path):
    _, run = trained_before_splits
    copy = tmp_path / "run"
    shutil.copytree(run, copy)
    (copy / DATA_FILES).write_bytes(b"not gzip")
    with pytest.raises(CheckpointError, match="changed since training"):
        read_data_files(open_run(copy))


def test_a_wise_ft_run_carries_the_record_of_the_run_it_came_from(trained_before_splits, tmp_path):
    root, run = trained_before_splits
    wise = tmp_path / "wise"
    assert cli(["wise", "--checkpoint", run, "--alpha", "0.5", "--out", wise]).exit_code == 0
    assert (wise / DATA_FILES).read_bytes() == (run / DATA_FILES).read_bytes()
    result = cli(["eval", "--checkpoint", wise, "--data", f"pacs/sketch:{root}"])
    assert result.exit_code == 2 and "images of 'pacs-id-test' were in the training data of" in result.stderr
