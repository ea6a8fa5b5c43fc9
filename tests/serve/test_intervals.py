"""serve.intervals: paired-bootstrap intervals, checked against reference computations (the normal approximation of a
paired difference, and a plain loop bootstrap over seeds and images) on per-image results made here."""

from __future__ import annotations

import math

import numpy as np
import pytest

from serve.intervals import RowSamples, drop_interval, pack_correct, paired_differences, unpack_correct


def correct_at(rate: float, n: int, rng: np.random.Generator) -> np.ndarray:
    return rng.random(n) < rate


@pytest.mark.parametrize("n", [1, 7, 8, 9, 5000])
def test_packed_correctness_round_trips(n):
    correct = correct_at(0.5, n, np.random.default_rng(n))
    text = pack_correct(correct)
    assert len(text) <= 4 * math.ceil(math.ceil(n / 8) / 3)  # base64 of n/8 bytes
    np.testing.assert_array_equal(unpack_correct(text, n), correct)
    with pytest.raises(ValueError, match="holds"):
        unpack_correct(text, n + 8)


def normal_interval(a: np.ndarray, b: np.ndarray) -> tuple[float, float, float]:
    """The paired difference mean(a - b) in pp with its 95% normal-approximation interval."""
    d = a.astype(float) - b.astype(float)
    se = d.std(ddof=1) / math.sqrt(len(d))
    return 100 * d.mean(), 100 * (d.mean() - 1.96 * se), 100 * (d.mean() + 1.96 * se)


def test_the_drop_interval_matches_the_normal_approximation():
    rng = np.random.default_rng(1)
    reference = correct_at(0.85, 5000, rng)
    model = reference.copy()
    flips = rng.choice(5000, 300, replace=False)  # 300 images change their outcome, most of them for the worse
    model[flips[:200]] = False
    model[flips[200:]] = True
    point, low, high = normal_interval(reference, model)
    got = drop_interval(model, reference)
    assert got[0] == pytest.approx(low, abs=0.08) and got[1] == pytest.approx(high, abs=0.08)
    assert got[0] < point < got[1]
    assert drop_interval(reference, reference) == (0.0, 0.0)  # the same outcomes: no uncertainty about the drop
    assert drop_interval(model, reference) == got  # a fixed generator: the same answer every time


def test_one_seed_rows_match_the_normal_approximation_and_identical_rows_tie():
    rng = np.random.default_rng(2)
    best = correct_at(0.86, 5000, rng)
    other = best.copy()
    other[rng.choice(np.flatnonzero(best), 150, replace=False)] = False  # 3 pp worse on the same images
    rows = {
        "best": RowSamples([{"ood": best}]),
        "other": RowSamples([{"ood": other}]),
        "copy": RowSamples([{"ood": best.copy()}]),
    }
    diffs = paired_differences(rows, ["best"], {"ood_mean": lambda t: t["ood"]})["best"]
    point, low, high = normal_interval(other, best)
    d = diffs["other"]["ood_mean"]
    assert d.value == pytest.approx(-0.03) and 100 * d.value == pytest.approx(point)
    assert 100 * d.low == pytest.approx(low, abs=0.08) and 100 * d.high == pytest.approx(high, abs=0.08)
    assert not d.tied
    assert diffs["copy"]["ood_mean"].tied and diffs["best"]["ood_mean"].tied
    assert (diffs["copy"]["ood_mean"].low, diffs["copy"]["ood_mean"].high) == (0.0, 0.0)


def resampled_metric(row: RowSamples, seeds: np.ndarray, images: dict[str, np.ndarray]) -> float:
    """The mean over the drawn seeds (a one-model row: its model) of the mean top-1 over the sets on drawn images."""
    chosen = [row.per_seed[i % len(row.per_seed)] for i in seeds]
    return float(np.mean([np.mean([seed[s][idx].mean() for s, idx in images.items()]) for seed in chosen]))


def loop_bootstrap(rows: dict[str, RowSamples], reference: str, label: str, resamples: int) -> tuple[float, float]:
    """The reference computation: resample the seeds, then each set's images, by index, one resample at a time."""
    rng = np.random.default_rng(123)  # another stream than serve.intervals': agreement up to Monte Carlo error
    first = rows[reference].per_seed[0]
    k = len(rows[reference].per_seed)
    diffs = []
    for _ in range(resamples):
        seeds = rng.integers(0, k, k)
        images = {s: rng.integers(0, len(c), len(c)) for s, c in first.items()}
        diffs.append(resampled_metric(rows[label], seeds, images) - resampled_metric(rows[reference], seeds, images))
    low, high = np.percentile(diffs, [2.5, 97.5])
    return float(low), float(high)


def test_rows_over_seeds_and_sets_match_a_loop_bootstrap():
    """Three seeds whose accuracies spread by about a point, two sets: the interval carries both the seed spread and
    the image sampling, as a plain loop computes them."""
    rng = np.random.default_rng(3)

    def row(rates: list[float]) -> RowSamples:
        return RowSamples([{"a": correct_at(r, 1200, rng), "b": correct_at(r - 0.1, 800, rng)} for r in rates])

    rows = {"kd": row([0.84, 0.85, 0.86]), "proreg": row([0.845, 0.835, 0.855]), "zero-shot": row([0.80])}
    mean = {"ood_mean": lambda t: (t["a"] + t["b"]) / 2}
    diffs = paired_differences(rows, ["kd", "proreg"], mean, resamples=2000)["kd"]
    for label in ("proreg", "zero-shot"):
        low, high = loop_bootstrap(rows, "kd", label, 2000)
        width = high - low
        got = diffs[label]["ood_mean"]
        assert got.low == pytest.approx(low, abs=0.1 * width) and got.high == pytest.approx(high, abs=0.1 * width)
    assert diffs["proreg"]["ood_mean"].tied  # half a point apart, within the seeds' spread
    assert not diffs["zero-shot"]["ood_mean"].tied  # four and a half points below
