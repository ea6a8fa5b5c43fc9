"""Adding a dataset suite is one module (docs/DESIGN.md, "Add a suite", shows this file's suite): registered from this
test alone, `datasets` lists it, `train --data NAME:ROOT` trains on its ID data and `eval --data NAME:ROOT` scores its
ID and OOD sets, with nothing else in the project naming it."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from cli import app
from data.labeled import IMAGE_EXTENSIONS, LabeledImages, Sample
from data.suites.base import Suite, SuiteData, SuiteInfo, SuiteSet, require
from data.suites.registry import suites

pytestmark = pytest.mark.slow

# ---- the suite: what a contributor writes in data/suites/<name>.py ----------------------------------------------

CLASSES = ("circle", "square", "triangle", "star", "cross", "hexagon")
INFO = SuiteInfo(
    name="shapes-by-light",
    title="Shapes by light (a made-up suite)",
    published="https://example.org/shapes-by-light",
    layout="ROOT/day/<class>/*.png and ROOT/night/<class>/*.png",
    roles="day/ is ID (trained on, a tenth held out for validation); night/ is OOD",
    classes=len(CLASSES),
)


def _folder(root: Path, part: str) -> LabeledImages:
    require(root / part, f"folder {part}/", INFO)
    samples = [
        Sample(path, label, part)
        for label, name in enumerate(CLASSES)
        for path in sorted((root / part / name).glob("*"))
        if path.suffix.lower() in IMAGE_EXTENSIONS
    ]
    return LabeledImages(part, list(CLASSES), samples)


def read(root: Path, variant: str | None) -> SuiteData:
    return SuiteData(
        train=_folder(root, "day"),
        val=None,  # a fraction of the training data is held out
        eval_sets=[SuiteSet(_folder(root, "night"), "ood")],
        classnames={c: c for c in CLASSES},
    )


SUITES = [Suite(INFO, read)]

# ---- its registration: data/suites/ finds the module by itself; a test adds it to the registry ------------------


@pytest.fixture
def registered(monkeypatch):
    for suite in SUITES:
        monkeypatch.setitem(suites(), suite.info.name, suite)


@pytest.fixture
def root(tmp_path, benchmark_root) -> Path:
    """day/ from the built-in photos, night/ from its sketches (6 images a class each)."""
    for part, split in (("day", "train"), ("night", "ood_sketch")):
        lines = (benchmark_root / f"{split}.csv").read_text().splitlines()[1:]
        counts: dict[str, int] = {}
        for line in lines:
            path, label = line.split(",")[:2]
            if counts.setdefault(label, 0) < 6:
                counts[label] += 1
                (tmp_path / part / label).mkdir(parents=True, exist_ok=True)
                shutil.copy(benchmark_root / path, tmp_path / part / label / Path(path).name)
    return tmp_path


def test_a_registered_suite_is_listed_trained_on_and_evaluated(registered, root, tmp_path):
    listed = CliRunner().invoke(app, ["datasets"])
    assert listed.exit_code == 0 and "shapes-by-light" in listed.output

    run = tmp_path / "run"
    trained = CliRunner().invoke(
        app, ["train", "--loss", "ce", "--data", f"shapes-by-light:{root}", "--max-steps", "2", "--out", str(run)]
    )
    assert trained.exit_code == 0, trained.output
    record = json.loads((run / "run.json").read_text())
    assert record["data"]["n_train"] + record["data"]["n_val"] == 36

    out = tmp_path / "report.json"
    evaluated = CliRunner().invoke(
        app, ["eval", "--checkpoint", str(run), "--data", f"shapes-by-light:{root}", "--out", str(out)]
    )
    assert evaluated.exit_code == 0, evaluated.output
    report = json.loads(out.read_text())
    assert {name: (d["role"], d["n"]) for name, d in report["datasets"].items()} == {"night": ("ood", 36)}

    missing = CliRunner().invoke(app, ["eval", "--checkpoint", str(run), "--data", f"shapes-by-light:{tmp_path}/x"])
    assert missing.exit_code == 2 and "Shapes by light (a made-up suite): no such folder" in missing.output
