"""Backends side by side: serve.metrics.gate, serve.side_by_side.side_by_side_rows and evaluate_side_by_side."""

from __future__ import annotations

import csv
import dataclasses
import itertools
import json
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import torch

from common.artifact import ArtifactSpec, ClassifierMeta
from data.labeled import DataError
from data.loading import read_batch
from data.specs import EvalSet, builtin_classnames, resolve_eval_sets
from data.transforms import eval_transform
from serve.evaluate import ModelOutputError, evaluate
from serve.metrics import agreement, gate
from serve.report import Agreement, DatasetScores, Gate, Report, Summary, Throughput
from serve.runner import Runner
from serve.side_by_side import (
    evaluate_side_by_side,
    recommended,
    side_by_side_rows,
    summary_path,
    write_reports,
    write_summary,
)

PREPROCESS = {
    "size": 64,
    "mean": [0.5, 0.5, 0.5],
    "std": [0.5, 0.5, 0.5],
    "interpolation": "bicubic",
    "resize_mode": "shortest",
}

# ---------------------------------------------------------------------------------------------------------- gate


def test_gate_without_datasets_passes_with_worst_drop_zero() -> None:
    assert gate({}, 1.0) == Gate(max_drop_pp=1.0, worst_drop_pp=0.0, passed=True)


def test_gate_takes_the_worst_drop_whatever_the_order() -> None:
    drops = {"id_test": 0.25, "ood_sketch": 3.0, "ood_corrupt": -2.0, "ood_background": 1.0}
    results = []
    for order in itertools.permutations(drops):
        results.append(gate({name: Agreement(None, None, drops[name]) for name in order}, 2.0))
    assert all(r == Gate(max_drop_pp=2.0, worst_drop_pp=3.0, passed=False) for r in results)


def test_gate_boundary() -> None:
    assert gate({"s": Agreement(None, None, 1.5)}, 1.5).passed  # a drop equal to the limit passes
    assert not gate({"s": Agreement(None, None, 1.5)}, math.nextafter(1.5, 0.0)).passed
    assert not gate({"s": Agreement(None, None, 1.5 + 1e-9)}, 1.5).passed
    assert gate({"s": Agreement(None, None, -5.0)}, 0.0).passed  # getting better never fails


def test_gate_drop_of_exactly_the_limit_computed_from_logits_passes() -> None:
    labels = np.zeros(100, dtype=np.int64)
    reference = np.zeros((100, 2), dtype=np.float32)
    reference[:, 1] = 1.0  # predicts class 1 ...
    reference[:4] = [1.0, 0.0]  # ... except on the first 4 images, which it gets right: 4 %
    other = reference.copy()
    other[3] = [0.0, 1.0]  # one of those 4 now wrong: 3 %, a drop of exactly 1 image in 100 = 1 pp
    assert gate({"s": agreement(other, reference, labels)}, 1.0).passed


def test_gate_with_an_empty_set_does_not_depend_on_the_order() -> None:
    empty = agreement(np.zeros((0, 3)), np.zeros((0, 3)), np.zeros(0, dtype=np.int64))
    worse = Agreement(None, None, 5.0)
    assert gate({"empty": empty, "other": worse}, 10.0) == gate({"other": worse, "empty": empty}, 10.0)


# ----------------------------------------------------------------------------------------------- side_by_side_rows


def hand_report(
    top1: dict[str, float],
    ood_mean: float | None,
    agreement: dict[str, Agreement] | None = None,
    speed: float = 100.0,
    passed: bool | None = None,
) -> Report:
    datasets = {
        name: DatasetScores(
            role="ood" if name.startswith("ood") else "id", n=0, skipped=0, top1=t, top5=None, worst_group_top1=None
        )
        for name, t in top1.items()
    }
    return Report(
        backend="fake",
        artifact="fake",
        precision="fp32",
        classes=[],
        datasets=datasets,
        summary=Summary(id_top1=None, ood_top1_mean=ood_mean, worst_group_top1_min=None),
        throughput=Throughput(
            images_per_s=0.0, model_images_per_s=speed, batch_size=1, latency_ms_p50=0.0, latency_ms_p99=0.0
        ),
        agreement=agreement,
        gate=None if passed is None else Gate(max_drop_pp=1.0, worst_drop_pp=0.5, passed=passed),
    )


