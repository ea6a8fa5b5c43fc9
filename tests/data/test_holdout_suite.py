"""The held-out image-shift suite: each shift does what it claims, the main benchmark is untouched, and the
`builtin-holdout` data spec resolves to its four OOD sets."""

import json
from dataclasses import replace

import numpy as np
import pytest
from PIL import Image

import data.suites.builtin
from common.builtin import BUILTIN
from common.run import DataSource
from data.labeled import DataError
from data.specs import resolve_eval_sets, resolve_train_data
from data.world import BUILTIN_HOLDOUT
from data.world.benchmark import (
    DEFAULT_EVAL_IMAGES,
    EVAL_IMAGES,
    HOLDOUT_SPLITS,
    SPLITS,
    SplitSpec,
    _spec_dict,
    _spec_hash,
    draw_split,
    ensure_benchmark,
    split_roles,
)
from data.world.scenes import SHAPES
from data.world.shifts import OCCLUDED_FRACTION, OCCLUDER_GREY, PIXEL_BLOCK, apply_shift, occlusion_mask

# The hash of the main splits (benchmark version 2 at its 5,000 images per evaluation split): results elsewhere are
# pinned to its images (version 1's, before the evaluation splits grew, was bfb0093ed8).
MAIN_SPLITS_HASH = "50a69a0090"
SMALL_HOLDOUT = tuple(replace(spec, n=12) for spec in HOLDOUT_SPLITS)
HOLDOUT_NAMES = ["holdout_pixelate", "holdout_invert", "holdout_occlude", "holdout_jpeg"]


@pytest.fixture(scope="module")
def small_holdout(tmp_path_factory):
    return ensure_benchmark(seed=0, splits=SMALL_HOLDOUT, root=tmp_path_factory.mktemp("holdout"))


def _pixels(path) -> np.ndarray:
    return np.asarray(Image.open(path).convert("RGB")).astype(int)


def _first_pair(root, name: str) -> tuple[np.ndarray, np.ndarray]:
    """The first shifted image as written, and the same draw without the shift."""
    position = [s.name for s in SMALL_HOLDOUT].index(name)
    spec = SMALL_HOLDOUT[position]
    _, plain = next(draw_split(replace(spec, shift=None), seed=0, position=position))
    return _pixels(root / name / "00000.png"), np.asarray(plain).astype(int)


def test_main_splits_keep_their_hash_folder_and_metadata():
    at_default = tuple(replace(s, n=DEFAULT_EVAL_IMAGES) if s.role in ("id", "ood") else s for s in SPLITS)
    assert _spec_hash(0, at_default) == MAIN_SPLITS_HASH  # the tests run at 1,200 images (tests/conftest.py)
    assert all(set(_spec_dict(s)) == {"name", "role", "n", "bias", "style", "corrupt"} for s in SPLITS)
    assert _spec_hash(0, HOLDOUT_SPLITS) != MAIN_SPLITS_HASH


def test_holdout_suite_layout(small_holdout):
    assert small_holdout.name == f"benchmark-v2-{_spec_hash(0, SMALL_HOLDOUT)}"
    assert split_roles(small_holdout) == dict.fromkeys(HOLDOUT_NAMES, "ood")
    meta = json.loads((small_holdout / "benchmark.json").read_text())
    assert meta["classes"] == list(SHAPES)
    assert [s["shift"] for s in meta["splits"]] == ["pixelate", "invert", "occlude", "jpeg"]
    assert (small_holdout / "classnames.txt").read_text().split() == list(SHAPES)
    assert all(len(list((small_holdout / name).glob("*.png"))) == 12 for name in HOLDOUT_NAMES)


def test_holdout_images_are_not_the_main_splits_images():
    for position, spec in enumerate(SMALL_HOLDOUT):
        own = [np.asarray(img) for _, img in draw_split(replace(spec, shift=None), 0, position)]
        main_stream = [np.asarray(img) for _, img in draw_split(replace(spec, shift=None, stream=0), 0, position)]
        assert not any(np.array_equal(a, b) for a, b in zip(own, main_stream, strict=True))


def test_pixelate_makes_constant_blocks_of_block_means(small_holdout):
    shifted, plain = _first_pair(small_holdout, "holdout_pixelate")
    blocks = shifted.reshape(16, PIXEL_BLOCK, 16, PIXEL_BLOCK, 3)
    assert (blocks == blocks[:, :1, :, :1]).all()  # every 4x4 block is one colour
    means = plain.reshape(16, PIXEL_BLOCK, 16, PIXEL_BLOCK, 3).mean(axis=(1, 3))
    assert np.abs(blocks[:, 0, :, 0] - means).max() <= 1
    assert not np.array_equal(shifted, plain)


def test_invert_is_the_colour_negative(small_holdout):
    shifted, plain = _first_pair(small_holdout, "holdout_invert")
    assert np.array_equal(shifted, 255 - plain)


def test_occlude_paints_grey_rectangles_over_the_target_fraction(small_holdout):
    shifted, plain = _first_pair(small_holdout, "holdout_occlude")
    grey = (shifted == OCCLUDER_GREY).all(axis=-1)
    changed = (shifted != plain).any(axis=-1)
    assert not (changed & ~grey).any()  # only grey was painted
    low, high = OCCLUDED_FRACTION
    assert low - 0.08 <= changed.mean() <= high and low <= grey.mean() <= high + 0.05


