"""Trackers run here without the network: W&B offline (no key, no netrc), MLflow's default local store in the
working directory, every tracker's own settings and caches inside the test's folder."""

import os
from pathlib import Path


def tracker_environment(home: Path) -> dict[str, str]:
    """The environment of a command whose trackers must stay on this machine and inside `home`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("WANDB_", "MLFLOW_"))}
    for name in ("WANDB_CONFIG_DIR", "WANDB_CACHE_DIR", "WANDB_DATA_DIR", "WANDB_ARTIFACT_DIR"):
        env[name] = str(home / name.lower())
    return env | {"HOME": str(home), "NETRC": str(home / "no-netrc"), "WANDB_SILENT": "true", "HF_HUB_OFFLINE": "1"}
