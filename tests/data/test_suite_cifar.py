"""CIFAR-10 and CIFAR-100 read from miniature copies of their distributed files (tests/suite_layouts/cifar.py), binary
and python versions: record paths decoded to the exact pixels written, labels and class names, roles, the
restricted unpickler refusing what a CIFAR file never holds, truncated and partial copies, and evaluation on records
(in this process, and through spawned DataLoader workers that imported nothing but the data layer)."""

from __future__ import annotations

import builtins
import logging
import pickle
import pickletools
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from typer.testing import CliRunner

import data.suites.cifar as cifar
from cli import app
from common.run import DataSource
from data.images import UnreadableImage, load_rgb, parse_record_path, record_path
from data.labeled import DataError, LabeledImages, Sample
from data.loading import ImageDataset
from data.specs import resolve_eval_sets, resolve_train_data
from data.suites.base import MissingSuiteData
from data.transforms import eval_transform
from serve.evaluate import evaluate
from tests.suite_layouts import cifar as layout

REPO = Path(__file__).resolve().parents[2]
VERSIONS = {  # spec suite, folder maker, record format, class names
    "cifar10-bin": ("cifar10", layout.make_cifar10_binary, "cifar10-bin", layout.CIFAR10_NAMES),
    "cifar10-py": ("cifar10", layout.make_cifar10_python, "cifar-pickle", layout.CIFAR10_NAMES),
    "cifar100-bin": ("cifar100", layout.make_cifar100_binary, "cifar100-bin", layout.CIFAR100_NAMES),
    "cifar100-py": ("cifar100", layout.make_cifar100_python, "cifar-pickle", layout.CIFAR100_NAMES),
}


def expected_image(path: Path) -> np.ndarray:
    """The [32, 32, 3] pixels the layout wrote for a record path."""
    container, _, index = parse_record_path(path) or (path, "", -1)
    return layout.record_pixels(container.name.removesuffix(".bin"), index).reshape(3, 32, 32).transpose(1, 2, 0)


def expected_label(path: Path, classes: int) -> int:
    container, _, index = parse_record_path(path) or (path, "", -1)
    return layout.record_label(container.name.removesuffix(".bin"), index, classes)


@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize("given", ["the extracted folder", "its parent"])
def test_test_batch_is_the_id_set_with_exact_pixels_labels_and_names(tmp_path, version, given):
    suite, make, record_format, names = VERSIONS[version]
    folder = make(tmp_path)
    root = folder if given == "the extracted folder" else tmp_path
    (test,) = resolve_eval_sets([f"{suite}:{root}"])
    assert test.role == "id" and test.data.name == f"{suite}-test" and test.data.classes == list(names)
    assert len(test.data.samples) == layout.RECORDS["test"]
    for i, sample in enumerate(test.data.samples):
        assert parse_record_path(sample.path) == (sample.path.parent, record_format, i)
        assert sample.path.parent.parent == folder and sample.group is None
        assert sample.label == expected_label(sample.path, len(names))
        pixels = np.asarray(load_rgb(sample.path))
        assert pixels.dtype == np.uint8 and np.array_equal(pixels, expected_image(sample.path))


def test_cifar10_training_batches_are_id_training_data_validation_held_out(tmp_path):
    layout.make_cifar10_binary(tmp_path)
    data = resolve_train_data(DataSource(f"cifar10:{tmp_path}", val_fraction=0.2))
    assert data.classes == list(layout.CIFAR10_NAMES) and data.prompts == list(layout.CIFAR10_NAMES)
    both = [*data.train.samples, *data.val.samples]
    assert len(both) == 5 * layout.RECORDS["train"] and len(data.val.samples) == 5  # one per class with 2 records
    assert {s.path.parent.name for s in both} == {f"data_batch_{i}.bin" for i in range(1, 6)}
    for s in both:
        assert s.label == expected_label(s.path, 10)
        assert np.array_equal(np.asarray(load_rgb(s.path)), expected_image(s.path))


@pytest.mark.parametrize("version", ["cifar100-bin", "cifar100-py"])
def test_cifar100_fine_labels_and_prompts_with_spaces(tmp_path, version):
    suite, make, _, names = VERSIONS[version]
    data = cifar.read_cifar(cifar.CIFAR100, make(tmp_path))
    assert list(data.classnames) == list(names)
    assert data.classnames["aquarium_fish"] == "aquarium fish" and data.classnames["maple_tree"] == "maple tree"
    assert data.val is None and [s.role for s in data.eval_sets] == ["id"]
    assert data.train is not None and len(data.train.samples) == layout.RECORDS["train"]
    assert [s.label for s in data.train.samples] == [expected_label(s.path, 100) for s in data.train.samples]
    assert cifar.CIFAR100.info.templates == ("a photo of a {}.",)


