"""Batched evaluation of any runner over ID and OOD sets, producing the report of serve/report.py.

Loading runs in DataLoader workers while the runner computes, so the model, not the JPEG decoder, sets the pace.
Images travel as uint8 pixels and are normalized once per batch (data.transforms.BatchedEvalTransform, the same
floats as open_clip's per-image transform); a set's decoded pixels can be held in memory (hold_decoded, keep_decoded) so
that evaluating further models on it reads no file.
Per-dataset logits are kept so that a second runner can be compared with the first (agreement, logit drift).
Under torchrun every set is sharded over the ranks and each rank's logits gathered back into the set's order, so
every rank holds the report one process would have made (its throughput is the ranks' together).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from common.distributed import Ranks, current
from common.errors import UserError, check_number
from common.progress import ProgressHook
from data.labeled import LabeledImages
from data.loading import (
    Batch,
    DecodedImages,
    ImageDataset,
    NormalizingCollate,
    check_some_readable,
    collate_skipping,
    make_loader,
)
from data.specs import EvalSet
from data.transforms import batched_eval_transform, eval_transform
from serve.metrics import (
    agreement,
    class_accuracies,
    confusion,
    expected_calibration_error,
    gate,
    group_accuracies,
    summarize,
    topk_accuracy,
)
from serve.report import DatasetScores, Report, RunsOn, Throughput
from serve.runner import Runner


class ModelOutputError(UserError):
    """A model whose logits are not finite: its accuracies would be garbage, so no report is written."""


@dataclass
class DatasetResult:
    name: str
    role: str
    logits: np.ndarray  # [n, C]
    labels: np.ndarray  # [n]
    groups: np.ndarray  # [n] index into group_names, -1 for none
    group_names: list[str]
    skipped: int
    class_names: list[str] = field(default_factory=list)  # the set's classes, which `labels` index

    def entry(self) -> DatasetScores:
        per_group = group_accuracies(self.logits, self.labels, self.groups, self.group_names)
        return DatasetScores(
            role=self.role,
            n=int(len(self.labels)),
            skipped=self.skipped,
            top1=topk_accuracy(self.logits, self.labels, 1),
            top5=topk_accuracy(self.logits, self.labels, 5),
            worst_group_top1=min(per_group.values()) if per_group else None,
            groups=per_group,
            ece=expected_calibration_error(self.logits, self.labels),
            classes=list(self.class_names),
            per_class_top1=class_accuracies(self.logits, self.labels, self.class_names),
            confusion=confusion(self.logits, self.labels),
        )


@dataclass
class Timing:
    batch_seconds: list[float]
    images: int
    wall_seconds: float
    batch_size: int

    local_images: int = 0  # this rank's share of `images`

    def entry(self, ranks: Ranks) -> Throughput:
        """Throughput of all ranks together: images over the wall time, and the sum of the ranks' model-only
        rates (each measured on its own share); latencies are this rank's batches'."""
        model_rate = self.local_images / max(sum(self.batch_seconds), 1e-9)
        ms = np.array(self.batch_seconds or [0.0]) * 1000
        return Throughput(
            images_per_s=self.images / max(self.wall_seconds, 1e-9),
            model_images_per_s=float(ranks.sum(torch.tensor([model_rate], dtype=torch.float64)).item()),
            batch_size=self.batch_size,
            latency_ms_p50=float(np.percentile(ms, 50)),
            latency_ms_p99=float(np.percentile(ms, 99)),
        )


PRELOAD_MAX_BYTES = 4 * 2**30  # decoded images held in memory at most: 3 x H x W bytes each (224 px: 150 KB)


def eval_items(
    data: LabeledImages, preprocess: dict[str, Any], keep_pixels: bool = False
) -> tuple[ImageDataset, Callable[[list], Batch]]:
    """The dataset of `data` under a model's evaluation preprocessing and the collate function that completes it:
    images decoded to uint8 pixels and normalized per batch (data.transforms.BatchedEvalTransform, equal to
    open_clip's per-image transform; `keep_pixels` keeps them in Batch.pixels), or open_clip's transform per image
    when it cannot be split."""
    batched = batched_eval_transform(preprocess)
    if batched is None:
        return ImageDataset(data, eval_transform(preprocess)), collate_skipping
    return ImageDataset(data, batched.to_uint8), NormalizingCollate(batched.normalize, keep_pixels)


def _fit_in_memory(sets: list[EvalSet], preprocess: dict[str, Any]) -> bool:
    """Whether the sets' images, decoded to uint8 pixels, take at most PRELOAD_MAX_BYTES (and can be held at all)."""
    batched = batched_eval_transform(preprocess)
    if batched is None:
        return False  # no uint8 form to hold
    width, height = batched.output_size
    return sum(len(ev.data.samples) for ev in sets) * 3 * height * width <= PRELOAD_MAX_BYTES


def hold_decoded(sets: list[EvalSet], preprocess: dict[str, Any]) -> list[EvalSet]:
    """Copies of the sets that hold their images, decoded (and resized) for `preprocess`, from their first evaluation
    on, for evaluating many models of one preprocessing on the same images (a comparison, a WiSE-FT sweep); sets
    that would take more than PRELOAD_MAX_BYTES stay read from disk at each evaluation."""
    if not _fit_in_memory(sets, preprocess):
        return sets
    return [replace(ev, decoded=DecodedImages(), decoded_for=preprocess) for ev in sets]


def evaluate_set(
    runner: Runner,
    ev: EvalSet,
    batch_size: int,
    num_workers: int,
    timing: Timing,
    progress: ProgressHook | None,
    keep_decoded: bool = False,
) -> DatasetResult:
    """One set's results; `keep_decoded` holds its decoded images on `ev` (ev.decoded) for the next evaluation."""
    check_some_readable(ev.data)
    ranks = current()
    share = ranks.shard(range(len(ev.data.samples)))  # everything with one process
    loader, held = _loader(ev, runner.spec.classifier.preprocess, share, batch_size, num_workers, keep_decoded)
    logits, rows, skipped, done = [], [], 0, 0
    for batch in loader:
        skipped += batch.skipped
        if held is not None and batch.pixels is not None:
            held.keep(ev.data, batch.indices, batch.pixels)
        if len(batch.labels):
            start = time.perf_counter()
            logits.append(torch.from_numpy(np.require(runner.infer(batch.images), np.float32, ["W"])))
            timing.batch_seconds.append(time.perf_counter() - start)
            rows.append(torch.stack([batch.indices, batch.labels, batch.groups], dim=1))
        done += len(batch.labels) + batch.skipped
        if progress:
            progress(ev.data.name, done, len(share))
    if held is not None:
        held.keep_unreadable(ev.data, share)
    timing.local_images += sum(len(r) for r in rows)
    n_classes = len(runner.spec.classes)
    all_logits, all_rows = _in_set_order(
        ranks,
        torch.cat(logits) if logits else torch.zeros((0, n_classes)),
        torch.cat(rows) if rows else torch.zeros((0, 3), dtype=torch.long),
    )
    result = DatasetResult(
        name=ev.data.name,
        role=ev.role,
        logits=pooled_logits(all_logits.numpy(), ev.logit_pool),
        labels=all_rows[:, 1].numpy(),
        groups=all_rows[:, 2].numpy(),
        group_names=ev.data.groups,
        skipped=int(ranks.sum(torch.tensor([skipped], dtype=torch.float64)).item()),
        class_names=list(ev.data.classes),
    )
    broken = int((~np.isfinite(result.logits)).any(axis=1).sum())
    if broken:
        raise ModelOutputError(
            f"{runner.artifact} gave non-finite logits for {broken} of {len(result.labels)} images of "
            f"{ev.data.name!r}: the model is broken (a diverged training, or an overflow in reduced precision)"
        )
    return result


def pooled_logits(logits: np.ndarray, pool: list[list[int]] | None) -> np.ndarray:
    """The set's own logits: for each of its classes the highest of the model logits `pool` gives it (ImageNet-R
    scored on its 200 classes, ObjectNet's classes each over its ImageNet classes); all of them when `pool` is None."""
    if pool is None:
        return logits
    out = np.empty((len(logits), len(pool)), dtype=logits.dtype)
    for j, indices in enumerate(pool):
        out[:, j] = logits[:, indices].max(axis=1)
    return out


def _loader(
    ev: EvalSet, preprocess: dict[str, Any], share: list[int], batch_size: int, num_workers: int, keep_decoded: bool
) -> tuple[DataLoader, DecodedImages | None]:
    """The loader over this rank's `share` of the set, reading held images where the set has them for this
    preprocessing, and the DecodedImages its batches are to be kept in (None: none to keep)."""
    held = ev.decoded if ev.decoded is not None and ev.decoded_for == preprocess else None
    if held is None and keep_decoded:
        held = ev.decoded = DecodedImages()
        ev.decoded_for = preprocess
    filling = held is not None and not all(held.holds(ev.data.samples[i].path) for i in share)
    base, collate = eval_items(ev.data, preprocess, keep_pixels=filling)
    dataset: Dataset = held.over(base) if held is not None else base
    # With every image held there is nothing to decode: worker processes would only add their start and copies.
    workers = 0 if held is not None and not filling else num_workers
    loader = make_loader(
        dataset, batch_size, share, num_workers=workers, pin_memory=torch.cuda.is_available(), collate=collate
    )
    return loader, held if filling else None


def _in_set_order(ranks: Ranks, logits: torch.Tensor, rows: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Every rank's logits and (index, label, group) rows, gathered and put back in the set's order."""
    if not ranks.distributed:
        return logits, rows
    all_logits, all_rows = torch.cat(ranks.gather_rows(logits)), torch.cat(ranks.gather_rows(rows))
    order = torch.argsort(all_rows[:, 0])
    return all_logits[order], all_rows[order]


def evaluate(
    runner: Runner,
    sets: list[EvalSet],
    batch_size: int = 64,
    num_workers: int = 0,
    progress: ProgressHook | None = None,
    keep_decoded: bool = False,
) -> tuple[Report, dict[str, DatasetResult]]:
    """Runs `runner` over every set; returns the report (without reference) and the raw per-set results.

    `keep_decoded` holds the decoded images on the sets (EvalSet.decoded) when they fit in PRELOAD_MAX_BYTES, so
    that evaluating another model of the same preprocessing on them reads no file: this evaluation's throughput
    still includes decoding, the next one's does not."""
    check_number("batch size", batch_size, 1)
    check_number("workers", num_workers, 0)
    keep = keep_decoded and _fit_in_memory(sets, runner.spec.classifier.preprocess)
    timing = Timing([], 0, 0.0, batch_size)
    start = time.perf_counter()
    results = {ev.data.name: evaluate_set(runner, ev, batch_size, num_workers, timing, progress, keep) for ev in sets}
    timing.wall_seconds = time.perf_counter() - start
    timing.images = sum(len(r.labels) for r in results.values())
    datasets = {name: r.entry() for name, r in results.items()}
    report = Report(
        backend=runner.backend,
        artifact=runner.artifact,
        precision=runner.precision,
        classes=list(runner.spec.classes),
        datasets=datasets,
        summary=summarize(datasets),
        throughput=timing.entry(current()),
        runs_on=runner.runs_on,
    )
    return report, results


def with_reference(
    report: Report,
    results: dict[str, DatasetResult],
    reference: dict[str, DatasetResult],
    reference_report: Report,
    max_drop_pp: float | None,
) -> Report:
    """Adds agreement with a reference (its results and report) per dataset and, given a limit, the accuracy-drop
    gate; the report names the reference's artifact and what ran it."""
    agreements = {name: agreement(r.logits, reference[name].logits, r.labels) for name, r in results.items()}
    limit = gate(agreements, max_drop_pp) if max_drop_pp is not None else None
    ran = RunsOn(reference_report.backend, reference_report.precision, reference_report.runs_on)
    return replace(report, reference=reference_report.artifact, reference_runs_on=ran, agreement=agreements, gate=limit)


def evaluate_against(
    runner: Runner,
    reference: Runner,
    sets: list[EvalSet],
    max_drop_pp: float | None,
    batch_size: int = 64,
    num_workers: int = 0,
    progress: ProgressHook | None = None,
) -> Report:
    """Evaluates `runner` and `reference` on the same sets; the report of `runner` with agreement and gate."""
    check_same_classes(runner, reference)
    sets = [replace(ev) for ev in sets]  # the decoded images held for the reference's pass go with these copies
    report, results = evaluate(runner, sets, batch_size, num_workers, progress, keep_decoded=True)
    ref_report, ref_results = evaluate(reference, sets, batch_size, num_workers, progress)
    return with_reference(report, results, ref_results, ref_report, max_drop_pp)


def check_same_classes(runner: Runner, reference: Runner) -> None:
    """Agreement compares logits column by column: the two must classify the same classes in the same order."""
    if reference.spec.classes != runner.spec.classes:
        raise UserError(
            f"the reference {reference.artifact} classifies other classes (or in another order) than "
            f"{runner.artifact}: agreement would compare different logits"
        )
