"""`cli.py eval --checkpoint builtin` is the zero-shot built-in model made for the classes of the data it is given
(../shared/DESIGN.md): a folder's class folders, a suite's classes and templates; `--zero-shot MODEL` any open_clip
model the same way."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from cli import app
from common.suite_readers.pacs import CLASSES as PACS_CLASSES
from tests.suite_layouts import pacs


def _eval(*args: str) -> dict:
    """eval --checkpoint builtin with `args` (which name --out)."""
    out = args[args.index("--out") + 1]
    return _eval_with(["--checkpoint", "builtin", *[a for a in args if a not in ("--out", out)]], Path(out))


def _eval_with(args: list[str], out: Path) -> dict:
    result = CliRunner().invoke(app, ["eval", *args, "--out", str(out)])
    assert result.exit_code == 0, result.output
    return json.loads(out.read_text())


def test_a_folder_of_other_classes_is_evaluated_over_its_own_classes(tmp_path, tiny_folder):
    (tiny_folder / "hexagon").rename(tiny_folder / "pentagon")
    report = _eval("--data", f"ood:{tiny_folder}", "--out", str(tmp_path / "r.json"))
    assert sorted(report["classes"]) == sorted(p.name for p in tiny_folder.iterdir() if p.is_dir())
    ((name, scores),) = report["datasets"].items()
    assert scores["n"] == len(list(tiny_folder.rglob("*.png"))) and scores["role"] == "ood"


def test_a_suite_is_evaluated_over_its_classes_and_so_is_a_builtin_reference(tmp_path):
    root = pacs.make(tmp_path / "PACS")
    report = _eval("--data", f"pacs/sketch:{root}", "--reference", "builtin", "--out", str(tmp_path / "r.json"))
    assert report["classes"] == list(PACS_CLASSES)
    assert set(report["datasets"]) == {"pacs-id-test", "sketch"}
    assert all(a["top1_agreement"] == 1.0 for a in report["agreement"].values())  # the same model, made alike


def test_any_open_clip_model_can_be_evaluated_zero_shot_on_a_suite(tmp_path):
    from tests.tiny_models import make_tiny_vit

    root, model = pacs.make(tmp_path / "PACS"), make_tiny_vit(tmp_path / "vit")
    args = ["--zero-shot", f"local-dir:{model}", "--data", f"pacs/sketch:{root}"]
    report = _eval_with(args, tmp_path / "r.json")
    assert report["backend"] == "torch" and report["artifact"] == f"local-dir:{model}"
    assert report["classes"] == list(PACS_CLASSES)
    assert all(d["n"] > 0 for d in report["datasets"].values())
