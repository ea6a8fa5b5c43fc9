"""What the commands show on the terminal: progress bars, one-line messages, and the tables of reports, comparisons,
sweeps and checks. Everything goes to stderr (`console`); results a user pipes on (leaderboard.md) go to stdout."""

from __future__ import annotations

import inspect
import math
import os
import textwrap
import time
from typing import TYPE_CHECKING, Any

from rich.console import Console
from rich.markup import escape
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table

from common.progress import ProgressHook

if TYPE_CHECKING:
    from pathlib import Path

    from serve.report import Gate, Report
    from workflows.check_worker import Check, CheckResult
    from workflows.export import ExportResult
    from workflows.wise import WiseSweep

# soft_wrap: a line is never broken by the console, so a path or a command printed can be pasted back whole.
console = Console(stderr=True, soft_wrap=True)
# Without a terminal (CI, a pipe, a batch job), progress is a plain line per task at most this often, and at its end.
PROGRESS_LINE_SECONDS = float(os.environ.get("PROREG_CLIP_PROGRESS_SECONDS", "10"))


def main_rank() -> bool:
    """Whether this process prints results and writes files: always, but under torchrun only rank 0."""
    from common.distributed import from_environment

    return from_environment().is_main


def say(message: str) -> None:
    """One plain line on the console (paths may hold [brackets]: no markup)."""
    console.print(message, highlight=False, soft_wrap=True, markup=False)


class LineProgress:
    """Progress as periodic plain lines, for logs: the part of rich's Progress the commands use (add_task, update,
    a context manager). A task's line: "train proreg: 120/470 (26%) loss 0.412, 0:31 elapsed", first after `every`
    seconds of it, then every `every` seconds and at its end; a task shorter than that says nothing, so a command
    that fails on bad input still prints its one line."""

    def __init__(self, every: float = PROGRESS_LINE_SECONDS):
        self.every = every
        self.tasks: dict[int, list[Any]] = {}  # task id -> [description, done, total, info, started, last printed]

    def __enter__(self) -> LineProgress:
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    def add_task(self, description: str, total: float | None = None, info: str = "", **_: Any) -> TaskID:
        now = time.monotonic()  # said first once it has run `every` seconds: short work (or bad input) stays silent
        self.tasks[len(self.tasks)] = [description, 0, total, info, now, now]
        return TaskID(len(self.tasks) - 1)

    def update(self, task: TaskID, completed: float | None = None, total: float | None = None, **fields: Any) -> None:
        t = self.tasks[task]
        t[1] = t[1] if completed is None else completed
        t[2] = t[2] if total is None else total
        t[3] = fields.get("info", t[3])
        now, finished = time.monotonic(), t[2] is not None and t[1] >= t[2]
        said_before = t[5] not in (t[4], math.inf)
        if (now - t[5] >= self.every and t[5] != math.inf) or (finished and said_before):
            t[5] = math.inf if finished else now  # a finished task is said once, if it was said at all
            share = f" ({100 * t[1] / t[2]:.0f}%)" if t[2] else ""
            elapsed = int(now - t[4])
            say(f"{t[0]}: {t[1]:g}/{t[2]:g}{share} {t[3]}".rstrip() + f", {elapsed // 60}:{elapsed % 60:02d} elapsed")


def progress_bar() -> Progress | LineProgress:
    """A live bar on a terminal; periodic plain lines in a log; nothing on torchrun's other ranks."""
    if not console.is_terminal and main_rank():
        return LineProgress()
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[info]}"),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=console,
        transient=True,  # cleared when done or failed, so an error stays the one line on stderr
        disable=not console.is_terminal or not main_rank(),  # logs and pipes get results, not bar redraws
    )


def progress_hook(bar: Progress | LineProgress, prefix: str = "", info: str = "") -> ProgressHook:
    """A progress hook for library code: one bar per task name, created on its first report."""
    tasks: dict[str, TaskID] = {}

    def hook(name: str, done: int, total: int) -> None:
        if name not in tasks:
            tasks[name] = bar.add_task(f"{prefix}{name}", total=total, info=info)
        bar.update(tasks[name], completed=done)

    return hook


TABLE_WIDTH_IN_LOGS = 1000  # without a terminal: as wide as the table needs, no cut and no wrap


def _table(title: str, header: list[str], rows: list[list[str]], left: set[int]) -> None:
    table = Table(title=title)
    for i, head in enumerate(header):  # fold: a long name wraps on a narrow terminal, never cut with "..."
        table.add_column(head, justify="left" if i in left else "right", overflow="fold")
    for row in rows:
        table.add_row(*row)
    out = Console()
    (out if out.is_terminal else Console(width=TABLE_WIDTH_IN_LOGS)).print(table)


def print_report(report: Report) -> None:
    """One model's report as a table on stdout."""
    from serve.report import table_header, table_rows

    header = table_header(report)
    left = {i for i, head in enumerate(header) if head in ("dataset", "role")}
    _table(f"{report.backend} ({report.precision}): {report.artifact}", header, table_rows(report), left)


