"""Where a training run writes: a fresh directory under runs/, the runs/latest pointer, the config to resume with.

The library's `train(...)` and `cli.py train` go through these alike.
"""

from __future__ import annotations

import os
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

from common.errors import CheckpointError, OptionError
from common.run import LATEST, RUN_FILE, RUNS_ROOT, Parallelism, Run
from train.config import TrainConfig


def fresh_run_dir(cfg: TrainConfig, root: Path = RUNS_ROOT) -> Path:
    return root / f"{time.strftime('%Y%m%d-%H%M%S')}-{cfg.recipe or cfg.loss.kind}-s{cfg.seed}"


def check_unused(out: Path) -> None:
    """A new run never overwrites another: CheckpointError when `out` already holds one."""
    if (Path(out) / RUN_FILE).exists():
        raise CheckpointError(f"run directory already holds a run: {out} (use --resume {out}, or another --out)")


def point_latest(run_dir: Path, root: Path = RUNS_ROOT) -> None:
    """Points root/latest at a finished run, atomically; runs outside `root` are not tracked."""
    if Path(run_dir).resolve().parent != root.resolve():
        return
    tmp = root / ".latest.tmp"
    tmp.unlink(missing_ok=True)
    tmp.symlink_to(Path(run_dir).name)
    tmp.replace(root / LATEST)


def config_to_resume(run: Run, given: TrainConfig | None, overrides: dict[str, Any]) -> TrainConfig:
    """The run's own config, with `overrides` (only RESUME_OVERRIDES) applied; a `given` config must match it but
    for those, or the resumed run would not be the run that started."""
    saved = TrainConfig.from_dict(run.record.train_config, f"{run.path / RUN_FILE}: train_config")
    if run.record.status == "finished":
        raise CheckpointError(f"{run.path} has finished training; nothing to resume")
    refused = sorted(set(overrides) - set(RESUME_OVERRIDES))
    if refused:
        raise OptionError(
            f"--resume continues {run.path} with its own settings; it can change only "
            f"{', '.join(RESUME_OVERRIDES)}, not {', '.join(refused)}"
        )
    if given is not None:
        theirs, ours = saved.to_dict(), given.to_dict()
        differ = sorted(k for k in theirs if theirs[k] != ours.get(k) and k not in RESUME_OVERRIDES)
        if differ:
            shown = ", ".join(f"{k} ({ours.get(k)!r}, the run has {theirs[k]!r})" for k in differ)
            raise CheckpointError(f"cannot resume {run.path} with other settings: {shown}")
        overrides = {k: getattr(given, k) for k in RESUME_OVERRIDES if ours[k] != theirs[k]} | overrides
    return replace(saved, **overrides)


def fit_to_world(cfg: TrainConfig, saved: Parallelism, world: int, run_dir: Path) -> TrainConfig:
    """The config for resuming a run on `world` processes: the global micro-batch (per-process batch x processes)
    is the run's and stays so, split evenly over the new processes, so the steps continue unchanged."""
    micro = cfg.batch_size * saved.world_size
    if micro % world:
        raise OptionError(
            f"cannot resume {run_dir} on {world} processes: its global micro-batch of {micro} images "
            f"({cfg.batch_size} per process x {saved.world_size}) does not split evenly; use a process count that "
            "divides it"
        )
    return replace(cfg, batch_size=micro // world)


# What `--resume` may change: the learning rate (to continue a diverged run more gently) and where it runs.
RESUME_OVERRIDES = ("lr", "num_workers", "device")
LOCK_FILE = ".lock"


class RunLock:
    """An exclusive lock on a run directory for the life of this process: fcntl.flock on the directory itself, so
    taking it (and a refused resume) writes nothing. `.lock` holds the holder's pid once it claims the run, for
    another process's error message, and goes when the run finishes.

    The kernel drops the lock when the holder exits, however it exits, so a lock left by a killed process is taken
    over without anyone deciding it is stale (its `.lock` is then only a note, rewritten by the next claim).
    """

    def __init__(self, run_dir: Path):
        import fcntl

        self.path, self.claimed = Path(run_dir) / LOCK_FILE, False
        self.fd = os.open(run_dir, os.O_RDONLY | os.O_DIRECTORY)
        try:
            fcntl.flock(self.fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(self.fd)
            pid = self.path.read_text().strip() if self.path.is_file() else ""
            holder = f" (process {pid})" if pid else ""
            raise CheckpointError(
                f"{run_dir} is in use by another training{holder}; wait or use another --out"
            ) from None

    def claim(self) -> None:
        """Writes this process's id into `.lock`, for another process's error message; called once the run is
        ready to train, so a refused resume changes nothing."""
        self.path.write_text(str(os.getpid()))
        self.claimed = True

    def release(self, discard: bool = False, finished: bool = False) -> None:
        """Drops the lock; `discard` removes the `.lock` this lock wrote (a run that never started), `finished` any
        `.lock` (a finished run is never trained into again)."""
        if (discard and self.claimed) or finished:
            self.path.unlink(missing_ok=True)  # while still locked: no one else can be writing it
        os.close(self.fd)
