"""report.html: one self-contained page per run directory (or comparison, or bench folder) with everything in it that
a person would rather look at than parse: what was trained and how, the training curves, every evaluation with its
gate, every artifact with its size, speed and drop and the one to serve, a comparison's leaderboard, a WiSE-FT
sweep. Images are inline (data: URIs), there is no script and no fetch: it opens from disk, offline, anywhere."""

from __future__ import annotations

import base64
import contextlib
import html
import json
from pathlib import Path
from typing import Any

from common.files import atomic_write_text
from common.run import RUN_FILE, open_run
from serve.leaderboard import leaderboard_table, read_leaderboard
from serve.report import Report, percent, read_report, signed_pp, table_header, table_rows
from serve.side_by_side import SUMMARY_SUFFIX, recommended
from train.curves import CURVES_FILE
from workflows.tracking import flat

PAGE = "report.html"
STYLE = """
body { font: 14px/1.45 system-ui, sans-serif; margin: 2em auto; max-width: 1200px; color: #222; padding: 0 1em; }
h1 { font-size: 1.6em; } h2 { border-bottom: 1px solid #ddd; padding-bottom: .2em; margin-top: 2em; }
table { border-collapse: collapse; margin: .6em 0; } td, th { border: 1px solid #ccc; padding: .25em .6em; }
th { background: #f4f4f4; } td.num { text-align: right; font-variant-numeric: tabular-nums; }
img { max-width: 100%; border: 1px solid #eee; margin: .4em 0; } code { background: #f4f4f4; padding: 0 .2em; }
.passed { color: #1a7f37; font-weight: bold; } .failed { color: #cf222e; font-weight: bold; }
.note { color: #666; }
"""


def esc(value: object) -> str:
    return html.escape(str(value))


def image(path: Path, alt: str) -> str:
    """The PNG inline, or nothing when it is not there."""
    if not path.is_file():
        return ""
    data = base64.b64encode(path.read_bytes()).decode()
    return f'<p><img src="data:image/png;base64,{data}" alt="{esc(alt)}"></p>'


def table(header: list[str] | None, rows: list[list[str]]) -> str:
    """An HTML table (no header row for `header` None: a list of facts, each row's first cell its name)."""

    def cell(value: str, tag: str) -> str:
        numeric = header and tag == "td" and value.replace(".", "", 1).lstrip("+-").replace(" ± ", "").isdigit()
        return f"<{tag}{' class=num' if numeric else ''}>{esc(value)}</{tag}>"

    head = "<thead><tr>" + "".join(cell(h, "th") for h in header) + "</tr></thead>" if header else ""
    body = "".join(
        "<tr>" + "".join(cell(c, "th" if header is None and i == 0 else "td") for i, c in enumerate(row)) + "</tr>"
        for row in rows
    )
    return f"<table>{head}<tbody>{body}</tbody></table>"


def _method(config: dict[str, Any]) -> str:
    """The recipe's name, else the method's, with its settings."""
    loss = config.get("loss", {})
    settings = ", ".join(f"{k} {v}" for k, v in loss.get("settings", {}).items())
    return f"{config.get('recipe') or loss.get('kind')}" + (f" ({loss.get('kind')}: {settings})" if settings else "")


def trained_section(folder: Path) -> str:
    """What was trained: model, data, method and resolved settings, seed, provenance; the curves."""
    run = open_run(folder)
    r = run.record
    c = r.classifier
    facts = [
        ["model", f"{c.model} ({c.pretrained})" if getattr(c, "pretrained", None) else str(c.model)],
        ["data", f"train {r.data.source.train} ({r.data.n_train} images), validation "
                 f"{r.data.source.val or f'{r.data.source.val_fraction:g} held out'} ({r.data.n_val} images)"],
        ["recipe" if r.train_config.get("recipe") else "method", _method(r.train_config)],
        ["seed", str(r.train_config.get("seed"))],
        ["status", f"{r.status}, step {r.progress.step} of {r.progress.total_steps}"],
        ["chosen checkpoint", f"step {r.best.step}, validation top-1 {percent(r.best.val_top1)}%"],
    ]  # fmt: skip
    if r.wise is not None:
        facts.append(["WiSE-FT", f"alpha {r.wise.alpha:g} with {r.wise.base}: validation top-1 "
                                 f"{percent(r.wise.val_top1)}%"])  # fmt: skip
    facts += [
        ["created", r.created],
        ["git commit", r.git_commit or "-"],
        ["training time", f"{r.train_seconds:.0f} s"],
    ]
    parts = ["<h2>What was trained</h2>", table(None, facts)]
    parts += [
        "<details><summary>Resolved settings</summary>",
        table(
            ["setting", "value"],
            [[k, v if isinstance(v, str) else json.dumps(v)] for k, v in flat(r.train_config).items()],
        ),
    ]
    parts += ["</details>", "<h2>Training</h2>", image(folder / CURVES_FILE, "training curves")]
    return "\n".join(parts)


