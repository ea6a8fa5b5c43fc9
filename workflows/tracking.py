"""The trackers a command was asked for (`--log`), called as one: each hook goes to every tracker, and a tracker that
fails (a full disk, a bad URI, its server gone) is dropped with one warning while the run goes on."""

from __future__ import annotations

import logging
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any

from common.errors import OptionError
from trackers import TRACKERS
from trackers.tracker import TrackedRun, Tracker, check_installed, metric_key

if TYPE_CHECKING:
    from serve.report import Report

log = logging.getLogger(__name__)


def check_trackers(names: list[str]) -> list[str]:
    """The chosen trackers, each known and installed (OptionError otherwise), in the order typed, once each."""
    chosen = list(dict.fromkeys(names))
    for name in chosen:
        if name not in TRACKERS:
            raise OptionError(f"unknown tracker {name!r} for --log; choose from {', '.join(TRACKERS)}")
        check_installed(TRACKERS[name])
    return chosen


class Tracking:
    """The trackers of one run (or of a comparison, whose cells' runs nest under it): started once the run directory
    and configuration are known (`start`), finished as a context manager ends: finished, interrupted or failed."""

    def __init__(self, names: list[str], job: str, parent: Tracking | None = None):
        self.names, self.job, self.parent = check_trackers(names), job, parent
        self.trackers: list[Tracker] = []
        self.status: str | None = None  # set to "interrupted" by a job that stopped on request

    def start(self, folder: Path, params: dict[str, Any] | None = None, resumed_at: int | None = None) -> None:
        run = TrackedRun(Path(folder), Path(folder).name, self.job, flat(params or {}), resumed_at)
        parents = {t.name: t for t in self.parent.trackers} if self.parent else {}
        for name in self.names:
            try:
                self.trackers.append(TRACKERS[name](run, parents.get(name)))
            except Exception as err:  # noqa: BLE001 - a tracker never costs the run
                log.warning("tracker %s could not start (%s); the run goes on without it", name, one_line(err))

    def child(self, job: str) -> Tracking:
        return Tracking(self.names, job, parent=self)

    def _call(self, hook: str, *args: Any) -> None:
        for tracker in list(self.trackers):
            try:
                getattr(tracker, hook)(*args)
            except Exception as err:  # noqa: BLE001
                self.trackers.remove(tracker)
                log.warning("tracker %s failed (%s); the run goes on without it", tracker.name, one_line(err))

    def log_record(self, record: dict[str, Any]) -> None:
        """One metrics.jsonl record: the loss terms, learning rate and throughput, or a validation."""
        values = {
            (key.replace("val_", "val/") if key.startswith("val_") else f"train/{key}"): float(value)
            for key, value in record.items()
            if key not in ("step", "epoch") and isinstance(value, (int, float))
        }
        self._call("log_metrics", {**values, "train/epoch": float(record.get("epoch", 0))}, int(record["step"]))

    def log_summary(self, values: dict[str, float | None]) -> None:
        kept = {metric_key(k): float(v) for k, v in values.items() if v is not None}
        if kept:
            self._call("log_summary", kept)

    def log_reports(self, reports: dict[str, Report]) -> None:
        """Each evaluated model's scores per set, and each artifact's drop and gate verdict."""
        values: dict[str, float | None] = {}
        for row, report in reports.items():
            for name, scores in report.datasets.items():
                for what in ("top1", "top5", "worst_group_top1"):
                    values[f"eval/{row}/{name}/{what}"] = getattr(scores, what)
            if report.gate is not None:
                values[f"artifact/{row}/worst_drop_pp"] = report.gate.worst_drop_pp
                values[f"artifact/{row}/gate_passed"] = float(report.gate.passed)
        self.log_summary(values)

    def log_table(self, name: str, header: list[str], rows: list[list[str]]) -> None:
        self._call("log_table", name, header, rows)

    def __enter__(self) -> Tracking:
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None, tb: TracebackType | None) -> None:
        if kind is not None and issubclass(kind, KeyboardInterrupt):
            self.status = "interrupted"
        self._call("finish", self.status or ("finished" if kind is None else "failed"))
        self.trackers = []


def flat(params: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """A nested config as flat keys (`loss.kind`), the parameters every tracker shows."""
    out: dict[str, Any] = {}
    for key, value in params.items():
        if isinstance(value, dict):
            out.update(flat(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


def one_line(err: BaseException) -> str:
    text = str(err).strip().splitlines()
    return f"{type(err).__name__}: {text[0] if text else ''}"[:300]
