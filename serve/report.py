"""The evaluation report: its record (`Report`, with its datasets, agreement and gate), and report.json (docs/DESIGN.md
gives the schema), report.md and a bar chart per dataset written from it; `read_report` is its one reader."""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from common.errors import UserError
from common.files import atomic_write_json, atomic_write_text, check_creatable, writable_dir
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


@dataclass
class Agreement:
    """How far a model's logits are from its reference's on one set (serve.metrics.agreement)."""

    top1_agreement: float | None
    max_abs_logit_diff: float | None
    top1_drop_pp: float | None = None


@dataclass
class Gate:
    """The accuracy-drop gate: passed when no set's top-1 dropped by more than max_drop_pp."""

    max_drop_pp: float
    worst_drop_pp: float
    passed: bool


@dataclass
class Summary:
    id_top1: float | None  # mean over the ID sets
    ood_top1_mean: float | None
    worst_group_top1_min: float | None  # the lowest worst-group top-1 of any set


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


def table_rows(report: Report) -> list[list[str]]:
    """One row per dataset: name, role, n, skipped, top-1, top-5, worst-group top-1 (percent), and drop if compared."""
    rows = []
    for name, d in report.datasets.items():
        row = [name, d.role, str(d.n), str(d.skipped), percent(d.top1), percent(d.top5), percent(d.worst_group_top1)]
        if report.agreement:
            a = report.agreement[name]
            diff = a.max_abs_logit_diff
            row += [signed_pp(a.top1_drop_pp), percent(a.top1_agreement), "-" if diff is None else f"{diff:.3g}"]
        rows.append(row)
    return rows


def markdown_table(header: list[str], rows: list[list[str]]) -> list[str]:
    """A markdown table's lines: the header, the rule, one line per row."""
    return ["| " + " | ".join(header) + " |", "|" + "---|" * len(header), *("| " + " | ".join(r) + " |" for r in rows)]


def table_header(report: Report) -> list[str]:
    head = ["dataset", "role", "n", "skipped", "top1 %", "top5 %", "worst-group %"]
    if report.agreement:
        head += ["drop pp", "agree %", "max|dlogit|"]
    return head


def markdown(report: Report) -> str:
    s, t = report.summary, report.throughput
    reference = f"; reference: `{report.reference}`" if report.reference else ""
    lines = [
        f"{MARKDOWN_TITLE} {report.backend} ({report.precision})",
        "",
        f"Artifact: `{report.artifact}`{reference}",
        "",
        *markdown_table(table_header(report), table_rows(report)),
        "",
        f"ID top-1 {percent(s.id_top1)}%, mean OOD top-1 {percent(s.ood_top1_mean)}%, "
        f"lowest worst-group top-1 {percent(s.worst_group_top1_min)}%.",
        f"Throughput {t.images_per_s:.0f} images/s end to end ({t.model_images_per_s:.0f} in the model), "
        f"batch {t.batch_size}, latency p50 {t.latency_ms_p50:.2f} ms, p99 {t.latency_ms_p99:.2f} ms.",
    ]
    if report.gate:
        g = report.gate
        verdict = "PASSED" if g.passed else "FAILED"
        lines.append(f"Gate {verdict}: worst drop {g.worst_drop_pp:+.2f} pp against a limit of {g.max_drop_pp} pp.")
    return "\n".join(lines) + "\n"


def plot(report: Report, path: Path) -> None:
    """A bar chart of top-1 and worst-group top-1 per dataset, ID and OOD colored apart."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(report.datasets)
    top1 = [(report.datasets[n].top1 or 0) * 100 for n in names]
    worst = [(report.datasets[n].worst_group_top1 or 0) * 100 for n in names]
    colors = ["tab:blue" if report.datasets[n].role == "id" else "tab:orange" for n in names]
    fig, ax = plt.subplots(figsize=(1.6 * len(names) + 2, 3.6))
    x = range(len(names))
    ax.bar([i - 0.2 for i in x], top1, width=0.4, color=colors, label="top-1")
    ax.bar([i + 0.2 for i in x], worst, width=0.4, color=colors, alpha=0.45, label="worst-group top-1")
    if report.agreement:  # the reference's top-1, to see each drop at a glance
        ref = [top1[i] + (report.agreement[n].top1_drop_pp or 0) for i, n in enumerate(names)]
        ax.scatter([i - 0.2 for i in x], ref, marker="_", s=900, color="black", label="reference top-1", zorder=3)
    ax.set_xticks(list(x), names, rotation=15)
    ax.set_ylim(0, 100)
    ax.set_ylabel("%")
    ax.set_title(f"{report.backend} ({report.precision}): ID blue, OOD orange")
    ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    tmp = path.with_name(path.name + ".tmp.png")
    fig.savefig(tmp, dpi=110)
    plt.close(fig)
    tmp.replace(path)


MARKDOWN_TITLE = "# Evaluation:"


def check_report_path(json_path: Path) -> None:
    """Refuses a report path that would overwrite anything but an earlier report of ours: `--out` names a .json
    file, and report.md and report.png are written beside it."""
    json_path = Path(json_path)
    if json_path.suffix.lower() != ".json":
        raise UserError(f"--out names the report's .json file (report.md and .png go beside it), not {json_path}")
    for path in (json_path, json_path.with_suffix(".md"), json_path.with_suffix(".png")):
        if path.is_dir():
            raise UserError(f"{path} is a folder; the report cannot be written there")
    if json_path.exists() and not _is_our_report(json_path):
        raise UserError(f"{json_path} exists and is not a report of ours: refusing to overwrite it")
    md_path = json_path.with_suffix(".md")
    if md_path.exists() and not md_path.read_text(errors="replace").startswith(MARKDOWN_TITLE):
        raise UserError(f"{md_path} exists and is not a report of ours: refusing to overwrite it")
    if json_path.with_suffix(".png").exists() and not json_path.exists():
        raise UserError(f"{json_path.with_suffix('.png')} exists without its report: refusing to overwrite it")
    check_creatable(json_path.parent, "report folder")


def _is_our_report(path: Path) -> bool:
    try:
        read_report(path)
    except UserError:
        return False
    return True


def write_report(report: Report, json_path: Path) -> list[Path]:
    """Writes report.json, and beside it report.md and report.png (same stem); returns the paths written. Refuses
    (UserError) to overwrite files that are not earlier reports."""
    json_path = Path(json_path)
    check_report_path(json_path)
    writable_dir(json_path.parent, "report folder")
    md_path, png_path = json_path.with_suffix(".md"), json_path.with_suffix(".png")
    atomic_write_json(json_path, report.to_dict())
    atomic_write_text(md_path, markdown(report))
    plot(report, png_path)
    return [json_path, md_path, png_path]