def test_side_by_side_rows_follow_the_first_reports_set_order() -> None:
    reports = {
        "torch": hand_report({"id_test": 0.5, "ood_sketch": 0.25}, 0.25),
        # the same sets in another order: values must land under their own set's column
        "proreg (onnxruntime fp16)": hand_report(
            {"ood_sketch": 0.125, "id_test": 0.75},
            0.125,
            {
                "ood_sketch": Agreement(top1_agreement=0.875, max_abs_logit_diff=None, top1_drop_pp=12.5),
                "id_test": Agreement(top1_agreement=0.5, max_abs_logit_diff=None, top1_drop_pp=-25.0),
            },
        ),
    }
    header, rows = side_by_side_rows(reports)
    assert header == [
        *("model / backend", "id_test", "ood_sketch", "OOD mean", "worst drop pp", "min agree %", "images/s")
    ]
    assert rows[0] == ["torch", "50.0", "25.0", "25.0", "-", "-", "100"]  # no agreement: "-" columns
    assert rows[1] == ["proreg (onnxruntime fp16)", "75.0", "12.5", "12.5", "+12.50", "50.0", "100"]


def test_the_fastest_row_that_passed_its_gate_is_recommended_and_marked() -> None:
    reports = {
        "torch": hand_report({"id_test": 0.5}, None, speed=900.0),  # fastest, but the ungated reference
        "a (onnxruntime fp32)": hand_report({"id_test": 0.5}, None, speed=100.0, passed=True),
        "a (openvino bf16)": hand_report({"id_test": 0.5}, None, speed=300.0, passed=True),
        "a (onnxruntime int8-cpu)": hand_report({"id_test": 0.4}, None, speed=500.0, passed=False),
    }
    assert recommended(reports) == "a (openvino bf16)"
    _, rows = side_by_side_rows(reports)
    assert [row[0] for row in rows if row[0].endswith(" *")] == ["a (openvino bf16) *"]
    reports["a (openvino bf16)"].gate.passed = False
    reports["a (onnxruntime fp32)"].gate.passed = False
    assert recommended(reports) is None


def test_the_side_by_side_summary_holds_the_table_and_the_recommendation(tmp_path: Path) -> None:
    """bench's (and the pipeline's) <stem>-summary.json/.md: every row with its report file, gate and speed, the
    recommended row; the .md is the printed table, parsed as one by a CommonMark parser with tables on."""
    from markdown_it import MarkdownIt

    reports = {
        "torch": hand_report({"id_test": 0.5, "ood_a": 0.25}, 0.25, speed=900.0),
        "a (onnxruntime fp32)": hand_report({"id_test": 0.5, "ood_a": 0.25}, 0.25, speed=100.0, passed=True),
        "a (onnxruntime int8)": hand_report({"id_test": 0.25, "ood_a": 0.25}, 0.25, speed=500.0, passed=False),
    }
    assert summary_path(tmp_path / "bench.json") == tmp_path / "bench-summary.json"
    paths = {name: tmp_path / f"{i}.json" for i, name in enumerate(reports)}
    write_summary(reports, paths, tmp_path / "s.json")
    summary = json.loads((tmp_path / "s.json").read_text())
    assert summary["recommended"] == "a (onnxruntime fp32)"
    assert list(summary["rows"]) == list(reports)
    int8 = summary["rows"]["a (onnxruntime int8)"]
    assert int8["report"] == "2.json" and int8["gate"] == {"passed": False, "max_drop_pp": 1.0}
    assert int8["top1"] == {"id_test": 0.25, "ood_a": 0.25} and int8["model_images_per_s"] == 500.0
    assert summary["rows"]["torch"]["gate"] is None
    md = (tmp_path / "s.md").read_text()
    header, rows = side_by_side_rows(reports)
    tokens = MarkdownIt("commonmark").enable("table").parse(md)
    cells = [tokens[i + 1].content for i, t in enumerate(tokens) if t.type in ("th_open", "td_open")]
    assert cells == [*header, *(c for row in rows for c in row)]
    assert "Recommended for this machine: a (onnxruntime fp32)" in md
    reports["a (onnxruntime fp32)"].gate.passed = False
    write_summary(reports, paths, tmp_path / "s.json")
    assert json.loads((tmp_path / "s.json").read_text())["recommended"] is None
    assert "No artifact passed its gate" in (tmp_path / "s.md").read_text()


def test_side_by_side_rows_with_empty_agreement_show_dashes() -> None:
    _, rows = side_by_side_rows({"zero-shot": hand_report({"ood_sketch": 1.0}, 1.0, agreement={})})
    assert rows == [["zero-shot", "100.0", "100.0", "-", "-", "100"]]


