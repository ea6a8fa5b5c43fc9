"""Several artifacts of one model evaluated side by side on the same sets, each compared with a reference backend
(`bench` and the pipeline take their rows from here)."""

from __future__ import annotations

import re
from dataclasses import replace
from pathlib import Path

from common.files import atomic_write_json, atomic_write_text
from common.markdown import markdown_table
from common.progress import ProgressHook
from data.specs import EvalSet
from serve.evaluate import DatasetResult, check_same_classes, evaluate, with_reference
from serve.metrics import worst_of
from serve.report import Report, percent, signed_pp
from serve.report_files import write_report
from serve.runner import Runner


def evaluate_side_by_side(
    runners: dict[str, Runner],
    sets: list[EvalSet],
    reference: str,
    gate_limits: dict[str, float | None],
    batch_size: int = 256,
    progress: ProgressHook | None = None,
) -> dict[str, Report]:
    """Reports per runner, keyed by row name.

    The runners named in `gate_limits` (the reference's exported artifacts) are compared with the runner named
    `reference`, which is evaluated once, each gated by its own limit in pp (None: compared, not gated); the others
    (a zero-shot baseline) stand alone. The images are decoded once for all runners of one preprocessing (held in
    memory where they fit): the first row's end-to-end throughput includes decoding, the others' does not, and
    model-only throughput is comparable across rows.
    """
    for name in gate_limits:
        check_same_classes(runners[name], runners[reference])
    sets = [replace(ev) for ev in sets]  # decoded images are held on these copies, not on the caller's sets
    results: dict[str, tuple[Report, dict[str, DatasetResult]]] = {}
    for name, runner in runners.items():
        hook = (lambda n, d, t, row=name: progress(f"{row}: {n}", d, t)) if progress else None
        results[name] = evaluate(runner, sets, batch_size, 0, hook, keep_decoded=True)
    ref_report, ref_results = results[reference]
    reports = {}
    for name, (report, per_set) in results.items():
        if name in gate_limits:
            report = with_reference(report, per_set, ref_results, ref_report, gate_limits[name])
        reports[name] = report
    return reports


def report_paths(names: list[str], out: Path) -> dict[str, Path]:
    """Where each row's report goes: beside `out` (a report.json path), as <stem>-<row>.json
    ('proreg (onnxruntime fp16)' -> report-proreg-onnxruntime-fp16.json)."""
    out = Path(out)
    return {name: out.with_name(f"{out.stem}-{_slug(name)}.json") for name in names}


def write_reports(reports: dict[str, Report], out: Path) -> list[Path]:
    """Writes each row's report (with its .md and .png) to its report_paths place, and the side-by-side table to
    summary_path(out) (.json and .md); returns the reports' .json paths."""
    paths = report_paths(list(reports), out)
    for name, report in reports.items():
        write_report(report, paths[name])
    write_summary(reports, paths, summary_path(out))
    return list(paths.values())


SUMMARY_SUFFIX = "-summary"


def summary_path(out: Path) -> Path:
    """Where the side-by-side table goes: <stem>-summary.json beside `out` (and .md)."""
    return Path(out).with_name(f"{Path(out).stem}{SUMMARY_SUFFIX}.json")


def write_summary(reports: dict[str, Report], paths: dict[str, Path], path: Path) -> None:
    """The side-by-side table as JSON (a row per model with its report file, gate and speed; the recommended row)
    and as Markdown (the printed table and the recommendation)."""
    best = recommended(reports)
    rows = {
        name: {
            "report": paths[name].name,
            "backend": rep.backend,
            "precision": rep.precision,
            "artifact": rep.artifact,
            "top1": {s: d.top1 for s, d in rep.datasets.items()},
            "ood_top1_mean": rep.summary.ood_top1_mean,
            "worst_drop_pp": worst_of(rep.agreement or {}, "top1_drop_pp", max),
            "min_agreement": worst_of(rep.agreement or {}, "top1_agreement", min),
            "model_images_per_s": rep.throughput.model_images_per_s,
            "gate": None if rep.gate is None else {"passed": rep.gate.passed, "max_drop_pp": rep.gate.max_drop_pp},
        }
        for name, rep in reports.items()
    }
    atomic_write_json(path, {"rows": rows, "recommended": best})
    header, table = side_by_side_rows(reports)
    verdict = (
        f"Recommended for this machine: {best} (the fastest that passed its gate)."
        if best
        else "No artifact passed its gate: nothing to recommend."
        if any(rep.gate for rep in reports.values())
        else "No row was gated (no reference): nothing to recommend."
    )
    lines = ["# Side by side: top-1 %", "", *markdown_table(header, table), "", verdict, ""]
    atomic_write_text(path.with_suffix(".md"), "\n".join(lines))


def _slug(name: str) -> str:
    """'proreg (onnxruntime fp16)' -> 'proreg-onnxruntime-fp16', for file names."""
    return re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")


def recommended(reports: dict[str, Report]) -> str | None:
    """The artifact to serve on this machine: of the rows that were gated and passed, the one with the highest
    model-only throughput measured in this comparison (None when none passed)."""
    passed = {name: rep for name, rep in reports.items() if rep.gate and rep.gate.passed}
    if not passed:
        return None
    return max(passed, key=lambda name: passed[name].throughput.model_images_per_s)


def side_by_side_rows(reports: dict[str, Report]) -> tuple[list[str], list[list[str]]]:
    """A header and one row per report: top-1 per set, mean OOD, the worst drop against the reference, model-only
    images/s, and the recommended row marked."""
    sets = list(next(iter(reports.values())).datasets)
    header = ["model / backend", *sets, "OOD mean", "worst drop pp", "min agree %", "images/s"]
    best = recommended(reports)
    rows = []
    for name, rep in reports.items():
        agreement = rep.agreement or {}
        rows.append(
            [
                f"{name} *" if name == best else name,
                *(percent(rep.datasets[s].top1) for s in sets),
                percent(rep.summary.ood_top1_mean),
                signed_pp(worst_of(agreement, "top1_drop_pp", max)),
                percent(worst_of(agreement, "top1_agreement", min)),
                f"{rep.throughput.model_images_per_s:.0f}",
            ]
        )
    return header, rows


def baseline_speed(reports: dict[str, Report]) -> tuple[str, float] | None:
    """(label, model-only images/s) of the row every speed-up is stated against: the FP32 ONNX file on the runtime
    that runs ONNX files by default (ONNX Runtime), when it is among `reports`."""
    from serve.backends import BACKENDS, backends_running

    name = backends_running(".onnx")[0]
    rows = [rep for row, rep in reports.items() if row.endswith(f"({name} fp32)")]
    return (f"{BACKENDS[name].label} FP32", rows[0].throughput.model_images_per_s) if rows else None
