"""data.labeled and data.loading: folder and manifest parsing, class names, reordering, skipping bad images,
loaders."""

from __future__ import annotations

import io
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from data.labeled import (
    DataError,
    LabeledImages,
    Sample,
    load_dataset,
    load_image_folder,
    load_manifest,
    read_classnames,
)
from data.loading import Batch, ImageDataset, collate_skipping, make_loader


def write_png(path: Path, value: int = 128, size: int = 8) -> Path:
    """Write a tiny solid-gray PNG (creating parent folders) and return its path."""
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("L", (size, size), value).save(path)
    return path


def to_tensor(image: Image.Image) -> torch.Tensor:
    """A minimal transform: HWC uint8 -> CHW float in [0, 1]."""
    return torch.from_numpy(np.asarray(image, dtype=np.float32) / 255.0).permute(2, 0, 1)


def truncated_png(path: Path) -> Path:
    """Write a noisy PNG cut in half: its header parses, its pixel data does not decode."""
    noise = np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(noise).save(buffer, format="PNG")
    path.write_bytes(buffer.getvalue()[: len(buffer.getvalue()) // 2])
    return path


def test_image_folder_sorted_classes_and_recursive_samples(tmp_path: Path) -> None:
    root = tmp_path / "pets"
    write_png(root / "dog" / "a.png")
    write_png(root / "dog" / "nested" / "deeper" / "b.JPG")  # extension is case-insensitive, content irrelevant
    write_png(root / "cat" / "c.png")
    (root / "cat" / "notes.txt").write_text("not an image")
    (root / "cat" / ".hidden.png").write_bytes(b"")

    data = load_image_folder(root)

    assert data.name == "pets"
    assert data.classes == ["cat", "dog"]
    assert [s.label for s in data.samples] == [0, 1, 1]
    assert data.samples[0].path == root / "cat" / "c.png"
    dog = root / "dog"
    assert data.samples[1:] == [Sample(dog / "a.png", 1), Sample(dog / "nested" / "deeper" / "b.JPG", 1)]
    assert data.groups == []


def test_empty_class_folder_is_named_in_error(tmp_path: Path) -> None:
    write_png(tmp_path / "ds" / "cat" / "a.png")
    (tmp_path / "ds" / "dog" / "sub").mkdir(parents=True)
    (tmp_path / "ds" / "dog" / "readme.txt").write_text("no images here")

    with pytest.raises(DataError, match="class folder is empty") as info:
        load_image_folder(tmp_path / "ds")
    assert str(tmp_path / "ds" / "dog") in str(info.value)
    assert "\n" not in str(info.value)


def test_folder_without_class_folders_is_an_error(tmp_path: Path) -> None:
    write_png(tmp_path / "flat" / "a.png")
    with pytest.raises(DataError, match="no class folders"):
        load_image_folder(tmp_path / "flat")


def test_missing_path_is_an_error(tmp_path: Path) -> None:
    missing = tmp_path / "nope"
    with pytest.raises(DataError, match="no such dataset") as info:
        load_dataset(missing)
    assert str(missing) in str(info.value)
    with pytest.raises(DataError, match="no such dataset"):
        load_dataset(tmp_path / "nope.csv")
    with pytest.raises(DataError, match="no such dataset"):
        load_image_folder(missing)


def test_unsupported_file_is_an_error(tmp_path: Path) -> None:
    other = tmp_path / "data.json"
    other.write_text("{}")
    with pytest.raises(DataError, match="not a dataset"):
        load_dataset(other)


def test_manifest_with_groups_and_relative_paths(tmp_path: Path) -> None:
    write_png(tmp_path / "imgs" / "1.png")
    absolute = write_png(tmp_path / "elsewhere" / "2.png")
    manifest = tmp_path / "lists" / "val.csv"
    manifest.parent.mkdir()
    manifest.write_text(
        f"path,label,group\n../imgs/1.png,dog,night\n{absolute},cat,day\n\nx/3.png, dog ,\n", encoding="utf-8"
    )

    data = load_dataset(manifest)

    assert data.name == "val"
    assert data.classes == ["cat", "dog"]
    assert data.samples == [
        Sample(manifest.parent / "../imgs/1.png", 1, "night"),
        Sample(absolute, 0, "day"),
        Sample(manifest.parent / "x" / "3.png", 1, None),
    ]
    assert data.samples[0].path.resolve() == (tmp_path / "imgs" / "1.png").resolve()
    assert data.groups == ["day", "night"]


def test_manifest_given_classes_fix_the_order(tmp_path: Path) -> None:
    manifest = tmp_path / "m.csv"
    manifest.write_text("label,path\ncat,a.png\ndog,b.png\n")
    data = load_manifest(manifest, classes=["dog", "cat", "bird"], name="custom")
    assert data.name == "custom"
    assert data.classes == ["dog", "cat", "bird"]
    assert [s.label for s in data.samples] == [1, 0]


def test_manifest_unknown_label_names_the_line(tmp_path: Path) -> None:
    manifest = tmp_path / "a.csv"
    manifest.write_text("path,label\n1.png,cat\n2.png,dog\n3.png,dgo\n")
    with pytest.raises(DataError) as info:
        load_manifest(manifest, classes=["cat", "dog"])
    assert str(info.value) == f"manifest {manifest} line 4: unknown label 'dgo' (known: cat, dog)"


def test_manifest_missing_label_column(tmp_path: Path) -> None:
    manifest = tmp_path / "a.csv"
    manifest.write_text("path,class\n1.png,cat\n")
    with pytest.raises(DataError, match="missing column.*label") as info:
        load_manifest(manifest)
    assert str(manifest) in str(info.value)


def test_empty_manifest(tmp_path: Path) -> None:
    empty = tmp_path / "empty.csv"
    empty.write_text("")
    with pytest.raises(DataError, match="manifest is empty"):
        load_manifest(empty)
    header_only = tmp_path / "header.csv"
    header_only.write_text("path,label\n")
    with pytest.raises(DataError, match="no samples"):
        load_manifest(header_only)


def test_read_classnames(tmp_path: Path) -> None:
    names = tmp_path / "classnames.txt"
    names.write_text("# label,display\nhot_dog\n\ncat, a small cat \n  # indented comment\nsea_lion,seal, not quite\n")
    assert list(read_classnames(names).items()) == [
        ("hot_dog", "hot dog"),
        ("cat", "a small cat"),
        ("sea_lion", "seal, not quite"),
    ]


def test_read_classnames_duplicate(tmp_path: Path) -> None:
    names = tmp_path / "classnames.txt"
    names.write_text("cat\ndog\ncat,kitty\n")
    with pytest.raises(DataError, match="line 3: duplicate label 'cat'") as info:
        read_classnames(names)
    assert str(names) in str(info.value)


def test_reorder_remaps_labels_by_name(tmp_path: Path) -> None:
    data = LabeledImages("d", ["cat", "dog", "fox"], [Sample(Path("a"), 0), Sample(Path("b"), 2, "g")])
    reordered = data.reorder(["fox", "cat", "dog"])
    assert reordered.classes == ["fox", "cat", "dog"]
    assert [s.label for s in reordered.samples] == [1, 0]
    assert reordered.samples[1] == Sample(Path("b"), 0, "g")
    assert [s.label for s in data.samples] == [0, 2]  # the original is untouched


def test_reorder_mismatch_lists_names() -> None:
    data = LabeledImages("d", ["cat", "dog"], [Sample(Path("a"), 0)])
    with pytest.raises(DataError, match=r"missing: fox; extra: dog"):
        data.reorder(["cat", "fox"])


def test_load_dataset_folder_with_classes_reorders(tmp_path: Path) -> None:
    write_png(tmp_path / "ds" / "cat" / "a.png")
    write_png(tmp_path / "ds" / "dog" / "b.png")
    data = load_dataset(str(tmp_path / "ds"), classes=["dog", "cat"])
    assert data.classes == ["dog", "cat"]
    assert [(s.path.name, s.label) for s in data.samples] == [("a.png", 1), ("b.png", 0)]
    with pytest.raises(DataError, match="extra: dog"):
        load_dataset(tmp_path / "ds", classes=["cat"])


def test_corrupt_images_are_skipped_and_counted(tmp_path: Path) -> None:
    good = write_png(tmp_path / "good.png", value=255)
    garbage = tmp_path / "garbage.png"
    garbage.write_bytes(b"this is not a png at all")
    truncated = truncated_png(tmp_path / "truncated.png")
    other = write_png(tmp_path / "other.png", value=0)
    data = LabeledImages(
        "d", ["a", "b"], [Sample(good, 0, "x"), Sample(garbage, 1), Sample(truncated, 1), Sample(other, 1)]
    )
    dataset = ImageDataset(data, to_tensor)

    assert dataset[1] is None
    assert dataset[2] is None
    image, label, group, index = dataset[0]
    assert image.shape == (3, 8, 8) and torch.all(image == 1.0)
    assert (label, group, index) == (0, 0, 0)

    batch = collate_skipping([dataset[i] for i in range(len(dataset))])
    assert batch.skipped == 2
    assert batch.images.shape == (2, 3, 8, 8)
    assert batch.labels.tolist() == [0, 1]
    assert batch.groups.tolist() == [0, -1]
    assert batch.indices.tolist() == [0, 3]
    assert batch.labels.dtype == batch.groups.dtype == batch.indices.dtype == torch.long


def test_strict_mode_raises(tmp_path: Path) -> None:
    truncated = truncated_png(tmp_path / "truncated.png")
    garbage = tmp_path / "garbage.png"
    garbage.write_bytes(b"\x00\x01garbage")
    data = LabeledImages("d", ["a"], [Sample(truncated, 0), Sample(garbage, 0)])
    dataset = ImageDataset(data, to_tensor, strict=True)
    with pytest.raises(DataError, match="image not readable") as info:
        dataset[0]
    assert str(truncated) in str(info.value)
    with pytest.raises(DataError, match="image not readable"):
        dataset[1]


def test_collate_all_skipped_and_pickle() -> None:
    batch = collate_skipping([None, None])
    assert batch.skipped == 2
    assert batch.images.shape == (0,)
    assert batch.labels.shape == batch.groups.shape == batch.indices.shape == (0,)
    assert batch.indices.dtype == torch.long
    restored = pickle.loads(pickle.dumps(batch))
    assert isinstance(restored, Batch) and restored.skipped == 2


def test_loader_order_follows_generator_seed(tmp_path: Path) -> None:
    samples = [Sample(write_png(tmp_path / f"{i}.png", value=i), i % 2) for i in range(12)]
    samples[5] = Sample(truncated_png(tmp_path / "bad.png"), 1)
    dataset = ImageDataset(LabeledImages("d", ["a", "b"], samples), to_tensor)

    def order(seed: int | None) -> tuple[list[int], int]:
        perm = torch.randperm(12, generator=torch.Generator().manual_seed(seed)).tolist() if seed is not None else None
        batches = list(make_loader(dataset, batch_size=5, order=perm))
        assert all(isinstance(b, Batch) for b in batches)
        return [i for b in batches for i in b.indices.tolist()], sum(b.skipped for b in batches)

    first, skipped = order(7)
    assert skipped == 1
    assert sorted(first) == [i for i in range(12) if i != 5]
    assert order(7) == (first, 1)
    assert order(8)[0] != first
    assert order(None)[0] == [i for i in range(12) if i != 5]


def test_manifest_with_repeated_rows_is_refused_with_counts(tmp_path: Path) -> None:
    for name in ("a.png", "b.png"):
        write_png(tmp_path / name)
    (tmp_path / "m.csv").write_text("path,label\na.png,x\nb.png,y\n./a.png,x\nb.png,y\n")
    with pytest.raises(DataError, match=r"lists 2 image\(s\) more than once \(first: \./a\.png on lines 2 and 4\)"):
        load_manifest(tmp_path / "m.csv")


def test_files_with_a_utf8_byte_order_mark(tmp_path: Path) -> None:
    write_png(tmp_path / "a.png")
    (tmp_path / "m.csv").write_text("\ufeffpath,label\na.png,x\n", encoding="utf-8")  # as Excel saves CSV
    assert load_manifest(tmp_path / "m.csv").classes == ["x"]
    (tmp_path / "names.txt").write_text("\ufeffx,Ex\n", encoding="utf-8")
    assert read_classnames(tmp_path / "names.txt") == {"x": "Ex"}


def test_training_and_validation_data_must_not_share_images(tiny_folder: Path) -> None:
    from common.run import DataSource
    from data.specs import resolve_train_data

    with pytest.raises(DataError, match=r"60 image\(s\) are in both the training and the validation data"):
        resolve_train_data(DataSource(train=str(tiny_folder), val=str(tiny_folder)))
    held_out = resolve_train_data(DataSource(train=str(tiny_folder)))  # the stratified split never shares
    assert not set(held_out.train.samples) & set(held_out.val.samples)