def report_files(folder: Path) -> dict[str, Path]:
    """The evaluation reports in `folder` by row name: as the side-by-side summary names them ('proreg (onnxruntime
    fp16)'), else from the file name (report-<row>.json, or report.json)."""
    names: dict[str, str] = {}
    for summary in folder.glob(f"report*{SUMMARY_SUFFIX}.json"):
        with contextlib.suppress(OSError, ValueError, KeyError, TypeError, AttributeError):
            names.update({row["report"]: name for name, row in json.loads(summary.read_text())["rows"].items()})
    found = {}
    for path in sorted(folder.glob("report*.json")):
        if path.stem.endswith(SUMMARY_SUFFIX):  # the side-by-side table, not a report
            continue
        found[names.get(path.name) or path.stem.removeprefix("report").removeprefix("-") or "evaluation"] = path
    return found


def _artifact_row(row: str, report: Report) -> list[str]:
    artifact = Path(report.artifact)
    size = f"{artifact.stat().st_size / 2**20:.1f} MB" if artifact.is_file() else "-"
    gate = "-" if report.gate is None else ("passed" if report.gate.passed else "FAILED")
    worst = "-" if report.gate is None else signed_pp(report.gate.worst_drop_pp)
    speed = f"{report.throughput.model_images_per_s:.0f}"
    return [row, report.backend, report.precision, size, speed, percent(report.summary.id_top1),
            percent(report.summary.ood_top1_mean), worst, gate]  # fmt: skip


def evaluations_section(folder: Path) -> str:
    files = report_files(folder)
    if not files:
        return ""
    reports = {row: read_report(path) for row, path in files.items()}
    parts = ["<h2>Models and artifacts</h2>"]
    header = ["row", "backend", "precision", "size", "images/s (model)", "ID top-1 %", "mean OOD %", "worst drop pp"]
    header.append("gate")
    parts.append(table(header, [_artifact_row(row, report) for row, report in reports.items()]))
    best = recommended(reports) if len(reports) > 1 else None
    if best:
        parts.append(f"<p>Recommended for this machine: <b>{esc(best)}</b> (the fastest that passed its gate).</p>")
    for row, report in reports.items():
        parts.append(f"<h2>Evaluation: {esc(row)}</h2>")
        against = f", against <code>{esc(report.reference)}</code>" if report.reference else ""
        parts.append(f"<p><code>{esc(report.artifact)}</code> on {esc(report.runs_on)}{against}</p>")
        parts.append(table(table_header(report), table_rows(report)))
        if report.gate is not None:
            verdict = "passed" if report.gate.passed else "failed"
            parts.append(f'<p>Gate <span class="{verdict}">{verdict}</span>: worst drop '
                         f"{report.gate.worst_drop_pp:+.2f} pp{esc(report.gate.interval_text())}, limit "
                         f"{report.gate.max_drop_pp} pp.</p>")  # fmt: skip
        parts.append(image(files[row].with_suffix(".png"), f"{row}: top-1 per set"))
        parts.append(image(files[row].with_suffix(".sets.png"), f"{row}: confusion and per-class accuracy"))
    return "\n".join(parts)


def leaderboard_section(folder: Path) -> str:
    if not (folder / "leaderboard.json").is_file():
        return ""
    board = read_leaderboard(folder / "leaderboard.json")
    parts = ["<h2>Leaderboard</h2>", f"<p>{esc(board.title)}: top-1 % (mean ± std over seeds).</p>"]
    parts += [table(*leaderboard_table(board.rows)), image(folder / "leaderboard.png", "leaderboard: ID against OOD")]
    return "\n".join(parts)


def wise_section(folder: Path) -> str:
    if not (folder / "wise-sweep.png").is_file():
        return ""
    return "<h2>WiSE-FT sweep</h2>\n" + image(folder / "wise-sweep.png", "WiSE-FT: ID against OOD by alpha")


def write_report_page(folder: Path, title: str | None = None) -> Path:
    """Writes `folder`/report.html from what the folder holds (run.json, curves, reports, a leaderboard, a sweep)."""
    folder = Path(folder)
    sections = [trained_section(folder) if (folder / RUN_FILE).is_file() else ""]
    sections += [leaderboard_section(folder), wise_section(folder), evaluations_section(folder)]
    body = "\n".join(s for s in sections if s) or '<p class="note">Nothing to show yet.</p>'
    name = esc(title or folder.resolve().name)
    page = (f"<!doctype html>\n<html lang=en><head><meta charset=utf-8><title>{name}</title>"
            f"<style>{STYLE}</style></head>\n<body><h1>{name}</h1>\n{body}\n</body></html>\n")  # fmt: skip
    path = folder / PAGE
    atomic_write_text(path, page)
    return path
