"""Weights & Biases: one W&B run per training (grouped under the comparison's folder name for `compare`), its files
in the run directory (`<run>/wandb/`). Offline unless the user has logged in the W&B way (WANDB_API_KEY or
`wandb login`'s netrc entry) or set WANDB_MODE; an offline run goes up later with
`wandb sync <run>/wandb/offline-run-*`.
The project is WANDB_PROJECT or "proreg-clip"."""

from __future__ import annotations

import netrc
import os
import secrets
import string
from typing import Any
from urllib.parse import urlparse

from trackers.tracker import PROJECT, TrackedRun, Tracker


def wandb_mode() -> str:
    """WANDB_MODE when set; online when an API key is known to W&B without asking the network; else offline."""
    if os.environ.get("WANDB_MODE"):
        return os.environ["WANDB_MODE"]
    if os.environ.get("WANDB_API_KEY"):
        return "online"
    host = urlparse(os.environ.get("WANDB_BASE_URL", "https://api.wandb.ai")).hostname or "api.wandb.ai"
    try:
        return "online" if netrc.netrc(os.environ.get("NETRC")).authenticators(host) else "offline"
    except (OSError, netrc.NetrcParseError):
        return "offline"


def new_run_id() -> str:
    """A W&B run id: 8 lowercase letters and digits, as W&B makes them."""
    return "".join(secrets.choice(string.ascii_lowercase + string.digits) for _ in range(8))


class WandbTracker(Tracker):
    name = "wandb"
    module = "wandb"
    extra = "wandb"

    def __init__(self, run: TrackedRun, parent: Tracker | None = None):
        super().__init__(run, parent)
        import wandb

        self.wandb = wandb
        stored = run.stored_ids().get(self.name)
        run_id = stored if stored and run.resumed_at is not None else new_run_id()
        group = parent.run.name if parent is not None else None
        mode: Any = wandb_mode()  # W&B's own names, checked by W&B
        settings = wandb.Settings(silent=True, console="off", disable_git=True, x_disable_stats=True)
        self.handle: Any = wandb.init(
            project=os.environ.get("WANDB_PROJECT", PROJECT),
            name=run.name,
            id=run_id,
            resume="allow",
            dir=str(run.folder),
            mode=mode,
            group=group,
            job_type=run.job,
            config=run.params,
            settings=settings,
            reinit="create_new",  # a comparison's cells and its own run are open together
        )
        self.last_step = run.resumed_at or 0
        run.store_id(self.name, run_id)

    def log_metrics(self, values: dict[str, float], step: int) -> None:
        self.last_step = max(self.last_step, step)
        self.handle.log(values, step=self.last_step)

    def log_summary(self, values: dict[str, float]) -> None:
        self.handle.summary.update(values)

    def log_table(self, name: str, header: list[str], rows: list[list[str]]) -> None:
        self.handle.log({name: self.wandb.Table(columns=list[Any](header), data=rows)}, step=self.last_step)

    def finish(self, status: str) -> None:
        self.handle.finish(exit_code=0 if status == "finished" else 1)


TRACKER = WandbTracker