def test_side_by_side_rows_without_an_ood_set() -> None:
    _, rows = side_by_side_rows({"torch": hand_report({"id_test": 0.5}, None)})
    assert rows[0][:2] == ["torch", "50.0"]


# ----------------------------------------------------------------------------------------------- evaluate_side_by_side


class FakeRunner(Runner):
    """Logits from the mean preprocessed pixel per channel through a fixed linear map; optionally two classes'
    logits swapped. Counts the images it is fed."""

    backend = "fake"

    def __init__(self, artifact: str, spec: ArtifactSpec, weight: np.ndarray, swap: tuple[int, int] | None = None):
        self.artifact, self.spec, self.weight, self.swap = artifact, spec, weight, swap
        self.images_seen = 0

    def _infer(self, images: torch.Tensor) -> np.ndarray:
        self.images_seen += len(images)
        logits = fake_logits(images, self.weight)
        if self.swap:
            i, j = self.swap
            logits[:, [i, j]] = logits[:, [j, i]]
        return logits


def fake_logits(images: torch.Tensor, weight: np.ndarray) -> np.ndarray:
    means = images.double().mean(dim=(2, 3)).numpy()  # [N, 3]
    return (means @ weight).astype(np.float32)


@pytest.fixture
def classes() -> list[str]:
    return list(builtin_classnames())


@pytest.fixture
def spec(classes) -> ArtifactSpec:
    meta = ClassifierMeta(
        model="fake",
        pretrained=None,
        model_config={},
        preprocess=dict(PREPROCESS),
        classes=classes,
        prompts=classes,
        templates=["a photo of a {}"],
        logit_scale=1.0,
    )
    return ArtifactSpec(classifier=meta)


@pytest.fixture
def eval_sets(tiny_folder: Path, tmp_path: Path, classes: list[str]) -> list[EvalSet]:
    """An ID manifest (3 images a class, in two groups) and the whole tiny folder as OOD."""
    manifest = tmp_path / "held.csv"
    with manifest.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["path", "label", "group"])
        for label in sorted(p.name for p in tiny_folder.iterdir()):
            for k, image in enumerate(sorted((tiny_folder / label).iterdir())[:3]):
                writer.writerow([image, label, "even" if k % 2 == 0 else "odd"])
    sets = resolve_eval_sets([f"id:{manifest}", f"ood:{tiny_folder}"], classes)
    assert [(ev.data.name, ev.role, len(ev.data.samples)) for ev in sets] == [("held", "id", 18), ("tiny", "ood", 60)]
    return sets


def expected_from_reference(sets: list[EvalSet], weight: np.ndarray) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Per set: the reference's logits and the labels, computed here from the images (not by the code under test)."""
    out = {}
    for ev in sets:
        batch = read_batch(ev.data, eval_transform(PREPROCESS))
        assert batch.skipped == 0
        out[ev.data.name] = (fake_logits(batch.images, weight), batch.labels.numpy())
    return out


def swap_drop(logits: np.ndarray, labels: np.ndarray, i: int, j: int) -> float:
    """Top-1 drop in pp when classes i and j trade logits: predictions i and j trade places."""
    pred = logits.argmax(axis=1)
    swapped = np.where(pred == i, j, np.where(pred == j, i, pred))
    return 100.0 * (np.mean(pred == labels) - np.mean(swapped == labels))


@dataclass
class Compared:
    """evaluate_side_by_side over five fake rows, with what the test expects computed from the reference's logits."""

    reports: dict[str, Report]
    runners: dict[str, FakeRunner]
    expected: dict[str, tuple[np.ndarray, np.ndarray]]  # set -> (reference logits, labels)
    pair: tuple[int, int]  # the classes the fp16 row swaps
    drops: dict[str, float]  # set -> the drop that swap costs
    heard: list[tuple[str, int, int]]
    out: Path


