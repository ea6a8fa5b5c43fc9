"""Writing the evaluation report: report.json (DESIGN.md schema), report.md and a bar chart per dataset."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from common.errors import UserError
from common.files import atomic_write_json, atomic_write_text, check_creatable, writable_dir


def percent(x: float | None) -> str:
    """A fraction as a percentage with one decimal; '-' where there is none (a set without images)."""
    return "-" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{100 * x:.1f}"


def signed_pp(x: float | None) -> str:
    """A drop in percentage points with its sign; '-' where there is none."""
    return "-" if x is None else f"{x:+.2f}"


def table_rows(report: dict[str, Any]) -> list[list[str]]:
    """One row per dataset: name, role, n, skipped, top-1, top-5, worst-group top-1 (percent), and drop if compared."""
    rows = []
    for name, d in report["datasets"].items():
        row = [
            name,
            d["role"],
            str(d["n"]),
            str(d["skipped"]),
            percent(d["top1"]),
            percent(d["top5"]),
            percent(d["worst_group_top1"]),
        ]
        if report.get("agreement"):
            a = report["agreement"][name]
            diff = a["max_abs_logit_diff"]
            row += [signed_pp(a["top1_drop_pp"]), percent(a["top1_agreement"]), "-" if diff is None else f"{diff:.3g}"]
        rows.append(row)
    return rows


def markdown_table(header: list[str], rows: list[list[str]]) -> list[str]:
    """A markdown table's lines: the header, the rule, one line per row."""
    return ["| " + " | ".join(header) + " |", "|" + "---|" * len(header), *("| " + " | ".join(r) + " |" for r in rows)]


def table_header(report: dict[str, Any]) -> list[str]:
    head = ["dataset", "role", "n", "skipped", "top1 %", "top5 %", "worst-group %"]
    if report.get("agreement"):
        head += ["drop pp", "agree %", "max|dlogit|"]
    return head


def markdown(report: dict[str, Any]) -> str:
    s = report["summary"]
    t = report["throughput"]
    lines = [
        f"{MARKDOWN_TITLE} {report['backend']} ({report['precision']})",
        "",
        f"Artifact: `{report['artifact']}`"
        + (f"; reference: `{report['reference']}`" if report.get("reference") else ""),
        "",
        *markdown_table(table_header(report), table_rows(report)),
        "",
        f"ID top-1 {percent(s['id_top1'])}%, mean OOD top-1 {percent(s['ood_top1_mean'])}%, "
        f"lowest worst-group top-1 {percent(s['worst_group_top1_min'])}%.",
        f"Throughput {t['images_per_s']:.0f} images/s end to end ({t['model_images_per_s']:.0f} in the model), "
        f"batch {t['batch_size']}, latency p50 {t['latency_ms_p50']:.2f} ms, p99 {t['latency_ms_p99']:.2f} ms.",
    ]
    if report.get("gate"):
        g = report["gate"]
        verdict = "PASSED" if g["passed"] else "FAILED"
        lines.append(
            f"Gate {verdict}: worst drop {g['worst_drop_pp']:+.2f} pp against a limit of {g['max_drop_pp']} pp."
        )
    return "\n".join(lines) + "\n"


def plot(report: dict[str, Any], path: Path) -> None:
    """A bar chart of top-1 and worst-group top-1 per dataset, ID and OOD colored apart."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(report["datasets"])
    top1 = [(report["datasets"][n]["top1"] or 0) * 100 for n in names]
    worst = [(report["datasets"][n]["worst_group_top1"] or 0) * 100 for n in names]
    colors = ["tab:blue" if report["datasets"][n]["role"] == "id" else "tab:orange" for n in names]
    fig, ax = plt.subplots(figsize=(1.6 * len(names) + 2, 3.6))
    x = range(len(names))
    ax.bar([i - 0.2 for i in x], top1, width=0.4, color=colors, label="top-1")
    ax.bar([i + 0.2 for i in x], worst, width=0.4, color=colors, alpha=0.45, label="worst-group top-1")
    if report.get("agreement"):  # the reference's top-1, to see each drop at a glance
        ref = [top1[i] + (report["agreement"][n]["top1_drop_pp"] or 0) for i, n in enumerate(names)]
        ax.scatter([i - 0.2 for i in x], ref, marker="_", s=900, color="black", label="reference top-1", zorder=3)
    ax.set_xticks(list(x), names, rotation=15)
    ax.set_ylim(0, 100)
    ax.set_ylabel("%")
    ax.set_title(f"{report['backend']} ({report['precision']}): ID blue, OOD orange")
    ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    tmp = path.with_name(path.name + ".tmp.png")
    fig.savefig(tmp, dpi=110)
    plt.close(fig)
    tmp.replace(path)


REPORT_KEYS = {"backend", "artifact", "precision", "datasets", "summary"}
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
        data = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return False
    return isinstance(data, dict) and REPORT_KEYS <= data.keys()


def write_report(report: dict[str, Any], json_path: Path) -> list[Path]:
    """Writes report.json, and beside it report.md and report.png (same stem); returns the paths written. Refuses
    (UserError) to overwrite files that are not earlier reports."""
    json_path = Path(json_path)
    check_report_path(json_path)
    writable_dir(json_path.parent, "report folder")
    md_path, png_path = json_path.with_suffix(".md"), json_path.with_suffix(".png")
    atomic_write_json(json_path, report)
    atomic_write_text(md_path, markdown(report))
    plot(report, png_path)
    return [json_path, md_path, png_path]
