"""Running `cli.py checks`' checks: one at a time in a worker process, each under a time limit, so that a check
stuck in a driver call is reported and its worker replaced, never waited on; the rows they give and the JSON file.

The worker is spawned, not forked: a parent that has touched the CUDA driver cannot fork a child that uses it. Its
output (the stages' logs, native libraries' messages, the traceback of a failed check) goes to `checks.log` in the
work folder, so the command prints one line per check.
"""

from __future__ import annotations

import contextlib
import json
import logging
import multiprocessing
import os
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

from common.errors import UserError
from common.files import check_creatable, writable_dir

CHECKS_FORMAT = "proreg-clip-checks/1"
LOG_FILE = "checks.log"
PASSED, FAILED, TIMED_OUT, UNAVAILABLE, SKIPPED = "passed", "failed", "timed out", "not available", "skipped"
STATUSES = (PASSED, FAILED, TIMED_OUT, UNAVAILABLE, SKIPPED)
FACTS_TIMEOUT = 120.0  # seconds for reading the machine's facts (nvidia-smi and the CUDA driver can hang too)


class CheckFailed(Exception):
    """A check ran and found this machine's path broken; its message is the row's reason."""


class Unavailable(Exception):
    """A check cannot run here; its message says why and what would make it possible."""


def needs_nothing() -> None:
    """Every machine has what the CPU paths need."""


@dataclass(frozen=True)
class Check:
    """One path through the project on this machine. `needs()` raises Unavailable, saying why and what would make
    it possible, when the path cannot run here; `run(work, quick)` runs it in the work folder the checks share and
    returns the row's one-line detail, raising when the path is broken. Both run in the worker, under the time limit.
    `uses`: checks whose output it needs; `hardware`: what it needs beyond a CPU (the tests' marker: cpu, gpu,
    tensorrt)."""

    name: str
    run: Callable[[Path, bool], str]
    needs: Callable[[], None] = needs_nothing
    uses: tuple[str, ...] = ()
    timeout: float = 300.0
    trains: bool = False  # skipped by --quick (train (cpu) makes a one-step run to export instead)
    hardware: str = "cpu"


@dataclass
class CheckResult:
    name: str
    status: str  # one of STATUSES
    detail: str
    seconds: float


class Worker:
    """A process that runs functions one at a time, started on first use and replaced after one that hangs."""

    def __init__(self, log_path: Path):
        self.log_path = log_path
        self.process: Any = None
        self.conn: Connection | None = None

    def call(self, fn: Callable[..., Any], args: tuple, timeout: float) -> tuple[str, Any]:
        """(PASSED, what `fn` returned), (UNAVAILABLE or FAILED, the reason), or (TIMED_OUT, the reason) after
        `timeout` seconds, when the worker is killed."""
        if self.process is None:
            self._start()
        assert self.conn is not None
        self.conn.send((fn, args))
        if not self.conn.poll(timeout):
            self.stop()
            return TIMED_OUT, f"no answer after {timeout:g} s: stopped"
        try:
            answer: tuple[str, Any] = self.conn.recv()
        except (EOFError, ConnectionResetError):  # the worker died: a native crash, the OOM killer
            code = self.process.exitcode if self.process else None
            self.stop()
            return FAILED, f"the check's process died (exit status {code}; see {LOG_FILE})"
        return answer

    def _start(self) -> None:
        context = multiprocessing.get_context("spawn")
        self.conn, child = context.Pipe()
        self.process = context.Process(target=_serve, args=(child, str(self.log_path)), daemon=True)
        self.process.start()
        child.close()

    def stop(self, kill: bool = True) -> None:
        """Stops the worker: killed (a hung one), or with `kill` False asked to end (it ends when its pipe closes)
        and killed only if it has not within 10 s."""
        if self.conn is not None:
            self.conn.close()
        if self.process is not None:
            if not kill:
                self.process.join(10)
            self.process.kill()
            self.process.join()
        self.process, self.conn = None, None


