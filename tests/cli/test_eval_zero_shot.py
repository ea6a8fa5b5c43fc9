"""`cli.py eval --checkpoint builtin` is the zero-shot built-in model made for the classes of the data it is given
(docs/DESIGN.md): a folder's class folders, a suite's classes and templates; `--zero-shot MODEL` any open_clip
model the same way."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from cli import app
from data.suites.pacs import CLASSES as PACS_CLASSES
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


@pytest.fixture(scope="module")
def builtin_onnx(tmp_path_factory) -> Path:
    """The built-in zero-shot model exported: fixed classes, in the built-in (not sorted) order."""
    from export.onnx_export import export_onnx
    from serve.torch_runner import TorchRunner

    zero_shot = TorchRunner.builtin_zero_shot("cpu")
    return export_onnx(zero_shot.model, zero_shot.spec, tmp_path_factory.mktemp("onnx") / "builtin.onnx")


def test_a_zero_shot_model_compared_with_a_fixed_one_takes_its_classes(tmp_path, tiny_folder, builtin_onnx):
    data = ["--data", f"ood:{tiny_folder}"]  # a folder: its classes sorted, unlike the built-in order
    one = _eval_with(["--onnx", str(builtin_onnx), *data, "--reference", "builtin"], tmp_path / "a.json")
    other = _eval_with(["--checkpoint", "builtin", *data, "--reference", str(builtin_onnx)], tmp_path / "b.json")
    for report in (one, other):
        assert all(a["top1_agreement"] == 1.0 for a in report["agreement"].values())  # the same model both ways


def test_weights_for_a_model_that_carries_its_own_are_refused(tmp_path):
    from tests.tiny_models import make_tiny_vit

    model = make_tiny_vit(tmp_path / "vit")
    args = ["eval", "--zero-shot", f"local-dir:{model}", "--pretrained", "openai", "--out", str(tmp_path / "r.json")]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 2 and "carries its own weights; --pretrained 'openai' would be ignored" in result.stderr
    assert not (tmp_path / "r.json").exists()
