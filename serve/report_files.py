"""An evaluation report's files: report.json (the record, serve/report.py), report.md, and the pictures of
serve/report_plots.py beside it; never over a file that is not an earlier report of ours."""

from __future__ import annotations

import contextlib
from pathlib import Path

from common.errors import UserError
from common.files import check_creatable, staged_file, strict_json, writable_dir
from serve.report import MARKDOWN_TITLE, Report, markdown, read_report
from serve.report_plots import plot_scores, plot_sets


def check_report_path(json_path: Path) -> None:
    """Refuses a report path that would overwrite anything but an earlier report of ours: `--out` names a .json
    file, and report.md and report.png are written beside it."""
    json_path = Path(json_path)
    if json_path.suffix.lower() != ".json":
        raise UserError(f"--out names the report's .json file (report.md and .png go beside it), not {json_path}")
    for path in report_outputs(json_path):
        if path.is_dir():
            raise UserError(f"{path} is a folder; the report cannot be written there")
    if json_path.exists() and not _is_our_report(json_path):
        raise UserError(f"{json_path} exists and is not a report of ours: refusing to overwrite it")
    md_path = json_path.with_suffix(".md")
    if md_path.exists() and not md_path.read_text(errors="replace").startswith(MARKDOWN_TITLE):
        raise UserError(f"{md_path} exists and is not a report of ours: refusing to overwrite it")
    for picture in report_outputs(json_path)[2:]:
        if picture.exists() and not json_path.exists():
            raise UserError(f"{picture} exists without its report: refusing to overwrite it")
    check_creatable(json_path.parent, "report folder")


def _is_our_report(path: Path) -> bool:
    try:
        read_report(path)
    except UserError:
        return False
    return True


def report_outputs(json_path: Path) -> list[Path]:
    """The files of a report: report.json, report.md, report.png (top-1 per set), report.sets.png (per set, where
    its errors go and its accuracy per class)."""
    json_path = Path(json_path)
    return [json_path, json_path.with_suffix(".md"), json_path.with_suffix(".png"), json_path.with_suffix(".sets.png")]


def write_report(report: Report, json_path: Path) -> list[Path]:
    """Writes report.json, and beside it report.md and the pictures (report_outputs); returns the paths written.
    Refuses (UserError) to overwrite files that are not earlier reports."""
    outputs = report_outputs(json_path)
    check_report_path(outputs[0])
    writable_dir(outputs[0].parent, "report folder")
    with contextlib.ExitStack() as staged:  # all written before any is moved into place: never half a report
        json_tmp, md_tmp, png_tmp, sets_tmp = (staged.enter_context(staged_file(p, p.suffix)) for p in outputs)
        json_tmp.write_text(strict_json(report.to_dict()) + "\n")
        md_tmp.write_text(markdown(report))
        plot_scores(report, png_tmp)
        with_sets = plot_sets(report, sets_tmp)
        if not with_sets:
            sets_tmp.unlink()
    if not with_sets:
        outputs[3].unlink(missing_ok=True)  # an earlier report's picture, of other sets
    return outputs if with_sets else outputs[:3]