def compare_five_rows(tmp_path: Path, spec: ArtifactSpec, eval_sets: list[EvalSet]) -> Compared:
    weight = np.random.default_rng(0).normal(size=(3, len(spec.classes)))
    expected = expected_from_reference(eval_sets, weight)
    # The pair of classes whose swap costs the reference the most accuracy, worst over the sets.
    pairs = list(itertools.combinations(range(len(spec.classes)), 2))
    drops = {p: {name: swap_drop(lg, y, *p) for name, (lg, y) in expected.items()} for p in pairs}
    pair = max(pairs, key=lambda p: max(drops[p].values()))
    worst = max(drops[pair].values())
    assert worst > 0  # the swap must cost something for the gate to fail
    runners = {
        "zero-shot": FakeRunner("builtin", spec, np.random.default_rng(1).normal(size=weight.shape)),
        "proreg (torch)": FakeRunner("runs/fake", spec, weight),
        "proreg (onnxruntime fp32)": FakeRunner("model.onnx", spec, weight),
        "proreg (onnxruntime fp16)": FakeRunner("model.fp16.onnx", spec, weight, swap=pair),
        "proreg (int8, ungated)": FakeRunner("model.int8.onnx", spec, weight),
    }
    limits = {"proreg (onnxruntime fp32)": 0.0, "proreg (onnxruntime fp16)": worst / 2, "proreg (int8, ungated)": None}
    heard: list[tuple[str, int, int]] = []
    out = tmp_path / "out"
    out.mkdir()
    reports = evaluate_side_by_side(
        runners, eval_sets, "proreg (torch)", limits, batch_size=16, progress=lambda *a: heard.append(a)
    )
    write_reports(reports, out / "report.json")
    assert list(reports) == list(runners)
    return Compared(reports, runners, expected, pair, drops[pair], heard, out)


def test_side_by_side_reference_baseline_and_identical_rows(tmp_path, spec, eval_sets) -> None:
    c = compare_five_rows(tmp_path, spec, eval_sets)
    n_images = sum(len(ev.data.samples) for ev in eval_sets)
    assert c.runners["proreg (torch)"].images_seen == n_images  # the reference is evaluated once
    # The reference and the baseline are not compared with anything.
    for name in ("proreg (torch)", "zero-shot"):
        report = c.reports[name]
        assert (report.reference, report.agreement, report.gate) == (None, None, None)
    ref = c.reports["proreg (torch)"]
    for name, (logits, labels) in c.expected.items():
        assert ref.datasets[name].top1 == pytest.approx(np.mean(logits.argmax(axis=1) == labels))
        assert ref.datasets[name].n == len(labels)
    assert set(ref.datasets["held"].groups) == {"even", "odd"}
    same = c.reports["proreg (onnxruntime fp32)"]
    assert same.reference == "runs/fake"
    for a in same.agreement.values():
        assert a == Agreement(
            top1_agreement=1.0, max_abs_logit_diff=0.0, top1_drop_pp=0.0, top1_drop_interval_pp=[0.0, 0.0]
        )
    assert same.gate == Gate(max_drop_pp=0.0, worst_drop_pp=0.0, passed=True, worst_drop_interval_pp=[0.0, 0.0])
    ungated = c.reports["proreg (int8, ungated)"]
    assert ungated.agreement and ungated.gate is None


def test_side_by_side_measures_a_swapped_row_against_the_reference(tmp_path, spec, eval_sets) -> None:
    c = compare_five_rows(tmp_path, spec, eval_sets)
    swapped = c.reports["proreg (onnxruntime fp16)"]
    i, j = c.pair
    for name, (logits, _) in c.expected.items():
        a = swapped.agreement[name]
        pred = logits.argmax(axis=1)
        assert a.top1_drop_pp == pytest.approx(c.drops[name], abs=1e-9)
        assert a.top1_agreement == pytest.approx(np.mean((pred != i) & (pred != j)))
        assert a.max_abs_logit_diff == pytest.approx(np.abs(logits[:, i] - logits[:, j]).max(), rel=1e-5)
    assert swapped.gate.worst_drop_pp == pytest.approx(max(c.drops.values()), abs=1e-9)
    assert swapped.gate.passed is False


def test_side_by_side_writes_a_report_per_row_and_reports_progress(tmp_path, spec, eval_sets) -> None:
    c = compare_five_rows(tmp_path, spec, eval_sets)
    slugs = ["zero-shot", "proreg-torch", "proreg-onnxruntime-fp32", "proreg-onnxruntime-fp16", "proreg-int8-ungated"]
    assert sorted(p.name for p in c.out.iterdir()) == sorted(
        [f"report-{s}{x}" for s in slugs for x in (".json", ".md", ".png", ".sets.png")]
        + ["report-summary.json", "report-summary.md"]
    )
    for slug, name in zip(slugs, c.runners, strict=True):
        assert json.loads((c.out / f"report-{slug}.json").read_text()) == c.reports[name].to_dict()
    assert "Gate FAILED" in (c.out / "report-proreg-onnxruntime-fp16.md").read_text()
    # Progress names the row and the set, and reaches the end of every set for every row.
    finished = {label for label, done, total in c.heard if done == total}
    assert finished == {f"{row}: {ev.data.name}" for row in c.runners for ev in eval_sets}