def _serve(conn: Connection, log_path: str) -> None:
    """The worker's loop: (fn, args) in, (status, value) out, until the pipe closes."""
    log = os.open(log_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    for fd in (1, 2):  # native libraries write to the file descriptors, not to sys.stdout
        os.dup2(log, fd)
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s", force=True)
    while True:
        try:
            fn, args = conn.recv()
        except EOFError:
            return
        try:
            answer = (PASSED, fn(*args))
        except Unavailable as err:
            answer = (UNAVAILABLE, str(err))
        except Exception as err:  # a broken path: the reason is the row's, the traceback goes to the log
            logging.exception("%s failed", getattr(fn, "__name__", fn))
            answer = (FAILED, _one_line(err))
        conn.send(answer)


def _one_line(err: BaseException) -> str:
    text = str(err).strip().splitlines()[0] if str(err).strip() else ""
    if isinstance(err, CheckFailed | UserError):
        return text or type(err).__name__
    return f"{type(err).__name__}: {text}" if text else type(err).__name__


def _attempt(check: Check, work: Path, quick: bool) -> tuple[bool, str]:
    """In the worker: (False, why) when `check` cannot run here, else (True, its detail)."""
    try:
        check.needs()
    except Unavailable as err:
        return False, str(err)
    return True, check.run(work, quick)


def _available(check: Check) -> str | None:
    try:
        check.needs()
    except Unavailable as err:
        return str(err)
    return None


class CheckSession:
    """A work folder and a worker for a series of checks (a context manager: the worker stops at the end)."""

    def __init__(self, work: Path):
        self.work = Path(work)
        self.worker = Worker(self.work / LOG_FILE)

    def __enter__(self) -> CheckSession:
        return self

    def __exit__(self, *exc: object) -> None:
        self.worker.stop(kill=False)

    def facts(self, read: Callable[[], dict[str, str]]) -> dict[str, str]:
        """What `read` says of the machine, read in the worker under a time limit."""
        status, value = self.worker.call(read, (), FACTS_TIMEOUT)
        return value if status == PASSED else {"facts": f"{status}: {value}"}

    def why_unavailable(self, check: Check) -> str | None:
        """Why `check` cannot run here (None: it can), asked in the worker under the check's time limit."""
        status, value = self.worker.call(_available, (check,), check.timeout)
        return value if status == PASSED else f"{status}: {value}"

    def run(
        self,
        checks: list[Check],
        quick: bool = False,
        timeout: float | None = None,
        starting: Callable[[int, Check], None] = lambda i, check: None,
        done: Callable[[CheckResult], None] = lambda result: None,
    ) -> list[CheckResult]:
        """Runs `checks` in order; `timeout` (seconds) replaces each check's own; `starting` and `done` report
        progress. A check that cannot run here says why; one whose `uses` did not pass is skipped, saying which."""
        results: dict[str, CheckResult] = {}
        for i, check in enumerate(checks):
            starting(i, check)
            results[check.name] = self._run_one(check, results, quick, timeout or check.timeout)
            done(results[check.name])
        return list(results.values())

    def _run_one(self, check: Check, before: dict[str, CheckResult], quick: bool, timeout: float) -> CheckResult:
        if quick and check.trains:
            return CheckResult(check.name, SKIPPED, "--quick skips training", 0.0)
        missing = [name for name in check.uses if name in before and before[name].status != PASSED]
        if missing:
            why = self.why_unavailable(check)  # not available says more than skipped
            if why:
                return CheckResult(check.name, UNAVAILABLE, why, 0.0)
            said = {UNAVAILABLE: "is not available here", SKIPPED: "was skipped"}.get(before[missing[0]].status)
            return CheckResult(
                check.name, SKIPPED, f"needs {missing[0]}, which {said or before[missing[0]].status}", 0.0
            )
        start = time.perf_counter()
        status, value = self.worker.call(_attempt, (check, self.work, quick), timeout)
        if status == PASSED:
            ran, detail = value
            status = PASSED if ran else UNAVAILABLE
        else:
            detail = value
        return CheckResult(check.name, status, str(detail), round(time.perf_counter() - start, 1))


def all_passed(results: list[CheckResult]) -> bool:
    """Whether every check that could run here passed: the exit status's rule."""
    return not any(r.status in (FAILED, TIMED_OUT) for r in results)


def checks_json(facts: dict[str, str], results: list[CheckResult]) -> dict[str, Any]:
    """What `--json FILE` holds: the machine's facts, one row per check, and the verdict."""
    return {
        "format": CHECKS_FORMAT,
        "environment": facts,
        "checks": [asdict(r) for r in results],
        "passed": all_passed(results),
    }


def check_checks_path(path: Path) -> None:
    """Refuses a --json path that would overwrite anything but an earlier checks file."""
    if path.is_dir():
        raise UserError(f"--json {path} is a folder")
    if path.exists():
        try:
            ours = json.loads(path.read_text()).get("format") == CHECKS_FORMAT
        except (OSError, UnicodeDecodeError, json.JSONDecodeError, AttributeError):
            ours = False
        if not ours:
            raise UserError(f"--json {path} exists and is not a checks file of ours: refusing to overwrite it")
    check_creatable(path.parent, "--json folder")


def check_keep_folder(path: Path) -> None:
    """--keep names a new or empty folder: the checks' runs would collide with an earlier run's."""
    check_creatable(path, "--keep folder")
    if path.is_dir() and any(path.iterdir()):
        raise UserError(f"--keep {path} is not empty: name a new folder")


def check_outputs(json_file: Path | None, keep: Path | None) -> None:
    """Refuses a --json file or --keep folder that cannot be written, before any check runs: both are checked, then
    their folders made (where permission bits do not tell, as under /proc, only the mkdir finds out)."""
    if json_file is not None:
        check_checks_path(json_file)
    if keep is not None:
        check_keep_folder(keep)
    for folder, what in ((json_file and json_file.parent, "--json folder"), (keep, "--keep folder")):
        if folder is not None:
            writable_dir(folder, what)


@contextlib.contextmanager
def work_folder(keep: Path | None) -> Iterator[Path]:
    """`keep` (made if missing) or a temporary folder, removed afterwards."""
    if keep is not None:
        keep.mkdir(parents=True, exist_ok=True)
        yield keep
        return
    with tempfile.TemporaryDirectory(prefix="proreg-checks-") as tmp:
        yield Path(tmp)
