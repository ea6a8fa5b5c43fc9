"""The evaluation report: its record (`Report`, with its datasets, agreement and gate; report.json, docs/DESIGN.md
gives the schema), `read_report`, its one reader, and report.md's text. serve/report_files.py writes the files."""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from common.errors import UserError
from common.markdown import markdown_table
from common.typed_json import from_json


@dataclass
class DatasetScores:
    """One evaluation set's scores (fractions; None for a set without images)."""

    role: str  # "id" or "ood"
    n: int
    skipped: int  # unreadable images left out
    top1: float | None
    top5: float | None
    worst_group_top1: float | None
    groups: dict[str, float] = field(default_factory=dict)  # top-1 per group
    ece: float | None = None  # expected calibration error (serve.metrics.expected_calibration_error)
    classes: list[str] = field(default_factory=list)  # the set's classes (its labels index them)
    per_class_top1: dict[str, float] = field(default_factory=dict)  # of the classes with images
    confusion: list[list[int]] = field(default_factory=list)  # [true, predicted, images], the counts not 0


@dataclass
class Agreement:
    """How far a model's logits are from its reference's on one set (serve.metrics.agreement)."""

    top1_agreement: float | None
    max_abs_logit_diff: float | None
    top1_drop_pp: float | None = None
    top1_drop_interval_pp: list[float] | None = None  # its 95% paired-bootstrap interval (serve.intervals)


@dataclass
class Gate:
    """The accuracy-drop gate: passed when no set's top-1 dropped by more than max_drop_pp."""

    max_drop_pp: float
    worst_drop_pp: float
    passed: bool
    worst_drop_interval_pp: list[float] | None = None  # the worst set's drop interval; the verdict is on the point

    def interval_text(self) -> str:
        """' (95% interval -0.10 to +0.90 pp)', or '' when there is none."""
        got = self.worst_drop_interval_pp
        return f" (95% interval {got[0]:+.2f} to {got[1]:+.2f} pp)" if got else ""


@dataclass
class Summary:
    id_top1: float | None  # mean over the ID sets
    ood_top1_mean: float | None
    worst_group_top1_min: float | None  # the lowest worst-group top-1 of any set


@dataclass
class RunsOn:
    """What ran a model: its backend, the precision it ran in, the device or provider (a reference's, in a report)."""

    backend: str
    precision: str
    device: str

    def __str__(self) -> str:
        return f"{self.backend} {self.precision} on {self.device}"


@dataclass
class Throughput:
    images_per_s: float  # end to end, over the wall time
    model_images_per_s: float  # in the model alone
    batch_size: int
    latency_ms_p50: float
    latency_ms_p99: float


@dataclass
class Report:
    """One model evaluated on its sets (report.json): written by write_report, read by read_report."""

    backend: str
    artifact: str
    precision: str
    classes: list[str]
    datasets: dict[str, DatasetScores]
    summary: Summary
    throughput: Throughput
    runs_on: str = "cpu"
    reference: str | None = None  # the reference's artifact, when compared with one
    reference_runs_on: RunsOn | None = None  # and what ran it (--reference-runtime's backend, its precision)
    agreement: dict[str, Agreement] | None = None  # per set, when compared
    gate: Gate | None = None  # when compared with a limit

    @property
    def failed(self) -> bool:
        """Whether it was gated and failed."""
        return self.gate is not None and not self.gate.passed

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def read_report(path: Path) -> Report:
    """The report in `path`; UserError when it is not one of ours or is damaged."""
    try:
        data = json.loads(Path(path).read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise UserError(f"cannot read report {path}: {err}") from err
    return from_json(Report, data, str(path), UserError)


def percent(x: float | None) -> str:
    """A fraction as a percentage with one decimal; '-' where there is none (a set without images)."""
    return "-" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{100 * x:.1f}"


def signed_pp(x: float | None) -> str:
    """A drop in percentage points with its sign; '-' where there is none."""
    return "-" if x is None else f"{x:+.2f}"


def interval_pp(interval: list[float] | None) -> str:
    """A 95% interval in pp, '[-0.10, +0.90]'; '-' where there is none."""
    return "-" if not interval else f"[{interval[0]:+.2f}, {interval[1]:+.2f}]"


def table_rows(report: Report) -> list[list[str]]:
    """One row per dataset: name, role, n, skipped, top-1, top-5, worst-group top-1 (percent), and drop if compared."""
    rows = []
    for name, d in report.datasets.items():
        row = [name, d.role, str(d.n), str(d.skipped), percent(d.top1), percent(d.top5), percent(d.worst_group_top1)]
        row.insert(5, percent(d.ece))
        if report.agreement:
            a = report.agreement[name]
            diff = a.max_abs_logit_diff
            row += [signed_pp(a.top1_drop_pp), interval_pp(a.top1_drop_interval_pp), percent(a.top1_agreement)]
            row.append("-" if diff is None else f"{diff:.3g}")
        rows.append(row)
    return rows


def table_header(report: Report) -> list[str]:
    head = ["dataset", "role", "n", "skipped", "top1 %", "ECE %", "top5 %", "worst-group %"]
    if report.agreement:
        head += ["drop pp", "95% interval", "agree %", "max|dlogit|"]
    return head


MARKDOWN_TITLE = "# Evaluation:"


def summary_line(s: Summary) -> str:
    """The summary in words, naming only what was measured (no "ID top-1 -%" when no ID set was evaluated)."""
    named = (
        ("ID top-1", s.id_top1),
        ("mean OOD top-1", s.ood_top1_mean),
        ("lowest worst-group top-1", s.worst_group_top1_min),
    )
    parts = [f"{label} {percent(value)}%" for label, value in named if percent(value) != "-"]
    if not parts:
        return "No set had an image to score."
    line = ", ".join(parts) + "."
    return line[0].upper() + line[1:]


def markdown(report: Report) -> str:
    s, t = report.summary, report.throughput
    ran = f" ({report.reference_runs_on})" if report.reference_runs_on else ""
    reference = f"; reference: `{report.reference}`{ran}" if report.reference else ""
    lines = [
        f"{MARKDOWN_TITLE} {report.backend} ({report.precision})",
        "",
        f"Artifact: `{report.artifact}`{reference}",
        "",
        *markdown_table(table_header(report), table_rows(report)),
        "",
        summary_line(s),
        f"Throughput {t.images_per_s:.0f} images/s end to end ({t.model_images_per_s:.0f} in the model), "
        f"batch {t.batch_size}, latency p50 {t.latency_ms_p50:.2f} ms, p99 {t.latency_ms_p99:.2f} ms.",
    ]
    if report.gate:
        g = report.gate
        verdict = "PASSED" if g.passed else "FAILED"
        lines.append(
            f"Gate {verdict}: worst drop {g.worst_drop_pp:+.2f} pp{g.interval_text()} against a limit of "
            f"{g.max_drop_pp} pp."
        )
    return "\n".join(lines) + "\n"
