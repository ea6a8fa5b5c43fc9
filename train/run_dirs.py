"""Where a training run writes: a fresh directory under runs/, the runs/latest pointer, the config to resume with.

The library's `train(...)` and `cli.py train` go through these alike.
"""

from __future__ import annotations

import time
from pathlib import Path

from common.run import LATEST, RUN_FILE, RUNS_ROOT, CheckpointError, Run
from train.config import TrainConfig


def fresh_run_dir(cfg: TrainConfig, root: Path = RUNS_ROOT) -> Path:
    return root / f"{time.strftime('%Y%m%d-%H%M%S')}-{cfg.loss.kind}-s{cfg.seed}"


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


def config_to_resume(run: Run, given: TrainConfig | None) -> TrainConfig:
    """The run's own config; a `given` one must match it, or the resumed run would not be the run that started."""
    saved = TrainConfig.from_dict(run.record.train_config, f"{run.path / RUN_FILE}: train_config")
    if given is not None:
        theirs, ours = saved.to_dict(), given.to_dict()
        differ = sorted(k for k in theirs if theirs[k] != ours.get(k))
        if differ:
            shown = ", ".join(f"{k} ({ours.get(k)!r}, the run has {theirs[k]!r})" for k in differ)
            raise CheckpointError(f"cannot resume {run.path} with other settings: {shown}")
    return saved
