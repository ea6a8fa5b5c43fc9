"""Evaluation through the batched preprocessing and held decoded images (serve.evaluate with keep_decoded, hold_decoded,
evaluate_against): the same logits as reading every file, with no file read again."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import data.loading
from data.labeled import load_dataset
from data.specs import EvalSet
from data.transforms import eval_transform
from serve.backends import open_runner
from serve.evaluate import evaluate, evaluate_against, hold_decoded


@pytest.fixture(scope="module")
def runner():
    return open_runner("builtin", device="cpu")


@pytest.fixture
def sets(tiny_folder, runner) -> list[EvalSet]:
    """The tiny folder at two sizes (64 px as stored, and 80 px, which the preprocessing resizes), one unreadable."""
    big = tiny_folder.parent / "big"
    shutil.copytree(tiny_folder, big)
    for path in sorted(big.rglob("*.png"))[::3]:
        from PIL import Image

        Image.open(path).resize((80, 96)).save(path)
    (sorted(big.rglob("*.png"))[1]).write_bytes(b"not an image")
    classes = runner.spec.classes
    return [EvalSet(load_dataset(tiny_folder, classes), "id"), EvalSet(load_dataset(big, classes), "ood")]


def file_reads(monkeypatch) -> list:
    """Counts the images read from disk (ImageDataset and the readability probe read through data.loading)."""
    reads: list = []
    original = data.loading.load_rgb

    def counting(path):
        reads.append(path)
        return original(path)

    monkeypatch.setattr(data.loading, "load_rgb", counting)
    return reads


def per_image_logits(runner, sets) -> dict[str, np.ndarray]:
    """The logits of open_clip's own per-image transform, batch by batch as before the split."""
    transform = eval_transform(runner.spec.classifier.preprocess)
    out = {}
    for ev in sets:
        dataset = data.loading.ImageDataset(ev.data, transform)
        batch = data.loading.collate_skipping([dataset[i] for i in range(len(dataset))])
        out[ev.data.name] = runner.infer(batch.images)
    return out


def test_held_images_give_the_logits_of_the_files_without_reading_them(runner, sets, monkeypatch):
    expected = per_image_logits(runner, sets)
    first, results = evaluate(runner, sets, batch_size=7, keep_decoded=True)
    for name, result in results.items():
        np.testing.assert_allclose(result.logits, expected[name], rtol=0, atol=1e-5)  # batch sizes differ
    assert first.datasets["big"].skipped == 1
    assert all(
        ev.decoded is not None and len(ev.decoded.images) == len(ev.data.samples) - (ev.role == "ood") for ev in sets
    )

    reads = file_reads(monkeypatch)
    second, again = evaluate(runner, sets, batch_size=7)
    assert second.datasets == first.datasets
    for name, result in again.items():
        assert np.array_equal(result.logits, results[name].logits)
    probes = [str(ev.data.samples[0].path) for ev in sets]  # check_some_readable's first try
    assert sorted(map(str, reads)) == sorted(probes)  # and nothing else, not even the unreadable file


def test_images_read_by_worker_processes_are_held_too(sets):
    """Workers=2 in a fresh interpreter: DataLoader workers forked from the long pytest process (torch's SIGCHLD
    handler, threads of runtimes loaded by other tests) crashed a later test that starts a subprocess."""
    folders = sorted({str(ev.data.samples[0].path.parent.parent) for ev in sets})
    code = (
        "import sys, numpy as np\n"
        "from data.labeled import load_dataset\n"
        "from data.specs import EvalSet\n"
        "from serve.backends import open_runner\n"
        "from serve.evaluate import evaluate\n"
        "runner = open_runner('builtin', device='cpu')\n"
        "sets = [EvalSet(load_dataset(f, runner.spec.classes), 'id') for f in sys.argv[1:]]\n"
        "first, a = evaluate(runner, sets, batch_size=7, num_workers=2, keep_decoded=True)\n"
        "held = sum(len(ev.decoded.images) + len(ev.decoded.unreadable) for ev in sets)\n"
        "assert held == sum(len(ev.data.samples) for ev in sets), held\n"
        "second, b = evaluate(runner, sets, batch_size=7, num_workers=2)\n"
        "assert second.datasets == first.datasets\n"
        "assert all(np.array_equal(a[n].logits, b[n].logits) for n in a)\n"
    )
    root = Path(__file__).resolve().parents[2]
    done = subprocess.run([sys.executable, "-c", code, *folders], cwd=root, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr


def test_sets_that_hold_their_images_read_them_once(runner, sets, monkeypatch):
    from_files, results = evaluate(runner, sets, batch_size=16)
    held = hold_decoded(sets, runner.spec.classifier.preprocess)
    reads = file_reads(monkeypatch)
    first, _ = evaluate(runner, held, batch_size=16)
    assert len(reads) == 2 + sum(len(ev.data.samples) for ev in sets)  # the readability probes, every file once
    reads.clear()
    from_memory, again = evaluate(runner, held, batch_size=16)
    assert first.datasets == from_memory.datasets == from_files.datasets
    assert all(np.array_equal(again[n].logits, results[n].logits) for n in results)
    assert len(reads) == 2  # the two readability probes
    assert all(ev.decoded is None for ev in sets)  # the caller's sets are left alone


def test_images_held_for_another_preprocessing_are_not_used(runner, sets, monkeypatch):
    other = dict(runner.spec.classifier.preprocess, size=32)
    held = hold_decoded(sets, other)
    reads = file_reads(monkeypatch)
    evaluate(runner, held, batch_size=16)
    assert len(reads) == 2 + sum(len(ev.data.samples) for ev in sets)


def test_a_reference_evaluation_reads_no_file_again_and_leaves_the_sets_alone(runner, sets, monkeypatch):
    reads = file_reads(monkeypatch)
    report = evaluate_against(runner, runner, sets, max_drop_pp=0.0, batch_size=16)
    assert report.gate.passed and all(a.top1_agreement == 1.0 for a in report.agreement.values())
    images = sum(len(ev.data.samples) for ev in sets)
    assert len(reads) == images + 2 + 2  # every file once, the readability probes twice
    assert all(ev.decoded is None for ev in sets)


def test_a_comparison_decodes_each_image_once_for_all_its_runners(runner, sets, monkeypatch):
    from serve.side_by_side import evaluate_side_by_side

    plain = {ev.data.name: evaluate(runner, [ev], batch_size=16)[0].datasets for ev in sets}
    reads = file_reads(monkeypatch)
    rows = {"ref": runner, "a": runner, "b": runner}
    reports = evaluate_side_by_side(rows, sets, "ref", {"a": 0.0, "b": 0.0}, batch_size=16)
    images = sum(len(ev.data.samples) for ev in sets)
    assert len(reads) == images + 2 * len(rows)  # every file once; the readability probe per set per runner
    for report in reports.values():
        assert report.datasets == {name: plain[name][name] for name in plain}
    assert reports["b"].gate.passed and all(ev.decoded is None for ev in sets)