def test_side_by_side_with_an_empty_eval_set(tmp_path: Path, spec: ArtifactSpec, eval_sets: list[EvalSet]) -> None:
    """An eval set with no images (all removed) is evaluated as n=0 with no accuracies (None, not NaN); nothing
    crashes and the report stays strict JSON."""
    eval_sets[0].data.samples = []
    weight = np.random.default_rng(0).normal(size=(3, len(spec.classes)))
    runners = {"ref": FakeRunner("ref", spec, weight), "same": FakeRunner("same", spec, weight)}

    reports = evaluate_side_by_side(runners, eval_sets, "ref", {"same": 1.0})
    write_reports(reports, tmp_path / "report.json")

    same = reports["same"]
    empty = same.datasets["held"]
    assert empty.n == 0 and empty.skipped == 0
    assert empty.top1 is None and empty.top5 is None and empty.worst_group_top1 is None
    assert same.datasets["tiny"].n == 60
    assert same.agreement["tiny"].top1_drop_pp == 0.0
    assert same.agreement["held"] == Agreement(top1_agreement=None, max_abs_logit_diff=None, top1_drop_pp=None)
    assert same.gate == Gate(max_drop_pp=1.0, worst_drop_pp=0.0, passed=True, worst_drop_interval_pp=[0.0, 0.0])
    text = (tmp_path / "report-same.json").read_text()
    assert json.loads(text, parse_constant=lambda token: pytest.fail(f"not strict JSON: {token}")) == same.to_dict()
    assert (tmp_path / "report-same.json").is_file() and (tmp_path / "report-same.png").is_file()
    assert "| held | id | 0 | 0 | - | - | - |" in (tmp_path / "report-same.md").read_text()


def test_side_by_side_gate_with_an_empty_set_does_not_depend_on_set_order(
    tmp_path: Path, spec: ArtifactSpec, eval_sets: list[EvalSet]
) -> None:
    eval_sets[0].data.samples = []
    weight = np.random.default_rng(0).normal(size=(3, len(spec.classes)))
    verdicts = []
    for sets in [eval_sets, eval_sets[::-1]]:
        runners = {"ref": FakeRunner("ref", spec, weight), "same": FakeRunner("same", spec, weight)}
        verdicts.append(evaluate_side_by_side(runners, sets, "ref", {"same": 1.0})["same"].gate)
    assert verdicts[0].passed == verdicts[1].passed


class BrokenRunner(FakeRunner):
    """Gives NaN logits for the first image of every batch: a diverged model, or an overflow in FP16."""

    def _infer(self, images: torch.Tensor) -> np.ndarray:
        logits = super()._infer(images)
        logits[0] = np.nan
        return logits


def test_non_finite_logits_fail_the_evaluation_instead_of_a_garbage_report(tmp_path, spec, eval_sets) -> None:
    weight = np.random.default_rng(0).normal(size=(3, len(spec.classes)))
    broken = BrokenRunner("model.fp16.onnx", spec, weight)
    with pytest.raises(
        ModelOutputError, match=r"model\.fp16\.onnx gave non-finite logits for 2 of 18 images of 'held'"
    ):
        evaluate(broken, eval_sets, batch_size=16)  # 18 images in batches of 16: two batches, two NaN rows
    runners = {"ref": FakeRunner("ref", spec, weight), "b": broken}
    with pytest.raises(ModelOutputError):
        evaluate_side_by_side(runners, eval_sets, "ref", {"b": 1.0})


def test_a_set_of_only_unreadable_images_fails_instead_of_reporting_nothing(tmp_path, spec, eval_sets) -> None:
    for sample in eval_sets[0].data.samples:
        sample_copy = tmp_path / sample.path.name
        sample_copy.write_bytes(b"garbage")
    eval_sets[0].data.samples = [dataclasses.replace(s, path=tmp_path / s.path.name) for s in eval_sets[0].data.samples]
    runner = FakeRunner("ref", spec, np.ones((3, len(spec.classes))))
    with pytest.raises(DataError, match=r"none of 16 images tried in 'held' could be read"):
        evaluate(runner, eval_sets)