def test_the_binary_version_is_preferred_when_both_are_there(tmp_path):
    layout.make(tmp_path)
    for suite, record_format in (("cifar10", "cifar10-bin"), ("cifar100", "cifar100-bin")):
        (test,) = resolve_eval_sets([f"{suite}:{tmp_path}"])
        assert {parse_record_path(s.path)[1] for s in test.data.samples} == {record_format}  # type: ignore[index]


def test_record_paths_cannot_be_taken_for_image_files(tmp_path):
    folder = layout.make_cifar10_binary(tmp_path)
    path = record_path(folder / "test_batch.bin", "cifar10-bin", 3)
    assert path == folder / "test_batch.bin" / "cifar10-bin#3" and parse_record_path(path) is not None
    # A real file with a record's name lies in a folder: it is an image file, read as one.
    real = tmp_path / "pictures" / "cifar10-bin#3"
    real.parent.mkdir()
    Image.new("RGB", (5, 4), (10, 20, 30)).save(real, format="PNG")
    assert parse_record_path(real) is None and load_rgb(real).size == (5, 4)
    assert parse_record_path(folder / "test_batch.bin" / "other#3") is None  # an unknown format
    with pytest.raises(UnreadableImage, match=r"record 4 lies beyond the end of .*test_batch.bin"):
        load_rgb(record_path(folder / "test_batch.bin", "cifar10-bin", 4))
    with pytest.raises(UnreadableImage, match=r"no such batch file: .*gone.bin"):
        load_rgb(record_path(folder / "gone.bin", "cifar10-bin", 0))
    data = LabeledImages("x", ["a"], [Sample(record_path(folder / "gone.bin", "cifar10-bin", 0), 0)])
    assert ImageDataset(data, eval_transform({"size": 32}))[0] is None  # skipped and counted, as a broken file


def test_a_binary_record_is_read_by_seeking_and_a_pickled_batch_once_per_process(tmp_path, monkeypatch):
    folder = layout.make_cifar10_binary(tmp_path)
    reads: list[int] = []
    real_open = builtins.open

    class Counting:
        def __init__(self, f):
            self.f = f

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            self.f.close()

        def seek(self, offset):
            return self.f.seek(offset)

        def read(self, n=-1):
            reads.append(n)
            return self.f.read(n)

    monkeypatch.setattr(cifar, "open", lambda *a: Counting(real_open(*a)), raising=False)
    load_rgb(record_path(folder / "test_batch.bin", "cifar10-bin", 2))
    assert reads == [3072]
    monkeypatch.undo()

    python = layout.make_cifar10_python(tmp_path)
    cifar.pickled_batch.cache_clear()
    for i in range(layout.RECORDS["test"]):
        load_rgb(record_path(python / "test_batch", "cifar-pickle", i))
    assert cifar.pickled_batch.cache_info().misses == 1


def os_system_pickle(marker: Path) -> bytes:
    """Protocol 2 opcodes of `os.system('touch MARKER')`, as a tampered batch file would hold them."""
    command = f"touch {marker}".encode()
    return b"\x80\x02" + b"cos\nsystem\n" + b"U" + bytes([len(command)]) + command + b"\x85R."


def exec_pickle(marker: Path) -> bytes:
    """Protocol 4: STACK_GLOBAL builtins.exec of Python that writes MARKER."""
    code = f"open({str(marker)!r}, 'w').close()".encode()
    unicode = b"\x8c" + bytes([len(b"builtins")]) + b"builtins" + b"\x8c\x04exec"
    return b"\x80\x04" + unicode + b"\x93" + b"\x8c" + bytes([len(code)]) + code + b"\x85R."


def inst_pickle(marker: Path) -> bytes:
    """Protocol 0: INST subprocess.call(['touch', MARKER])."""
    return b"((lp0\nS'touch'\naS'" + str(marker).encode() + b"'\naisubprocess\ncall\n."


def object_array_pickle(marker: Path) -> bytes:
    """A numpy array of dtype object: admitted globals only, but its elements could be anything."""
    return layout.python2_dumps(np.array([str(marker)], dtype=object))


def direct_ndarray_pickle(marker: Path) -> bytes:
    """numpy.ndarray((1,), 'O') called directly: an object array without numpy.dtype."""
    return b"\x80\x02cnumpy\nndarray\nK\x01\x85U\x01O\x86R."


