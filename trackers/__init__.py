"""Experiment trackers, one module each (trackers/tracker.py says what a tracker is); a new one is one module plus
one line here."""

from trackers import mlflow_tracker, tensorboard_tracker, wandb_tracker
from trackers.tracker import Tracker

TRACKERS: dict[str, type[Tracker]] = {
    module.TRACKER.name: module.TRACKER for module in (tensorboard_tracker, mlflow_tracker, wandb_tracker)
}
