"""Uncertainty of accuracy differences: 95% intervals from a paired bootstrap, so a comparison can say when two models
are not distinguishable (a tie) instead of ranking them on a difference smaller than its noise.

Two kinds, both percentile intervals (the 2.5th and 97.5th percentiles of the resampled difference):
- `drop_interval`: one model against a reference on the same images (the accuracy-drop gate). The images are
  resampled with replacement; each resample's drop counts the images only the reference got right minus those only
  the model got right, which a multinomial draw over those categories gives exactly, without the per-image loop.
- `RowSamples` / `paired_differences`: rows of a comparison, each over seeds, on the same evaluation sets. Each
  resample draws the seeds with replacement (the same seed positions for every row: seed s of one recipe is paired
  with seed s of another) and every set's images with replacement (the same images for every row and seed), and
  recomputes each row's metric (a mean of per-set top-1 over the chosen seeds). A row of one model (zero-shot) keeps
  its one model in every resample.
Resamples come from a fixed generator: the same inputs give the same interval.
"""

from __future__ import annotations

import base64
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

RESAMPLES = 2000
LEVEL = 0.95
SEED = 0


def pack_correct(correct: np.ndarray) -> str:
    """Per-image correctness (bool [n]) as text for a JSON file: base64 of the bits, n/8 bytes."""
    return base64.b64encode(np.packbits(np.asarray(correct, dtype=bool)).tobytes()).decode()


def unpack_correct(text: str, n: int) -> np.ndarray:
    """pack_correct's inverse, for a set of `n` images."""
    bits = np.unpackbits(np.frombuffer(base64.b64decode(text), dtype=np.uint8))
    if len(bits) < n:
        raise ValueError(f"packed correctness holds {len(bits)} images, not {n}")
    return bits[:n].astype(bool)


def _percentiles(draws: np.ndarray) -> tuple[float, float]:
    tail = 100 * (1 - LEVEL) / 2
    low, high = np.percentile(draws, [tail, 100 - tail])
    return float(low), float(high)


def drop_interval(
    correct: np.ndarray, reference_correct: np.ndarray, resamples: int = RESAMPLES
) -> tuple[float, float]:
    """95% interval of the top-1 drop in pp (the reference's accuracy minus the model's) over the same images."""
    n = len(correct)
    if n == 0:
        raise ValueError("no images")
    lost = int((reference_correct & ~correct).sum())  # only the reference right: +1 each
    gained = int((correct & ~reference_correct).sum())  # only the model right: -1 each
    counts = np.random.default_rng(SEED).multinomial(n, [lost / n, gained / n, (n - lost - gained) / n], resamples)
    return _percentiles(100.0 * (counts[:, 0] - counts[:, 1]) / n)


@dataclass
class RowSamples:
    """One comparison row's per-image correctness: per seed (in the comparison's seed order), per set."""

    per_seed: list[dict[str, np.ndarray]]


@dataclass(frozen=True)
class Difference:
    """A row's metric minus a reference row's, in fractions, with its 95% interval; tied when the interval holds 0."""

    value: float
    low: float
    high: float

    @property
    def tied(self) -> bool:
        return self.low <= 0.0 <= self.high


Metric = Callable[[dict[str, Any]], Any]  # per-set top-1 (each [B] resamples, or a float) -> the metric


def _row_draws(row: RowSamples, weights: dict[str, np.ndarray], seeds: np.ndarray) -> dict[str, np.ndarray]:
    """Each set's top-1 under every resample, [B], the seeds drawn (seeds [B, k]) and averaged."""
    k = len(row.per_seed)
    out = {}
    for name, w in weights.items():
        per_seed = np.stack([w @ seed[name].astype(np.float32) for seed in row.per_seed])  # [k, B]
        picked = per_seed[seeds % k, np.arange(len(w))[:, None]]  # [B, k']: a one-model row keeps its model
        out[name] = picked.mean(axis=1)
    return out


def _point(row: RowSamples) -> dict[str, float]:
    names = row.per_seed[0]
    return {name: float(np.mean([seed[name].mean() for seed in row.per_seed])) for name in names}


def paired_differences(
    rows: dict[str, RowSamples],
    references: list[str],
    metrics: dict[str, Metric],
    resamples: int = RESAMPLES,
) -> dict[str, dict[str, dict[str, Difference]]]:
    """For each reference row, each row's difference to it in each metric, with its paired-bootstrap 95% interval:
    {reference: {row: {metric: Difference}}}. `metrics` map a row's per-set top-1 (under one resample, or the
    point estimate) to the metric."""
    rng = np.random.default_rng(SEED)
    first = rows[references[0]].per_seed[0]
    weights = {}
    for name, correct in first.items():  # the same images for every row and seed
        n = len(correct)
        weights[name] = (rng.multinomial(n, np.full(n, 1.0 / n), resamples) / n).astype(np.float32)
    k = max(len(row.per_seed) for row in rows.values())
    seeds = rng.integers(0, k, (resamples, k))
    draws = {label: _row_draws(row, weights, seeds) for label, row in rows.items()}
    points = {label: _point(row) for label, row in rows.items()}
    out: dict[str, dict[str, dict[str, Difference]]] = {}
    for ref in references:
        out[ref] = {}
        for label in rows:
            out[ref][label] = {}
            for metric, of in metrics.items():
                value = float(of(points[label]) - of(points[ref]))
                low, high = _percentiles(of(draws[label]) - of(draws[ref]))
                out[ref][label][metric] = Difference(value, low, high)
    return out
