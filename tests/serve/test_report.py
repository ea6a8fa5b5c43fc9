"""Tests for serve.report: report.json, .md and .png written atomically, the markdown table, gate line, gaps."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from serve.evaluate import DatasetResult
from serve.metrics import summarize
from serve.report import (
    Agreement,
    DatasetScores,
    Gate,
    Report,
    Summary,
    Throughput,
    markdown,
    table_header,
    table_rows,
)
from serve.report_files import write_report

BASE_HEADER = ["dataset", "role", "n", "skipped", "top1 %", "ECE %", "top5 %", "worst-group %"]
AGREEMENT_HEADER = ["drop pp", "95% interval", "agree %", "max|dlogit|"]


def _strict_json(text: str) -> Any:
    """json.loads that refuses NaN and Infinity, which are not JSON (RFC 8259)."""

    def refuse(name: str) -> Any:
        raise ValueError(f"not JSON: {name}")

    return json.loads(text, parse_constant=refuse)


def make_report(agreement: bool = False, gate: Gate | None = None, reference: str | None = None) -> Report:
    """A report in the schema serve.evaluate.evaluate produces, with values exact in binary floating point."""
    datasets = {
        "val": DatasetScores(
            role="id",
            n=8,
            skipped=1,
            top1=0.5,
            top5=1.0,
            worst_group_top1=0.25,
            groups={"plain": 0.75, "striped": 0.25},
            ece=0.125,
        ),
        "ood_sketch": DatasetScores(
            role="ood",
            n=8,
            skipped=0,
            top1=0.125,
            top5=0.875,
            worst_group_top1=None,
            groups={},
        ),
    }
    report = Report(
        backend="onnxruntime",
        artifact="runs/x/model.fp16.onnx",
        precision="fp16",
        classes=["circle", "square"],
        datasets=datasets,
        summary=Summary(id_top1=0.5, ood_top1_mean=0.125, worst_group_top1_min=0.25),
        throughput=Throughput(
            images_per_s=1234.4,
            model_images_per_s=2000.0,
            batch_size=64,
            latency_ms_p50=1.5,
            latency_ms_p99=2.25,
        ),
        reference=reference,
        agreement=None,
        gate=gate,
    )
    if agreement:
        report.agreement = {
            "val": Agreement(
                top1_agreement=0.875, max_abs_logit_diff=0.0123456, top1_drop_pp=12.5, top1_drop_interval_pp=[0.0, 25.0]
            ),
            "ood_sketch": Agreement(top1_agreement=1.0, max_abs_logit_diff=0.5, top1_drop_pp=-0.25),
        }
    return report


def test_write_report_writes_three_files_atomically(tmp_path: Path) -> None:
    report = make_report(agreement=True, gate=Gate(max_drop_pp=1.0, worst_drop_pp=12.5, passed=False))
    out = tmp_path / "reports" / "report.json"  # the folder does not exist yet

    written = write_report(report, out)

    assert written == [out, out.with_suffix(".md"), out.with_suffix(".png")]
    # Nothing else in the folder: no temporary file of the atomic writes is left behind.
    assert sorted(p.name for p in out.parent.iterdir()) == ["report.json", "report.md", "report.png"]
    assert _strict_json(out.read_text()) == report.to_dict()
    assert out.with_suffix(".md").read_text() == markdown(report)
    assert out.with_suffix(".png").read_bytes().startswith(b"\x89PNG\r\n\x1a\n")


def test_write_report_replaces_an_older_report(tmp_path: Path) -> None:
    out = tmp_path / "report-proreg-onnxruntime-fp16.json"
    write_report(make_report(), out)
    newer = make_report(agreement=True, reference="runs/x")
    write_report(newer, out)
    assert _strict_json(out.read_text()) == newer.to_dict()
    assert "reference: `runs/x`" in out.with_suffix(".md").read_text()
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "report-proreg-onnxruntime-fp16.json",
        "report-proreg-onnxruntime-fp16.md",
        "report-proreg-onnxruntime-fp16.png",
    ]


def test_markdown_table_has_a_row_per_dataset_in_percent() -> None:
    lines = markdown(make_report()).splitlines()
    assert lines[0] == "# Evaluation: onnxruntime (fp16)"
    assert lines[2] == "Artifact: `runs/x/model.fp16.onnx`"  # no reference given: none named
    header = "| " + " | ".join(BASE_HEADER) + " |"
    assert header in lines
    at = lines.index(header)
    assert lines[at + 1] == "|" + "---|" * len(BASE_HEADER)
    # 0.5 -> 50.0, 0.125 -> 12.5 (one decimal); a None worst group is "-".
    assert lines[at + 2] == "| val | id | 8 | 1 | 50.0 | 12.5 | 100.0 | 25.0 |"
    assert lines[at + 3] == "| ood_sketch | ood | 8 | 0 | 12.5 | - | 87.5 | - |"
    assert lines[at + 4] == ""
    assert "ID top-1 50.0%, mean OOD top-1 12.5%, lowest worst-group top-1 25.0%." in lines
    # Throughput: whole images/s, latencies with two decimals.
    assert "Throughput 1234 images/s end to end (2000 in the model), batch 64, latency p50 1.50 ms, p99 2.25 ms." in (
        lines
    )


def test_markdown_gate_line_only_with_a_gate() -> None:
    assert "Gate" not in markdown(make_report(agreement=True))
    passed = markdown(make_report(gate=Gate(max_drop_pp=1.5, worst_drop_pp=-0.25, passed=True)))
    assert passed.splitlines()[-1] == "Gate PASSED: worst drop -0.25 pp against a limit of 1.5 pp."
    failed = markdown(make_report(gate=Gate(max_drop_pp=1.0, worst_drop_pp=12.5, passed=False)))
    assert failed.splitlines()[-1] == "Gate FAILED: worst drop +12.50 pp against a limit of 1.0 pp."
    assert "PASSED" not in failed and "FAILED" not in passed


def test_markdown_names_the_reference_when_present() -> None:
    text = markdown(make_report(agreement=True, reference="runs/20250101-000000-proreg-s0"))
    assert "Artifact: `runs/x/model.fp16.onnx`; reference: `runs/20250101-000000-proreg-s0`" in text


def test_agreement_columns_only_with_agreement() -> None:
    plain = make_report()
    assert table_header(plain) == BASE_HEADER
    assert all(len(row) == len(BASE_HEADER) for row in table_rows(plain))

    compared = make_report(agreement=True)
    assert table_header(compared) == BASE_HEADER + AGREEMENT_HEADER
    rows = {row[0]: row for row in table_rows(compared)}
    # drop signed with two decimals, agreement in percent with one, logit difference with 3 significant digits
    assert rows["val"][len(BASE_HEADER) :] == ["+12.50", "[+0.00, +25.00]", "87.5", "0.0123"]
    assert rows["ood_sketch"][len(BASE_HEADER) :] == ["-0.25", "-", "100.0", "0.5"]  # no interval: "-"
    text = markdown(compared)
    assert "| val | id | 8 | 1 | 50.0 | 12.5 | 100.0 | 25.0 | +12.50 | [+0.00, +25.00] | 87.5 | 0.0123 |" in text


def test_empty_agreement_dict_adds_no_columns() -> None:
    report = make_report()
    report.agreement = {}
    assert table_header(report) == BASE_HEADER
    assert [len(r) for r in table_rows(report)] == [len(BASE_HEADER)] * 2


@pytest.mark.parametrize("missing", [None, math.nan])
def test_missing_accuracy_renders_as_dash(missing: float | None) -> None:
    report = make_report()
    sketch = report.datasets["ood_sketch"]
    sketch.top1, sketch.top5, sketch.worst_group_top1 = missing, missing, missing
    report.summary = Summary(id_top1=missing, ood_top1_mean=missing, worst_group_top1_min=missing)
    rows = {row[0]: row for row in table_rows(report)}
    assert rows["ood_sketch"][4:8] == ["-", "-", "-", "-"]
    assert rows["val"][4:8] == ["50.0", "12.5", "100.0", "25.0"]  # the other row keeps its numbers
    assert "No set had an image to score." in markdown(report)  # not "ID top-1 -%"
    assert "nan" not in markdown(report).lower()


def test_write_report_of_an_empty_dataset(tmp_path: Path) -> None:
    """An empty set has no accuracies (None from serve.metrics.topk_accuracy); the files are still written, the
    markdown shows "-"."""
    report = make_report()
    sketch = report.datasets["ood_sketch"]
    sketch.n, sketch.top1, sketch.top5, sketch.worst_group_top1 = 0, None, None, None
    report.summary.ood_top1_mean = None
    paths = write_report(report, tmp_path / "report.json")
    assert all(p.is_file() for p in paths)
    assert "| ood_sketch | ood | 0 | 0 | - | - | - | - |" in paths[1].read_text()


def test_the_summary_line_names_only_what_was_measured() -> None:
    report = make_report()
    report.summary = Summary(id_top1=None, ood_top1_mean=0.125, worst_group_top1_min=0.25)  # no ID set evaluated
    assert "Mean OOD top-1 12.5%, lowest worst-group top-1 25.0%." in markdown(report).splitlines()
    assert "ID top-1" not in markdown(report)


def test_report_json_stays_strict_json_with_an_empty_dataset(tmp_path: Path) -> None:
    empty = DatasetResult(
        "ood_sketch", "ood", np.zeros((0, 6), np.float32), np.zeros(0, np.int64), np.zeros(0, np.int64), [], skipped=0
    )
    report = make_report()
    report.datasets["ood_sketch"] = empty.entry()  # what evaluation reports for a set without images
    report.summary = summarize(report.datasets)
    write_report(report, tmp_path / "report.json")
    _strict_json((tmp_path / "report.json").read_text())


def test_report_path_is_a_json_file_that_never_replaces_a_users_file(tmp_path: Path) -> None:
    from common.errors import UserError
    from serve.report_files import check_report_path

    with pytest.raises(UserError, match=r"--out names the report's \.json file .*, not .*report\.md"):
        check_report_path(tmp_path / "report.md")
    (tmp_path / "notes.json").write_text('{"mine": 1}')
    with pytest.raises(UserError, match=r"notes\.json exists and is not a report of ours"):
        check_report_path(tmp_path / "notes.json")
    (tmp_path / "doc.md").write_text("# My notes\n")
    with pytest.raises(UserError, match=r"doc\.md exists and is not a report of ours"):
        check_report_path(tmp_path / "doc.json")
    (tmp_path / "chart.png").write_bytes(b"\x89PNG")
    with pytest.raises(UserError, match=r"chart\.png exists without its report"):
        check_report_path(tmp_path / "chart.json")
    write_report(make_report(), tmp_path / "r.json")
    check_report_path(tmp_path / "r.json")  # an earlier report of ours may be replaced
    check_report_path(tmp_path / "new" / "sub" / "r.json")
    assert not (tmp_path / "new").exists()  # checking creates nothing


def test_report_md_is_a_markdown_table_with_and_without_a_reference() -> None:
    """Parsed by a CommonMark parser with tables on, every row has the header's cells: the `max|dlogit|` header is
    escaped, not split."""
    from markdown_it import MarkdownIt

    for report in (make_report(), make_report(agreement=True, reference="runs/x", gate=Gate(1.0, 0.5, True))):
        tokens = MarkdownIt("commonmark").enable("table").parse(markdown(report))
        rows, cells = [], 0
        for token in tokens:
            if token.type == "tr_open":
                cells = 0
            elif token.type in ("th_open", "td_open"):
                cells += 1
            elif token.type == "tr_close":
                rows.append(cells)
        assert rows == [len(table_header(report))] * (1 + len(report.datasets))
        headers = [tokens[i + 1].content for i, tok in enumerate(tokens) if tok.type == "th_open"]
        assert headers == table_header(report)


def test_a_report_with_per_class_results_gets_its_sets_picture(tmp_path: Path) -> None:
    report = make_report()
    sets = report.datasets["val"]
    sets.classes, sets.per_class_top1 = ["cat", "dog"], {"cat": 0.75, "dog": 0.25}
    sets.confusion = [[0, 0, 3], [1, 0, 1]]
    written = write_report(report, tmp_path / "report.json")
    assert written[-1] == tmp_path / "report.sets.png"
    assert written[-1].read_bytes().startswith(b"\x89PNG\r\n\x1a\n")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["report.json", "report.md", "report.png", "report.sets.png"]


def test_the_report_chart_keeps_its_legend_off_the_bars_and_labels_a_zero(tmp_path: Path, monkeypatch) -> None:
    """report.png: the legend sits below the axes (it hid the sketch worst-group bar of a PACS report); a worst-group
    top-1 of 0.0 is a labelled bar '0.0', a set without groups says 'n/a' (both looked like 'no data')."""
    import serve.report_plots

    drawn: list[Any] = []
    monkeypatch.setattr(serve.report_plots, "save_figure", lambda fig, path, tight=False: drawn.append(fig))
    report = make_report(agreement=True, reference="runs/x", gate=Gate(1.0, 0.5, True))
    report.datasets["val"].worst_group_top1 = 0.0
    serve.report_plots.plot_scores(report, tmp_path / "r.png")
    (fig,) = drawn
    (ax,) = fig.axes
    fig.canvas.draw()
    labels = [t.get_text() for t in ax.texts]
    assert labels == ["50.0", "12.5", "0.0", "n/a"]  # top-1 per set, then worst-group: val 0.0, ood_sketch none
    renderer = fig.canvas.get_renderer()
    legend, axes = ax.get_legend().get_window_extent(renderer), ax.get_window_extent(renderer)
    assert legend.y1 <= axes.y0  # wholly below the plotting area
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["top-1", "worst-group top-1", "reference top-1"]