def print_comparison(reports: dict[str, Report], title: str) -> None:
    """Several models' reports side by side, one row each."""
    from serve.side_by_side import side_by_side_rows

    header, rows = side_by_side_rows(reports)
    _table(title, header, rows, {0})


def print_recommendation(reports: dict[str, Report]) -> None:
    """The artifact to serve on this machine (serve.side_by_side.recommended), or that none passed its gate."""
    from serve.side_by_side import baseline_speed, recommended

    best = recommended(reports)
    gate = reports[best].gate if best else None
    if best is None or gate is None:
        console.print("no artifact passed its gate: nothing to recommend for serving")
        return
    speed, baseline = reports[best].throughput.model_images_per_s, baseline_speed(reports)
    versus = f", {speed / baseline[1]:.2f}x {baseline[0]}" if baseline else ""
    console.print(
        f"* recommended for this machine: {best}: {speed:.0f} images/s model-only{versus}, worst drop "
        f"{gate.worst_drop_pp:+.2f} pp (gate {gate.max_drop_pp} pp)"
    )


def print_gate(gate: Gate) -> None:
    """An evaluation's gate, passed or failed: the worst drop against the limit, with its 95% interval."""
    verdict, sign = ("[red]gate failed[/red]", ">") if not gate.passed else ("[green]gate passed[/green]", "<=")
    drop = f"worst drop {gate.worst_drop_pp:+.2f} pp {sign} {gate.max_drop_pp} pp"
    console.print(f"{verdict}: {drop}{escape(gate.interval_text())}", highlight=False)


def gate_status(reports: dict[str, Report], tell: bool = False) -> int:
    """1 when a gated row failed (named on the console with `tell`), else 0."""
    failed = [
        f"{name} ({rep.gate.worst_drop_pp:+.2f} pp > {rep.gate.max_drop_pp} pp)"
        for name, rep in reports.items()
        if rep.gate and not rep.gate.passed
    ]
    if failed and tell:
        console.print(f"[red]accuracy gate failed[/red]: {', '.join(failed)}")
    return 1 if failed else 0


def print_sweep(sweep: WiseSweep) -> None:
    from workflows.wise import sweep_table

    header, rows = sweep_table(sweep)
    _table("WiSE-FT along alpha: top-1 %", header, rows, set())


def print_facts(facts: dict[str, str]) -> None:
    width = max(map(len, facts))
    for name, value in facts.items():
        console.print(f"{name:<{width}}  {escape(value)}", highlight=False, soft_wrap=True)


def check_starting(index: int, check: Check) -> None:
    if console.is_terminal:
        console.print(f"[dim]running {check.name} ...[/dim]", end="\r", highlight=False)


def print_check(result: CheckResult) -> None:
    from workflows.check_worker import PASSED, SKIPPED, UNAVAILABLE

    colour = "green" if result.status == PASSED else "yellow" if result.status in (UNAVAILABLE, SKIPPED) else "red"
    took = f" ({result.seconds:.0f} s)" if result.seconds >= 1 else ""
    console.print(
        f"[{colour}]{result.status:<13}[/{colour}] {result.name:<34} {escape(result.detail)}{took}",
        highlight=False,
        soft_wrap=True,
    )


def fill(text: str, width: int, indent: str = "") -> str:
    """`text`'s paragraphs (blank-line separated) filled to `width`, each line indented; a word is never broken, nor
    a hyphenated name (hf-hub:ORG/REPO, a URL, a path stay whole even when longer than a line)."""
    paragraphs = (" ".join(p.split()) for p in inspect.cleandoc(text).split("\n\n"))
    return "\n\n".join(
        textwrap.fill(
            p, width, initial_indent=indent, subsequent_indent=indent, break_on_hyphens=False, break_long_words=False
        )
        for p in paragraphs
    )


def print_suites(suites: dict[str, Any]) -> None:
    """The dataset suites (data.suites.registry.suites()) on stdout, a section each: plain text whose layouts and
    addresses are never cut, whatever the width."""
    width = min(Console().width, 100)
    print("Dataset suites, named in --data as SUITE:ROOT (SUITE/VARIANT:ROOT for one variant):")
    for name, suite in suites.items():
        info = suite.info
        default = f" (default {info.default_variant})" if info.default_variant else ""
        fields = {
            "classes": str(info.classes),
            "variants": (", ".join(info.variants) + default) if info.variants else "-",
            "roles": info.roles if info.trains else f"evaluation only: {info.roles}",
            "layout": info.layout,
            "published": info.published,
        }
        print(f"\n{name}: {info.title}")
        for field, text in fields.items():
            print(f"  {field:<10}" + fill(text, width, " " * 12)[12:])


def say_exported(result: ExportResult, models: dict[str, Path], triton_repo: Path | None) -> None:
    """What export wrote: each ONNX file and engine, and the Triton models with the command that serves them."""
    from export.triton_repo import server_command

    for precision, path in result.onnx.items():
        say(f"wrote {path} ({precision})")
    for precision, path in result.engines.items():
        say(f"wrote {path} ({precision}) and {path.name}.json")
    if models and triton_repo:
        say(f"wrote Triton models {', '.join(models)} ({server_command(triton_repo, result.engines)})")
