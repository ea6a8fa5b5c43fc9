import csv

import numpy as np

from data.labeled import load_manifest
from data.world.benchmark import SPURIOUS_BACKGROUND, SplitSpec, ensure_benchmark, split_roles
from data.world.scenes import SHAPES, Scene, caption, render

SMALL = (SplitSpec("train", "train", 120, 0.9), SplitSpec("ood_background", "ood", 60, None))


def _rows(root, split):
    with open(root / f"{split}.csv") as f:
        return list(csv.DictReader(f))


def test_generation_is_deterministic_and_cached(tmp_path):
    a = ensure_benchmark(seed=3, splits=SMALL, root=tmp_path / "a")
    b = ensure_benchmark(seed=3, splits=SMALL, root=tmp_path / "b")
    assert a.name == b.name  # keyed by the spec's hash
    assert _rows(a, "train") == _rows(b, "train")
    assert (a / "train" / "00007.png").read_bytes() == (b / "train" / "00007.png").read_bytes()
    stamp = (a / "benchmark.json").stat().st_mtime_ns
    assert ensure_benchmark(seed=3, splits=SMALL, root=tmp_path / "a") == a
    assert (a / "benchmark.json").stat().st_mtime_ns == stamp  # second call reuses, does not regenerate
    assert ensure_benchmark(seed=4, splits=SMALL, root=tmp_path / "a") != a
    assert split_roles(a) == {"train": "train", "ood_background": "ood"}


def test_bias_and_groups(tmp_path):
    root = ensure_benchmark(seed=0, splits=SMALL, root=tmp_path)
    train = _rows(root, "train")
    aligned = [r["background"] == SPURIOUS_BACKGROUND[r["label"]] for r in train]
    assert 0.8 <= np.mean(aligned) <= 0.97  # drawn at 0.9
    assert all((r["group"] == "aligned") == a for r, a in zip(train, aligned, strict=True))
    ood = _rows(root, "ood_background")
    assert np.mean([r["group"] == "aligned" for r in ood]) < 0.4  # independent: 1/6 expected
    data = load_manifest(root / "train.csv", classes=list(SHAPES))
    assert data.groups == ["aligned", "conflicting"] and len(data.samples) == 120


def test_render_and_caption():
    rng = np.random.default_rng(0)
    img = render(Scene("star", "red", "grass"), 64, rng)
    assert img.size == (64, 64) and img.mode == "RGB"
    sketch = np.asarray(render(Scene("star", "red", "grass", style="sketch"), 64, rng)).astype(int)
    assert (np.abs(sketch[..., 0] - sketch[..., 1]) < 2).all()  # pencil on paper: gray
    words = caption(Scene("star", "red", "grass", style="sketch"), rng)
    assert words.startswith("a sketch of a star")


def test_eval_sets_are_named_as_the_user_says(tiny_folder, tmp_path, monkeypatch):
    """[id:|ood:][NAME=]PATH: two folders both called `test` get names of the user's choosing instead of test and
    test-2; a name given twice, or given to a suite, is refused; a folder whose name holds `=` is still a folder."""
    import shutil

    import pytest

    from data.labeled import DataError
    from data.specs import resolve_eval_sets

    a, b = tmp_path / "a" / "test", tmp_path / "b" / "test"
    shutil.copytree(tiny_folder, a)
    shutil.copytree(tiny_folder, b)
    assert [s.data.name for s in resolve_eval_sets([str(a), str(b)])] == ["test", "test-2"]
    named = resolve_eval_sets([f"photos={a}", f"ood:sketch-v2={b}"])
    assert [(s.data.name, s.role) for s in named] == [("photos", "id"), ("sketch-v2", "ood")]
    assert len(named[1].data.samples) == len(resolve_eval_sets([str(b)])[0].data.samples)
    with pytest.raises(DataError, match="two --data sets are named 'x'"):
        resolve_eval_sets([f"x={a}", f"ood:x={b}"])
    with pytest.raises(DataError, match=r"carry their own roles and names; drop 'ood:x=' \(--data builtin:id_test\)"):
        resolve_eval_sets(["ood:x=builtin:id_test"])
    with pytest.raises(DataError, match="did you mean 'builtin'"):
        resolve_eval_sets(["x=builtin:id_test"])
    odd = tmp_path / "k=v"
    shutil.copytree(tiny_folder, odd)
    (plain,) = resolve_eval_sets([f"ood:{odd}"])
    assert plain.data.name == "k=v" and plain.role == "ood"
    monkeypatch.chdir(tmp_path)  # a relative folder called k=v too: the path that exists wins over NAME=PATH
    (relative,) = resolve_eval_sets(["ood:k=v"])
    assert relative.data.name == "k=v" and len(relative.data.samples) == len(plain.data.samples)


def test_eval_sets_get_unique_names_and_may_cover_some_classes(tiny_folder):
    import shutil

    from data.specs import resolve_eval_sets

    classes = list(SHAPES)
    sets = resolve_eval_sets(["builtin:id_test", "builtin:id_test"], classes)
    assert [s.data.name for s in sets] == ["id_test", "id_test-2"]
    for name in ("circle", "square", "triangle", "cross"):
        shutil.rmtree(tiny_folder / name)  # keeps star and hexagon only, in folder order hexagon, star
    (subset,) = resolve_eval_sets([f"ood:{tiny_folder}"], classes)
    assert subset.role == "ood" and subset.data.classes == classes
    assert {classes[s.label] for s in subset.data.samples} == {"star", "hexagon"}
    assert all(classes[s.label] == s.path.parent.name for s in subset.data.samples)


def test_a_larger_split_starts_with_the_smaller_ones_images_and_training_data_is_unchanged():
    """Benchmark version 2 grew the evaluation splits (1,200 -> 5,000 images): a split is drawn in order from its own
    stream, so the larger split begins with the smaller one's images, and the training and validation splits (whose
    specs did not change) are version 1's."""
    from dataclasses import replace

    from data.world.benchmark import DEFAULT_EVAL_IMAGES, EVAL_IMAGES, HOLDOUT_SPLITS, SPLITS, SplitSpec, draw_split

    assert SPLITS[:2] == (SplitSpec("train", "train", 3000, 0.9), SplitSpec("val", "val", 600, 0.9))
    assert DEFAULT_EVAL_IMAGES == 5000 and all(s.n == EVAL_IMAGES for s in SPLITS[2:] + HOLDOUT_SPLITS)
    for position, spec in ((3, SPLITS[3]), (1, HOLDOUT_SPLITS[1])):
        small = [np.asarray(image) for _, image in draw_split(replace(spec, n=6), 0, position)]
        large = [np.asarray(image) for _, image in draw_split(replace(spec, n=12), 0, position)]
        assert all((a == b).all() for a, b in zip(small, large[:6], strict=True))


def test_the_evaluation_split_size_comes_from_the_environment(monkeypatch, caplog):
    """5,000 images per evaluation split by default; PROREG_CLIP_EVAL_IMAGES chooses another count (the tests run at
    1,200), a bad value is a warning and the default."""
    from data.world.benchmark import _eval_images

    monkeypatch.delenv("PROREG_CLIP_EVAL_IMAGES")
    assert _eval_images() == 5000
    monkeypatch.setenv("PROREG_CLIP_EVAL_IMAGES", "300")
    assert _eval_images() == 300
    for bad in ("0", "-5", "lots"):
        monkeypatch.setenv("PROREG_CLIP_EVAL_IMAGES", bad)
        with caplog.at_level("WARNING"):
            assert _eval_images() == 5000
        assert f"PROREG_CLIP_EVAL_IMAGES={bad!r} is not a positive count" in caplog.text
