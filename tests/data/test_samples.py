"""data.samples.SampleTable: a Sequence[Sample] by column, equal to the list it replaces, and manifests loaded
into it holding no Python object per image."""

from __future__ import annotations

import tracemalloc
from pathlib import Path

import numpy as np
import pytest

from common.run import DataSource
from data.labeled import LabeledImages, load_manifest
from data.samples import Sample, SampleTable, labels_of, path_texts, take
from data.specs import _stratified_holdout, resolve_train_data


def table_and_list(base: Path) -> tuple[SampleTable, list[Sample]]:
    paths = ["a/1.png", "b/2.png", "/abs/3.png", "a/ü4.png", "b/5.png"]
    labels, groups = np.array([0, 1, 0, 2, 1]), np.array([1, -1, 0, 1, -1])
    table = SampleTable.from_columns(str(base), paths, labels, groups, ["day", "night"])
    names = {-1: None, 0: "day", 1: "night"}
    as_list = [Sample(base / p, int(y), names[int(g)]) for p, y, g in zip(paths, labels, groups, strict=True)]
    return table, as_list


def test_a_table_reads_like_the_list_it_replaces(tmp_path):
    table, as_list = table_and_list(tmp_path)
    assert len(table) == 5 and list(table) == as_list and table == as_list
    assert table[2].path == Path("/abs/3.png")  # an absolute path stands alone
    assert table[-1] == as_list[-1] and table[1:4] == as_list[1:4] and table[::-2] == as_list[::-2]
    with pytest.raises(IndexError):
        table[5]
    picked = table.take([4, 0, 3])
    assert picked == [as_list[4], as_list[0], as_list[3]]
    assert picked.take([2, 0]) == [as_list[3], as_list[4]]  # a table of a table keeps its rows straight
    assert list(path_texts(picked)) == [str(as_list[i].path) for i in (4, 0, 3)]
    relabelled = table.relabel(np.array([2, 0, 1]))
    assert [s.label for s in relabelled] == [2, 0, 2, 1, 0] and [s.label for s in table] == [0, 1, 0, 2, 1]
    assert table.present_groups() == ["day", "night"] and table.take([1, 4]).present_groups() == []
    for samples in (table, as_list):
        assert labels_of(samples).tolist() == [0, 1, 0, 2, 1]
        assert take(samples, [3, 1]) == [as_list[3], as_list[1]]


def test_labeled_images_reorder_and_groups_on_a_table(tmp_path):
    table, as_list = table_and_list(tmp_path)
    a, b = LabeledImages("t", ["x", "y", "z"], table), LabeledImages("t", ["x", "y", "z"], as_list)
    assert a.reorder(["z", "x", "y"]).samples == b.reorder(["z", "x", "y"]).samples
    assert isinstance(a.reorder(["z", "x", "y"]).samples, SampleTable)
    assert a.groups == b.groups == ["day", "night"]


def write_manifest(path: Path, n: int, classes: int = 10) -> Path:
    with open(path, "w") as f:
        f.write("path,label,group\n")
        f.writelines(f"img/c{i % classes}/{i}.png,c{i % classes},g{i % 3}\n" for i in range(n))
    return path


def test_the_holdout_split_is_the_same_for_a_table_and_a_list(tmp_path):
    data = load_manifest(write_manifest(tmp_path / "m.csv", 200))
    as_list = LabeledImages(data.name, data.classes, list(data.samples))
    for seed in (0, 1):
        train_t, val_t = _stratified_holdout(data, 0.1, seed)
        train_l, val_l = _stratified_holdout(as_list, 0.1, seed)
        assert isinstance(train_t.samples, SampleTable) and train_t.samples == train_l.samples
        assert val_t.samples == val_l.samples and len(val_t.samples) == 20


def test_a_large_manifest_holds_no_python_object_per_image(tmp_path):
    n = 100_000
    manifest = write_manifest(tmp_path / "big.csv", n)
    tracemalloc.start()
    try:
        data = load_manifest(manifest)
        held, _ = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert len(data.samples) == n and data.samples[n - 1] == Sample(tmp_path / f"img/c9/{n - 1}.png", 9, "g0")
    # The path text (about 16 characters a row) and three integer columns; a list of Samples takes ~500 B a row.
    assert held / n < 60, f"{held / n:.0f} bytes per image"


def test_training_from_a_manifest_keeps_tables(tmp_path):
    data = resolve_train_data(DataSource(str(write_manifest(tmp_path / "m.csv", 100)), val_fraction=0.2))
    assert isinstance(data.train.samples, SampleTable) and isinstance(data.val.samples, SampleTable)
    assert len(data.train.samples) == 80 and len(data.val.samples) == 20