@pytest.mark.parametrize(
    "payload, names",
    [
        (os_system_pickle, "os.system"),
        (exec_pickle, "builtins.exec"),
        (inst_pickle, "subprocess.call"),
        (object_array_pickle, "numpy.dtype('O8')"),
        (direct_ndarray_pickle, "it calls numpy.ndarray directly"),
    ],
)
@pytest.mark.parametrize("file", ["test_batch", "batches.meta"])
def test_the_restricted_unpickler_refuses_what_a_cifar_file_never_holds(tmp_path, payload, names, file):
    folder = layout.make_cifar10_python(tmp_path / "data")
    marker = tmp_path / "pwned"
    (folder / file).write_bytes(payload(marker))
    pickletools.dis(payload(marker), out=open(tmp_path / "dis.txt", "w"))  # well-formed pickle opcodes
    with pytest.raises(DataError, match=r"refused to unpickle") as refused:
        resolve_eval_sets([f"cifar10:{folder}"])
    message = str(refused.value)
    assert f"{folder / file}: refused to unpickle: " in message and names in message and "\n" not in message
    assert not marker.exists()


def test_the_os_system_payload_is_live_under_plain_pickle(tmp_path):
    """The control: the same bytes run their command when loaded the usual way (a harmless touch here)."""
    marker = tmp_path / "ran"
    pickle.loads(os_system_pickle(marker))  # noqa: S301 - the point of the control
    assert marker.exists()