def test_occlusion_mask_covers_the_target_fraction_deterministically():
    for seed in range(50):
        mask = occlusion_mask(64, 64, np.random.default_rng(seed))
        assert OCCLUDED_FRACTION[0] <= mask.mean() <= OCCLUDED_FRACTION[1]
        assert np.array_equal(mask, occlusion_mask(64, 64, np.random.default_rng(seed)))


def test_jpeg_differs_but_stays_close(small_holdout):
    shifted, plain = _first_pair(small_holdout, "holdout_jpeg")
    assert not np.array_equal(shifted, plain)
    assert np.abs(shifted - plain).mean() < 15


def test_unknown_shift_is_refused():
    with pytest.raises(ValueError, match="unknown image shift 'blur'.*pixelate"):
        SplitSpec("x", "ood", 1, None, shift="blur")
    with pytest.raises(ValueError, match="unknown image shift"):
        apply_shift(Image.new("RGB", (8, 8)), "blur", np.random.default_rng(0))


@pytest.fixture
def small_builtin_holdout(monkeypatch, tmp_path):
    """`builtin-holdout` resolving to 12-image splits generated into a temporary cache."""
    monkeypatch.setenv("PROREG_CACHE", str(tmp_path))
    monkeypatch.setitem(data.suites.builtin.SPLITS_OF, BUILTIN_HOLDOUT, SMALL_HOLDOUT)


def test_builtin_holdout_resolves_to_four_ood_sets(small_builtin_holdout):
    sets = resolve_eval_sets([BUILTIN_HOLDOUT], list(reversed(SHAPES)))
    assert [(s.data.name, s.role, len(s.data.samples)) for s in sets] == [(n, "ood", 12) for n in HOLDOUT_NAMES]
    assert all(s.data.classes == list(reversed(SHAPES)) for s in sets)  # the model's class order
    (jpeg,) = resolve_eval_sets([f"{BUILTIN_HOLDOUT}:holdout_jpeg"])
    assert (jpeg.data.name, jpeg.role, jpeg.data.classes) == ("holdout_jpeg", "ood", list(SHAPES))


def test_unknown_holdout_split_names_the_available_ones(small_builtin_holdout):
    with pytest.raises(DataError, match=r"no split 'ood_sketch' in the built-in holdout suite \(holdout_pixelate, "):
        resolve_eval_sets([f"{BUILTIN_HOLDOUT}:ood_sketch"])


def test_holdout_suite_is_for_evaluation_only(small_builtin_holdout):
    for spec in (BUILTIN_HOLDOUT, f"{BUILTIN_HOLDOUT}:holdout_jpeg"):
        with pytest.raises(DataError, match="the built-in holdout suite is for evaluation only"):
            resolve_train_data(DataSource(train=spec))


def test_default_eval_sets_leave_the_holdout_suite_out(benchmark_root):
    sets = resolve_eval_sets([])
    assert [(s.data.name, s.role) for s in sets] == [
        ("id_test", "id"),
        ("ood_background", "ood"),
        ("ood_sketch", "ood"),
        ("ood_corrupt", "ood"),
    ]
    assert data.suites.builtin.SPLITS_OF[BUILTIN] == SPLITS


@pytest.mark.slow
def test_real_holdout_suite_resolves(benchmark_root):
    """Generates the full suite on first use (4 splits of EVAL_IMAGES: 1,200 in the tests, 5,000 by default)."""
    sets = resolve_eval_sets([BUILTIN_HOLDOUT], list(SHAPES))
    expected = [(n, "ood", EVAL_IMAGES) for n in HOLDOUT_NAMES]
    assert [(s.data.name, s.role, len(s.data.samples)) for s in sets] == expected
    assert {s.data.samples[0].path.parent.parent.name for s in sets} == {
        f"benchmark-v2-{_spec_hash(0, HOLDOUT_SPLITS)}"
    }


def test_the_builtin_benchmark_is_a_suite_like_the_others(benchmark_root):
    """`builtin` resolves through the suite registry: --val-data replaces its validation split as it does a suite's,
    and `builtin:SPLIT` names one set (its train and val splits evaluate as ID)."""
    data = resolve_train_data(DataSource(train=BUILTIN, val=str(benchmark_root / "id_test.csv")))
    assert (data.train.name, data.val.name, len(data.val.samples)) == ("train", "id_test", EVAL_IMAGES)
    assert [(s.data.name, s.role) for s in resolve_eval_sets([f"{BUILTIN}:val", f"{BUILTIN}:ood_sketch"])] == [
        ("val", "id"),
        ("ood_sketch", "ood"),
    ]
    with pytest.raises(DataError, match=r"no split 'sketch' in the built-in benchmark \(train, val, id_test, ood_b"):
        resolve_eval_sets([f"{BUILTIN}:sketch"])
    with pytest.raises(DataError, match="builtin:ood_sketch: 'ood_sketch' is one evaluation set of the built-in bench"):
        resolve_train_data(DataSource(train=f"{BUILTIN}:ood_sketch"))
