"""What the commands print reads well in a log: without a terminal, progress is periodic plain lines, and nothing a
user copies (a path, a command, a set name) is cut or wrapped, whatever its length."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from serve.report import DatasetScores, Report, Summary, Throughput
from workflows import console as console_module
from workflows.console import LineProgress, print_comparison

REPO = Path(__file__).resolve().parents[2]


def test_line_progress_says_a_long_task_every_interval_and_once_at_its_end(monkeypatch, capsys):
    clock = [0.0]
    monkeypatch.setattr(console_module.time, "monotonic", lambda: clock[0])
    progress = LineProgress(every=10)
    task = progress.add_task("train proreg", total=100, info="")
    for step in range(1, 101):
        clock[0] = step * 0.5  # a step every half second: 50 s in all
        progress.update(task, completed=step, info=f"loss {1 / step:.3f}")
    progress.update(task, completed=100)  # told again: said once
    lines = capsys.readouterr().err.splitlines()
    assert lines[0] == "train proreg: 20/100 (20%) loss 0.050, 0:10 elapsed"  # after 10 s of it
    said = [line.split(":")[1].split()[0] for line in lines]
    assert said == ["20/100", "40/100", "60/100", "80/100", "100/100"]
    assert lines[-1] == "train proreg: 100/100 (100%) loss 0.010, 0:50 elapsed"


def test_line_progress_says_nothing_of_a_short_task(monkeypatch, capsys):
    clock = [0.0]
    monkeypatch.setattr(console_module.time, "monotonic", lambda: clock[0])
    progress = LineProgress(every=10)
    task = progress.add_task("text classifier", total=6)
    for done in range(1, 7):
        clock[0] = done
        progress.update(task, completed=done)
    assert capsys.readouterr().err == ""  # 6 s of work, then an error would be the one line on stderr


@pytest.mark.slow
def test_a_training_in_a_log_prints_progress_lines_and_uncut_paths(tmp_path):
    out = tmp_path / ("a-run-directory-with-a-long-name-" * 4 + "end")  # ~170 characters with tmp_path
    env = {**os.environ, "PROREG_CLIP_PROGRESS_SECONDS": "0", "COLUMNS": "80"}
    command = [sys.executable, str(REPO / "cli.py"), "train", "--max-steps", "3", "--batch-size", "16"]
    result = subprocess.run([*command, "--out", str(out)], capture_output=True, text=True, env=env, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    lines = result.stderr.splitlines()
    steps = [line.split(" loss")[0] for line in lines if line.startswith("train proreg")]
    assert steps == ["train proreg: 1/3 (33%)", "train proreg: 2/3 (67%)", "train proreg: 3/3 (100%)"]
    assert any(line.startswith(f"run directory {out}: best validation top-1") for line in lines)  # one line, whole
    assert f"curves and report: {out / 'report.html'}" in lines


def test_a_comparison_table_in_a_log_is_never_cut(capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "80")
    scores = DatasetScores("ood", 10, 0, 0.5, 0.9, 0.4)
    throughput = Throughput(10.0, 12.0, 8, 1.0, 2.0)
    name = "proreg-official+wise (onnxruntime int8-cpu, a long row name that must stay whole)"
    report = Report("onnxruntime", "m.onnx", "int8", ["a"], {"ood_a_set_with_a_long_name": scores},
                    Summary(None, 0.5, 0.4), throughput)  # fmt: skip
    print_comparison({name: report}, "title")
    printed = capsys.readouterr().out
    assert name in printed and "ood_a_set_with_a_long_name" in printed and "…" not in printed