def test_truncated_batches_and_bad_labels_are_refused_naming_the_file(tmp_path):
    folder = layout.make_cifar10_binary(tmp_path / "bin")
    with open(folder / "data_batch_2.bin", "r+b") as f:
        f.truncate(3 * 3073 - 100)
    with pytest.raises(DataError, match=r"data_batch_2.bin: truncated or not a CIFAR batch: 9119 bytes is not a whole"):
        resolve_eval_sets([f"cifar10:{folder}"])
    (folder / "data_batch_2.bin").unlink()
    data = (folder / "test_batch.bin").read_bytes()
    (folder / "test_batch.bin").write_bytes(bytes([10]) + data[1:])
    with pytest.raises(DataError, match=r"test_batch.bin: record 0 has label 10, outside 0..9"):
        resolve_eval_sets([f"cifar10:{folder}"])

    python = layout.make_cifar100_python(tmp_path / "py")
    data = (python / "test").read_bytes()
    (python / "test").write_bytes(data[: len(data) // 2])
    with pytest.raises(DataError, match=r"cifar-100-python/test: not a readable CIFAR pickle \(truncated\?\)"):
        resolve_eval_sets([f"cifar100:{python}"])


def test_missing_files_and_partial_copies_are_named_with_counts(tmp_path, caplog):
    with pytest.raises(MissingSuiteData, match=r"CIFAR-10 .*: no batch files found \(looked in .*cifar-10-batches-py"):
        resolve_eval_sets([f"cifar10:{tmp_path}"])
    folder = layout.make_cifar10_binary(tmp_path)
    (folder / "data_batch_3.bin").unlink()
    with caplog.at_level(logging.WARNING):
        resolve_eval_sets([f"cifar10:{tmp_path}"])
    train = cifar.read_cifar(cifar.CIFAR10, tmp_path).train
    assert train is not None and len(train.samples) == 4 * layout.RECORDS["train"]
    assert "partial copy: train: 12 of 50000 images" in caplog.text
    assert "partial copy: test: 4 of 10000 images" in caplog.text
    assert "training batch files missing: data_batch_3.bin" in caplog.text
    (folder / "test_batch.bin").unlink()
    with pytest.raises(MissingSuiteData, match=r"test batch test_batch.bin not found .*get it from https://www.cs"):
        resolve_eval_sets([f"cifar10:{tmp_path}"])
    (folder / "batches.meta.txt").write_text("airplane\nautomobile\n")
    with pytest.raises(DataError, match=r"batches.meta.txt: 2 class names \(2 distinct\), not the 10 of CIFAR-10"):
        resolve_eval_sets([f"cifar10:{tmp_path}"])


def test_cli_refuses_a_truncated_batch_in_one_line_exit_2(tmp_path):
    folder = layout.make_cifar100_binary(tmp_path)
    with open(folder / "test.bin", "ab") as f:
        f.write(b"\0" * 10)
    out = tmp_path / "r.json"
    result = CliRunner().invoke(
        app, ["eval", "--checkpoint", "builtin", "--data", f"cifar100:{tmp_path}", "--out", out]
    )
    assert result.exit_code == 2 and not out.exists()
    (line,) = result.stderr.strip().splitlines()
    assert "test.bin: truncated or not a CIFAR batch: 12306 bytes is not a whole number of 3074-byte records" in line


def cifar10_runner():
    """The built-in model as a zero-shot classifier over CIFAR-10's classes."""
    from common.artifact import ArtifactSpec
    from common.builtin import BUILTIN
    from common.classifier import zero_shot_classifier
    from serve.torch_runner import TorchRunner

    names = list(layout.CIFAR10_NAMES)
    model, meta = zero_shot_classifier(BUILTIN, None, names, names, list(cifar.TEMPLATES))
    return TorchRunner(model, ArtifactSpec(classifier=meta), BUILTIN, "cpu")


@pytest.mark.parametrize("version", ["cifar10-bin", "cifar10-py"])
def test_evaluation_reads_records_through_serve_evaluate(tmp_path, version):
    _, make, _, _ = VERSIONS[version]
    runner = cifar10_runner()
    sets = resolve_eval_sets([f"cifar10:{make(tmp_path)}"], classes=runner.spec.classes)
    report, results = evaluate(runner, sets, batch_size=3, num_workers=0)
    entry = report.datasets["cifar10-test"]
    assert entry.role == "id" and entry.n == layout.RECORDS["test"] and entry.skipped == 0
    transform = eval_transform(runner.spec.classifier.preprocess)
    images = torch.stack([transform(Image.fromarray(expected_image(s.path))) for s in sets[0].data.samples])
    np.testing.assert_allclose(results["cifar10-test"].logits, runner.infer(images), rtol=0, atol=1e-5)
    assert list(results["cifar10-test"].labels) == [s.label for s in sets[0].data.samples]


WORKER_SCRIPT = textwrap.dedent(
    """
    import sys
    from pathlib import Path

    import numpy as np
    import torch

    import data.images

    def check_fresh(worker_id):
        assert "data.suites.cifar" not in sys.modules, "the worker came with the CIFAR reader imported"

    def to_tensor(image):
        return torch.from_numpy(np.array(image))

    if __name__ == "__main__":
        from torch.utils.data import DataLoader

        from data.loading import ImageDataset, collate_skipping
        from data.labeled import LabeledImages, Sample

        paths = [Path(p) for p in sys.argv[1:]]
        assert "data.suites.cifar" not in sys.modules
        first = np.asarray(data.images.load_rgb(paths[0]))  # this interpreter imported only the data layer
        assert "data.suites.cifar" in sys.modules
        data = LabeledImages("records", ["a"], [Sample(p, 0) for p in paths])
        loader = DataLoader(
            ImageDataset(data, to_tensor), batch_size=3, num_workers=1, multiprocessing_context="spawn",
            collate_fn=collate_skipping, worker_init_fn=check_fresh,
        )
        batches = list(loader)
        assert sum(b.skipped for b in batches) == 0
        pixels = np.concatenate([b.images.numpy() for b in batches])
        np.save(sys.stdin.readline().strip(), np.concatenate([first[None], pixels]))
    """
)


def test_spawned_dataloader_workers_read_records_having_imported_only_the_data_layer(tmp_path):
    paths = [
        *(record_path(layout.make_cifar10_binary(tmp_path) / "test_batch.bin", "cifar10-bin", i) for i in range(4)),
        *(record_path(layout.make_cifar100_python(tmp_path) / "train", "cifar-pickle", i) for i in range(3)),
    ]
    script, out = tmp_path / "workers.py", tmp_path / "pixels.npy"
    script.write_text(WORKER_SCRIPT)
    result = subprocess.run(
        [sys.executable, str(script), *map(str, paths)],
        input=f"{out}\n",
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    pixels = np.load(out)
    expected = [expected_image(paths[0]), *(expected_image(p) for p in paths)]
    assert pixels.shape == (len(paths) + 1, 32, 32, 3) and np.array_equal(pixels, np.stack(expected))


def test_datasets_lists_both_suites_with_their_layouts():
    result = CliRunner().invoke(app, ["datasets"])
    assert result.exit_code == 0, result.output
    text = " ".join(result.output.split())
    assert "CIFAR-10 (Krizhevsky, 2009)" in text and "CIFAR-100 (Krizhevsky, 2009)" in text
    assert "no OOD set" in text and "cifar100" in text


def test_a_rewritten_batch_file_invalidates_cached_calibration_images(tmp_path):
    import os

    from calib.calibration import _cache_key
    from common.artifact import ClassifierMeta
    from data.images import stored_file

    root = layout.make_cifar10_binary(tmp_path / "c10")
    (ev,) = resolve_eval_sets([f"cifar10:{root}"])
    samples = list(ev.data.samples[:4])
    batch = stored_file(samples[0].path)
    assert batch.is_file() and batch.name == "test_batch.bin"
    classes = ev.data.classes
    meta = ClassifierMeta("builtin", None, {}, {"size": 32}, classes, classes, ["a photo of a {}."], 100.0)
    before = _cache_key(samples, meta, seed=0, augment=False)
    stat = batch.stat()
    os.utime(batch, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))
    assert _cache_key(samples, meta, seed=0, augment=False) != before
