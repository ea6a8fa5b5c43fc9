"""report.html: one self-contained page per run. Built from a real (short) training and evaluation, it holds what was
trained, the curves and every evaluation with its gate; every image is inline and decodes; nothing is fetched. In a
real headless browser (Debian's chromium; .ci/run installs it and sets REQUIRE_BROWSER so CI cannot skip it) the page
loads without a console message, every image decodes, and a screenshot is not blank."""

from __future__ import annotations

import base64
import io
import json
import os
import re
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from cli import app
from workflows.report_page import write_report_page

pytestmark = pytest.mark.slow
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
# As the machine's probe starts it: headless, no sandbox (root), nothing that reaches the network on its own.
CHROMIUM_FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-sync",
    "--disable-background-networking", "--disable-component-update", "--hide-scrollbars",
]  # fmt: skip


class Page(HTMLParser):
    """The page's headings, images (src, alt) and every URL it would load."""

    def __init__(self, text: str):
        super().__init__()
        self.headings: list[str] = []
        self.images: list[tuple[str, str]] = []
        self.urls: list[str] = []
        self._in_heading = False
        self.feed(text)

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        self._in_heading = tag in ("h1", "h2")
        if tag == "img":
            self.images.append((a.get("src", ""), a.get("alt", "")))
        self.urls += [v for k, v in attrs if k in ("src", "href") and v]

    def handle_data(self, data):
        if self._in_heading:
            self.headings.append(data.strip())
            self._in_heading = False


@pytest.fixture(scope="module")
def run_page(tmp_path_factory) -> Path:
    """A 6-step training with an evaluation gated against its zero-shot model, and its report.html."""
    folder = tmp_path_factory.mktemp("page")
    run = folder / "run"
    result = CliRunner().invoke(app, ["train", "--max-steps", "6", "--batch-size", "16", "--out", str(run)])
    assert result.exit_code == 0, result.output
    args = ["eval", "--checkpoint", str(run), "--data", "builtin:ood_sketch", "--out", str(run / "report.json")]
    result = CliRunner().invoke(app, [*args, "--reference", "builtin", "--max-drop", "100"])
    assert result.exit_code == 0, result.output
    return write_report_page(run)


def test_training_writes_its_curves_and_page(run_page):
    assert (run_page.parent / "curves.png").read_bytes().startswith(b"\x89PNG")
    assert run_page.name == "report.html"


def test_the_page_holds_what_was_trained_the_curves_and_every_evaluation(run_page):
    text = run_page.read_text()
    page = Page(text)
    assert page.headings[:3] == ["run", "What was trained", "Training"]
    assert "Evaluation: evaluation" in page.headings and "Models and artifacts" in page.headings
    config = json.loads((run_page.parent / "run.json").read_text())
    assert f"step {config['best']['step']}" in text and "max_steps" in text  # the resolved settings
    assert 'Gate <span class="passed">passed</span>' in text
    assert [alt for _, alt in page.images] == [
        "training curves",
        "evaluation: top-1 per set",
        "evaluation: confusion and per-class accuracy",
    ]
    for src, alt in page.images:
        data = base64.b64decode(src.removeprefix("data:image/png;base64,"))
        assert Image.open(io.BytesIO(data)).size[0] > 100, alt


def test_the_page_loads_nothing_from_anywhere(run_page):
    page = Page(run_page.read_text())
    assert page.urls and all(url.startswith("data:image/png;base64,") for url in page.urls)
    assert "<script" not in run_page.read_text()


def chromium(*args: str, tmp: Path) -> subprocess.CompletedProcess:
    command = [CHROMIUM, *CHROMIUM_FLAGS, f"--user-data-dir={tmp / 'profile'}", *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=120)


@pytest.mark.skipif(
    CHROMIUM is None and not os.environ.get("REQUIRE_BROWSER"),
    reason="chromium is not installed (apt-get install chromium; CI installs it)",
)
def test_the_page_in_a_real_browser(run_page, tmp_path):
    assert CHROMIUM, "REQUIRE_BROWSER is set and chromium is missing"
    # Every image decoded: a copy of the page with a probe that records each image's state once it has loaded.
    probe = (
        "<script>addEventListener('load', () => document.body.setAttribute('data-probe', JSON.stringify("
        "[...document.images].map(i => [i.complete, i.naturalWidth, i.naturalHeight]))))</script>"
    )
    probed = tmp_path / "probed.html"
    probed.write_text(run_page.read_text().replace("</body>", probe + "</body>"))
    dom = chromium("--dump-dom", probed.as_uri(), tmp=tmp_path).stdout
    states = json.loads(re.search(r'data-probe="([^"]*)"', dom)[1].replace("&quot;", '"'))
    assert len(states) == 3 and all(done and width > 100 and height > 100 for done, width, height in states)
    # The page itself: no console message at all (errors, warnings, logs), and a screenshot with something on it.
    shot = tmp_path / "shot.png"
    result = chromium("--enable-logging=stderr", "--v=0", f"--screenshot={shot}", "--window-size=1280,1600",
                      run_page.as_uri(), tmp=tmp_path)  # fmt: skip
    assert [line for line in result.stderr.splitlines() if ":CONSOLE" in line] == []
    pixels = np.asarray(Image.open(shot).convert("L"), dtype=np.float64)
    assert pixels.shape == (1600, 1280)
    assert pixels.std() > 20 and (pixels < 128).mean() > 0.01  # text, tables and charts, not a blank page


def test_a_bench_folder_page_names_its_rows_as_the_table_does(tmp_path):
    """Reports written side by side (bench, the pipeline) appear under their row names ('a (onnxruntime fp16)'), read
    from <stem>-summary.json, not their file slugs; the recommended row is named."""
    from serve.report import Gate
    from serve.side_by_side import write_reports
    from tests.serve.test_report import make_report

    gated = make_report(agreement=True, reference="runs/x", gate=Gate(1.0, 0.5, True))
    write_reports({"a (torch fp32)": make_report(), "a (onnxruntime fp16)": gated}, tmp_path / "report.json")
    page = Page(write_report_page(tmp_path, "bench").read_text())
    assert "Evaluation: a (onnxruntime fp16)" in page.headings and "Evaluation: a (torch fp32)" in page.headings
    assert "Recommended for this machine: <b>a (onnxruntime fp16)</b>" in (tmp_path / "report.html").read_text()
    (tmp_path / "report-summary.json").write_text("{not json")  # a damaged summary: the file names, not a crash
    assert "Evaluation: a-onnxruntime-fp16" in Page(write_report_page(tmp_path, "bench").read_text()).headings
